"""Crash safety across processes: a SIGKILLed runner, and two runners on one SQLite store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conveyor.metadata import MetadataStore

PIPELINE = textwrap.dedent(
    """
    import os
    import sys
    import time
    from pathlib import Path

    from conveyor import Input, LocalRunner, Output, Param, Pipeline, component
    from conveyor.types import Examples, Model

    @component
    def First(examples: Output[Examples]):
        Path(examples.uri, "rows").write_text("1")

    @component
    def Second(examples: Input[Examples], model: Output[Model], marker: Param[str] = ""):
        Path(marker).write_text(str(os.getpid()))
        time.sleep(float(os.environ.get("HOLD", "0")))
        Path(model.uri, "model.bin").write_text("m")

    @component
    def Leaf(examples: Input[Examples], model: Output[Model], i: Param[int] = 0):
        time.sleep(0.05)
        model.properties["i"] = i

    root, url, marker = sys.argv[1], sys.argv[2], sys.argv[3]
    first = First()
    nodes = [first, Second(examples=first.outputs["examples"], marker=marker)]
    nodes += [Leaf(examples=first.outputs["examples"], i=i).with_id(f"leaf{i}") for i in range(10)]
    pipeline = Pipeline("recovery", nodes, root=root, metadata_url=url)

    if __name__ == "__main__":
        result = LocalRunner(max_workers=2, display="plain").run(pipeline)
        sys.exit(0 if result.ok else 1)
    """
)


def start_runner(tmp_path: Path, hold: float) -> subprocess.Popen:
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    url = f"sqlite:///{tmp_path / 'md.db'}"
    env = {**os.environ, "HOLD": str(hold)}
    args = [sys.executable, str(script), str(tmp_path / "root"), url, str(tmp_path / "marker")]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] == "Z"  # zombie: dead, not reaped


def test_recovery_after_runner_is_killed(tmp_path):
    runner = start_runner(tmp_path, hold=120)
    marker = tmp_path / "marker"
    wait_for(marker.exists)
    worker_pid = int(marker.read_text())
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    wait_for(lambda: pid_gone(worker_pid), timeout=10)  # the execution died with its runner

    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    [killed] = store.executions(node_id="Second")
    assert killed.state == "RUNNING"
    assert [a.state for a in store.artifacts(node_id="Second")] == ["PENDING"]
    completed_before = {e.node_id for e in store.executions(states=["COMPLETE"])}
    assert "First" in completed_before

    rerun = start_runner(tmp_path, hold=0)
    output, _ = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, output

    assert store.get_execution(killed.execution_id).state == "ABANDONED"
    second = store.executions(node_id="Second")
    assert [e.state for e in second] == ["ABANDONED", "COMPLETE"]
    states = {a.id: a.state for a in store.artifacts(node_id="Second")}
    assert states[killed.outputs["model"][0]] == "ABANDONED"
    # Nothing that had completed ran again: the second run reused it from the cache.
    for node_id in completed_before:
        assert [e.state for e in store.executions(node_id=node_id)] == ["COMPLETE", "CACHED"]
    runs = store.runs("recovery")
    assert [r.status for r in runs] == ["COMPLETE", "ABANDONED"]


def test_two_runs_at_once_on_one_sqlite_store(tmp_path):
    runners = [start_runner(tmp_path, hold=0.2) for _ in range(2)]
    outputs = [r.communicate(timeout=120)[0] for r in runners]
    assert [r.returncode for r in runners] == [0, 0], outputs
    assert not any("locked" in out for out in outputs)

    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    runs = store.runs("recovery")
    assert [r.status for r in runs] == ["COMPLETE", "COMPLETE"]
    for run in runs:
        executions = store.executions(run_id=run.run_id)
        assert len(executions) == 12
        assert {e.state for e in executions} <= {"COMPLETE", "CACHED"}
        for execution in executions:
            for ids in execution.outputs.values():
                assert all(store.get_artifact(i).state == "LIVE" for i in ids)


def _interruptible() -> None:
    """A shell starts background jobs with SIGINT ignored, and Python keeps it ignored; the
    runner under test must see Ctrl-C whatever launched the test suite."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupted_run_records_failure_and_resume_command(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(
        PIPELINE.replace(
            'display="plain").run(pipeline)',
            "display=\"plain\").run(pipeline, run_id='interrupted-run')",
        )
    )
    url = f"sqlite:///{tmp_path / 'md.db'}"
    runner = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "root"), url, str(tmp_path / "marker")],
        env={**os.environ, "HOLD": "120"}, stderr=subprocess.PIPE, text=True,
        preexec_fn=_interruptible,
    )  # fmt: skip
    wait_for((tmp_path / "marker").exists)
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=30)
    assert runner.returncode != 0
    assert "run interrupted-run interrupted" in err and "--resume interrupted-run" in err
    store = MetadataStore(url)
    assert store.get_run("interrupted-run").status == "FAILED"
    assert not store.executions(states=["RUNNING"])
    [second] = store.executions(node_id="Second")
    assert second.state == "FAILED" and "interrupted" in second.error
    assert {a.state for a in store.artifacts(node_id="Second")} == {"ABANDONED"}
