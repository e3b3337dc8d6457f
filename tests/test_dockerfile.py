"""The repository's Dockerfile: a slim Python base, Conveyor installed with the extras a build
argument names, no secrets, not root. The image itself needs a Docker engine to build; short of
that, its build context is installed as the image installs it (a wheel, not the checkout) and
runs a Kubeflow step."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
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
    package = _installed_from(instructions)
    copied = {source: dest for op, a in instructions if op == "COPY" for source, dest in
              _copies(a, _workdir(instructions))}  # fmt: skip
    assert copied["conveyor"] == f"{package}/conveyor"
    assert copied["pyproject.toml"] == f"{package}/pyproject.toml"


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


def _installed_from(instructions: list[tuple[str, str]]) -> str:
    """The folder the image's `pip install "FOLDER[${EXTRAS}]"` installs."""
    [install] = [a for op, a in instructions if op == "RUN" and "pip install" in a]
    found = re.search(r'pip install "(/[^"\[]+)\[\$\{EXTRAS\}\]"', install)
    assert found, f"no pip install of a folder with the EXTRAS argument: {install}"
    return found.group(1)


def _workdir(instructions: list[tuple[str, str]]) -> str:
    return [a for op, a in instructions if op == "WORKDIR"][-1]


def _copies(argument: str, workdir: str) -> list[tuple[str, str]]:
    """(source, absolute destination) for each source of a COPY, as Docker places them: a
    destination ending in / is a folder the sources go into; a folder copies its contents."""
    *sources, dest = argument.split()
    dest = dest if dest.startswith("/") else f"{workdir}/{dest.removeprefix('./')}"
    if dest.endswith("/"):
        return [(source, dest + Path(source).name) for source in sources]
    return [(source, dest) for source in sources]


def _build(image: Path, instructions: list[tuple[str, str]]) -> None:
    """The image's COPY steps under `image` (its /), less what .dockerignore leaves out."""
    ignored = [p.removeprefix("**/") for p in (REPO / ".dockerignore").read_text().split()]

    def skip(folder: str, names: list[str]) -> set[str]:
        return {name for name in names if any(fnmatch.fnmatch(name, p) for p in ignored)}

    workdir = _workdir(instructions)
    for op, argument in instructions:
        for source, dest in _copies(argument, workdir) if op == "COPY" else []:
            target = image / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=skip)
            else:
                shutil.copy2(REPO / source, target)


def test_the_image_context_installs_as_a_wheel_and_runs_a_kubeflow_step(tmp_path):
    """The image's pip install of its build context: the wheel holds every file of the package (the
    templates and static files of the reports and the UI too), and from that install the
    penguin pipeline's first steps run as Kubeflow runs them, and the model server's module
    starts. The checkout's own install stays out of the way."""
    image, site, instructions = tmp_path / "image", tmp_path / "site", _instructions()
    _build(image, instructions)
    app = image / _workdir(instructions).lstrip("/")
    package = image / _installed_from(instructions).lstrip("/")
    assert not (app / "conveyor").exists()  # nothing in the working directory shadows it
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    if importlib.util.find_spec("setuptools") and importlib.util.find_spec("wheel"):
        pip.append("--no-build-isolation")  # the build needs only what is here: no download
    subprocess.run([*pip, str(package)], check=True, capture_output=True, timeout=300)

    source = {p.relative_to(REPO) for p in (REPO / "conveyor").rglob("*") if p.is_file()}
    installed = {p.relative_to(site) for p in (site / "conveyor").rglob("*") if p.is_file()}
    compiled = {p for p in source if "__pycache__" in p.parts}
    assert source - compiled - installed == set()

    env = {**os.environ, "PYTHONPATH": str(site), "CONVEYOR_HOME": str(tmp_path / "home")}
    md, root = f"sqlite:///{tmp_path / 'md.db'}", tmp_path / "root"

    def python(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, *args]
        return subprocess.run(command, cwd=app, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    found = python("-c", "import conveyor; print(conveyor.__file__)")
    assert Path(found.stdout.strip()).is_relative_to(site), found.stderr
    for node in ("CsvExampleGen", "StatisticsGen"):
        step = python("-m", "conveyor.entrypoint", "examples/penguin/pipeline.py", "--node",
                      node, "--run-id", "image-run", "--metadata-url", md,
                      "--pipeline-root", str(root))  # fmt: skip
        assert step.returncode == 0, step.stdout + step.stderr

    listed = python("-m", "conveyor.cli.main", "artifacts", "--metadata-url", md, "--json")
    assert listed.returncode == 0, listed.stderr
    [statistics] = [a for a in json.loads(listed.stdout) if a["type"] == "ExampleStatistics"]
    assert Path(statistics["uri"]).is_relative_to(root)
    report = tmp_path / "statistics.html"
    shown = python("-m", "conveyor.cli.main", "show", str(statistics["id"]), "--html",
                   str(report), "--metadata-url", md)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "culmen_length_mm" in report.read_text()
    for name in ("MODEL_NAME", "MODEL_BASE", "MODEL_CONFIG_FILE"):
        env.pop(name, None)
    served = python("-m", "conveyor.serving")  # the image's CMD, with no model named
    assert served.returncode == 2 and "MODEL_NAME" in served.stderr, served.stderr
