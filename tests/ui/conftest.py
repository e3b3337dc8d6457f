"""A metadata store with real penguin runs (one complete, one failed at the Trainer), the
``conveyor ui`` command serving it on a loopback port, and small stores built by hand."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PENGUIN = REPO / "examples" / "penguin"

PIPELINE_FILE = """
import sys
sys.path.insert(0, {penguin!r})
from pipeline import create_pipeline as penguin_pipeline

def create_pipeline():
    return penguin_pipeline(root={root!r}, metadata_url={url!r}, push_destination={push!r},
                            module_file={module!r})
"""

BROKEN_TRAINER = """
def run_fn(fn_args):
    raise ValueError("this trainer module is broken on purpose")
"""


def conveyor_command() -> list[str]:
    installed = Path(sys.executable).parent / "conveyor"
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "conveyor.cli.main"]


def _pipeline_file(folder: Path, name: str, url: str, module: Path | None) -> Path:
    path = folder / f"{name}.py"
    path.write_text(
        PIPELINE_FILE.format(
            penguin=str(PENGUIN),
            root=str(folder / "root"),
            url=url,
            push=str(folder / "serving_model"),
            module=str(module) if module else None,
        )
    )
    return path


@pytest.fixture(scope="session")
def penguin_runs(tmp_path_factory) -> dict[str, Any]:
    """The penguin pipeline run by ``conveyor run`` twice in one SQLite store: complete, then
    failed (a broken Trainer module, everything upstream cached). Returns the store URL, both
    run ids and the resume command the failed run printed."""
    folder = tmp_path_factory.mktemp("penguin-ui")
    url = f"sqlite:///{folder / 'metadata.db'}"
    broken = folder / "broken_trainer.py"
    broken.write_text(BROKEN_TRAINER)
    env = {**os.environ, "CONVEYOR_HOME": str(folder / "home"), "CONVEYOR_METADATA_URL": url}
    runs = {}
    for name, module in (("complete", None), ("failed", broken)):
        out = subprocess.run(
            [*conveyor_command(), "run", str(_pipeline_file(folder, name, url, module))],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert out.returncode == (0 if name == "complete" else 1), out.stderr[-3000:]
        runs[name] = out
    resume = re.search(r"Resume with: (.+)", runs["failed"].stderr)
    assert resume, runs["failed"].stderr[-3000:]
    from conveyor.metadata import MetadataStore

    store = MetadataStore(url)
    try:
        failed, complete = (r.run_id for r in store.runs())
    finally:
        store.close()
    return {
        "url": url,
        "complete": complete,
        "failed": failed,
        "resume_command": resume.group(1).strip(),
    }


@pytest.fixture(scope="session")
def ui_url(penguin_runs, tmp_path_factory) -> Iterator[str]:
    """``conveyor ui --port 0`` over the penguin store; the address it printed."""
    log = tmp_path_factory.mktemp("ui-server") / "stderr.log"
    with open(log, "w") as errors:
        server = subprocess.Popen(
            [*conveyor_command(), "ui", "--metadata-url", penguin_runs["url"], "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        line = server.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert found, f"{line}\n{log.read_text()}"
        url = found.group(1)
        _wait_until_up(url)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def _wait_until_up(url: str, timeout_s: float = 30) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def record_run():
    """``record_run(store, root, run_id, fail_trainer=False)``: see :func:`_record_run`."""
    return _record_run


def _record_run(store: Any, root: Path, run_id: str, *, fail_trainer: bool = False) -> dict:
    """A two-node run recorded by hand (ExampleGen → Trainer) with real files: returns the
    artifacts made. The Trainer fails when ``fail_trainer``."""
    from conveyor.types import Examples, Model

    store.create_run("handmade", run_id, {"trigger": "conveyor run handmade.py"})
    data = root / run_id / "examples"
    (data / "Split-train").mkdir(parents=True)
    (data / "Split-train" / "part-0.csv").write_text("x,y\n1,2\n")
    examples = Examples(
        str(data), properties={"split_names": ["train"]}, name="ExampleGen:examples"
    )
    common = dict(pipeline="handmade", run_id=run_id, cache_key=None)
    store.record_execution(
        node_id="ExampleGen",
        type_name="CsvExampleGen",
        state="COMPLETE",
        properties={"params": {"input_base": "data"}},
        inputs={},
        outputs={"examples": [examples]},
        new_artifacts=[examples],
        **common,
    )
    made = {"examples": examples}
    if fail_trainer:
        execution_id, _ = store.start_execution(
            node_id="Trainer",
            type_name="Trainer",
            properties={"params": {"steps": 1}},
            inputs={"examples": [examples]},
            outputs={"model": Model},
            output_uri=lambda key, i: str(root / run_id / key),
            log_uri=lambda i: None,
            **common,
        )
        store.fail_execution(execution_id, "ValueError: no")
    else:
        model = Model(
            str(root / run_id / "model"), properties={"framework": "sklearn"}, name="Trainer:model"
        )
        (root / run_id / "model").mkdir()
        (root / run_id / "model" / "manifest.json").write_text("{}")
        store.record_execution(
            node_id="Trainer",
            type_name="Trainer",
            state="COMPLETE",
            properties={"params": {"steps": 2}},
            inputs={"examples": [examples]},
            outputs={"model": [model]},
            new_artifacts=[model],
            **common,
        )
        made["model"] = model
    store.update_run(run_id, status="FAILED" if fail_trainer else "COMPLETE", ended_at=time.time())
    return made
