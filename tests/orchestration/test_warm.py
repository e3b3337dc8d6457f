"""Warm processes: executions that import frameworks fork from a copy of the runner that
imported them while the first nodes ran, and see what a fork of the runner sees; a node that
starts a model server finds a zygote; nothing outlives the run, even a killed one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from conveyor import Input, LocalRunner, Output, Param, Pipeline, component
from conveyor.orchestration import warm
from conveyor.serving.zygote import ZYGOTE_ENV, uses_model_server
from conveyor.types import Examples, Model

STATE = {"set by": "import"}  # what a pipeline file's code leaves in the runner


@component
def First(examples: Output[Examples]):
    Path(examples.uri, "rows").write_text("1")


@component
def Train(
    examples: Input[Examples],
    model: Output[Model],
    module_file: Param[str] = "",
    fail_once: Param[str] = "",
):
    if fail_once and not Path(fail_once).exists():
        Path(fail_once).write_text("failed")
        raise RuntimeError("the first attempt fails")
    model.properties.update(
        pid=os.getpid(), parent=os.getppid(), state=STATE["set by"], path="/marker" in sys.path,
        pandas="pandas" in sys.modules,
    )  # fmt: skip


@component
@uses_model_server
def Validate(model: Input[Model], report: Output[Examples]):
    report.properties["zygote"] = os.environ.get(ZYGOTE_ENV, "")


def pipeline(tmp_path: Path, **train) -> Pipeline:
    module_file = tmp_path / "trainer.py"
    module_file.write_text("import pandas\n")
    first = First()
    train = Train(examples=first.outputs["examples"], module_file=str(module_file), **train)
    validate = Validate(model=train.outputs["model"])
    return Pipeline("warm", [first, train, validate], root=tmp_path / "root",
                    metadata_url=f"sqlite:///{tmp_path / 'md.db'}")  # fmt: skip


def descendants() -> list[psutil.Process]:
    """This process's live descendants, but those that outlive a test on purpose (the
    session's service processes, such as the S3 server)."""
    return [p for p in psutil.Process().children(recursive=True)
            if p.status() != "zombie" and p.pid not in _SERVICES]  # fmt: skip


_SERVICES: set[int] = set()


@pytest.fixture(autouse=True)
def _services_running_before():
    """The processes already running when the test starts are not the run's."""
    _SERVICES.clear()
    _SERVICES.update(p.pid for p in psutil.Process().children(recursive=True))
    yield


@pytest.fixture()
def runner_state(monkeypatch):
    monkeypatch.setitem(STATE, "set by", "the runner")
    monkeypatch.syspath_prepend("/marker")
    monkeypatch.delenv(ZYGOTE_ENV, raising=False)


def test_warm_execution_sees_the_runner_state_and_nothing_outlives_the_run(tmp_path, runner_state):
    result = LocalRunner(display="none").run(pipeline(tmp_path))
    assert result.ok, result.message
    trained = result["Train"].outputs["model"][0].properties
    assert trained["parent"] != os.getpid()  # forked from the warm copy of the runner
    assert trained["state"] == "the runner" and trained["path"] and trained["pandas"]
    zygote = result["Validate"].outputs["report"][0].properties["zygote"]
    assert zygote and not Path(zygote).exists()  # it had one, closed with the run
    assert ZYGOTE_ENV not in os.environ
    assert not descendants()


def test_warm_execution_is_retried(tmp_path, runner_state):
    node_pipeline = pipeline(tmp_path, fail_once=str(tmp_path / "failed"))
    node_pipeline.node("Train").with_options(retries=1, retry_backoff=0.01)
    result = LocalRunner(display="none").run(node_pipeline)
    assert result.ok, result.message
    assert result["Train"].attempts == 2
    assert not descendants()


def test_warm_processes_that_cannot_start_leave_executions_to_the_runner(
    tmp_path, runner_state, monkeypatch
):
    def refuse(*args, **kwargs):
        raise OSError("no room")

    monkeypatch.setattr(warm, "start_forked", refuse)
    monkeypatch.setattr(warm, "start_zygote", refuse)
    result = LocalRunner(display="none").run(pipeline(tmp_path))
    assert result.ok, result.message
    assert result["Train"].outputs["model"][0].properties["parent"] == os.getpid()
    assert result["Validate"].outputs["report"][0].properties["zygote"] == ""


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from conveyor import Input, LocalRunner, Output, Param, Pipeline, component
    from conveyor.types import Examples, Model

    @component
    def First(examples: Output[Examples]):
        Path(examples.uri, "rows").write_text("1")

    @component
    def Hold(examples: Input[Examples], model: Output[Model], module_file: Param[str] = ""):
        Path(sys.argv[2]).write_text(f"{os.getpid()} {os.getppid()}")
        time.sleep(120)

    root = Path(sys.argv[1])
    (root / "trainer.py").write_text("import pandas\\n")
    first = First()
    hold = Hold(examples=first.outputs["examples"], module_file=str(root / "trainer.py"))
    pipeline = Pipeline("held", [first, hold], root=root / "root",
                        metadata_url=f"sqlite:///{root / 'md.db'}")
    if __name__ == "__main__":
        LocalRunner(display="none").run(pipeline)
    """
)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_warm_processes_end_with_a_stopped_runner(tmp_path, how):
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    marker = tmp_path / "marker"
    runner = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(marker)],
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() or not marker.read_text():
            assert runner.poll() is None and time.monotonic() < deadline, runner.stderr.read()
            time.sleep(0.05)
        execution, warm_copy = map(int, marker.read_text().split())
        assert warm_copy != runner.pid
        runner.send_signal(how)
        runner.communicate(timeout=30)
    finally:
        runner.kill()
    for pid in (execution, warm_copy):
        deadline = time.monotonic() + 30
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
            assert time.monotonic() < deadline, f"process {pid} outlived its runner"
            time.sleep(0.05)
