"""The repository's Dockerfile (not built here: that needs a Docker engine): a slim Python
base, Conveyor installed with the extras a build argument names, no secrets, not root."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_dockerfile_installs_conveyor_with_the_extras_argument_on_a_slim_base():
    instructions = _instructions()
    froms = [arg for op, arg in instructions if op == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim", froms[0])
    args = dict(a.split("=", 1) for op, a in instructions if op == "ARG" and "=" in a)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(args["EXTRAS"].split(",")) <= set(extras)
    [install] = [a for op, a in instructions if op == "RUN" and "pip install" in a]
    assert 'pip install ".[${EXTRAS}]"' in install
    copied = [a.split()[0] for op, a in instructions if op == "COPY"]
    assert "conveyor" in copied and "pyproject.toml" in copied


def test_dockerfile_runs_both_entrypoints_as_a_user_without_secrets():
    instructions = _instructions()
    assert [a for op, a in instructions if op == "USER"] == ["conveyor"]
    assert [a for op, a in instructions if op == "CMD"] == ['["python", "-m", "conveyor.serving"]']
    for module in ("conveyor.entrypoint", "conveyor.serving.__main__"):
        assert importlib.util.find_spec(module) is not None
    settings = " ".join(a for op, a in instructions if op in ("ENV", "ARG"))
    assert not re.search(r"(?i)token|password|secret|_key\b|credential", settings)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
