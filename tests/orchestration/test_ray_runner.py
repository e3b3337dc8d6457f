"""The Ray runner: the local runner's records, caching, retries and resume, with each
execution a task on a Ray instance started on loopback by these tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor import Input, LocalRunner, Output, Param, Pipeline, RayRunner, component
from conveyor.metadata import MetadataStore
from conveyor.types import ConveyorError, Examples, Model, PipelineDefinitionError

ray = pytest.importorskip("ray")


@component
def Gen(examples: Output[Examples], n: Param[int] = 3):
    Path(examples.uri, "data.json").write_text(json.dumps(list(range(n))))
    examples.properties["rows"] = n
    print("generated rows", n)


@component
def Train(examples: Input[Examples], model: Output[Model], scale: Param[float] = 1.0):
    data = json.loads(Path(examples.uri, "data.json").read_text())
    model.properties["weight"] = sum(data) * scale
    model.properties["pid"] = os.getpid()


@component
def Flaky(examples: Input[Examples], model: Output[Model], counter: Param[str] = ""):
    """Fails on its first call, succeeds on the next (calls counted in a file)."""
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= 1:
        raise RuntimeError(f"flaky failure on call {calls}")
    model.properties["calls"] = calls


@component
def Gate(examples: Input[Examples], model: Output[Model], flag: Param[str] = ""):
    if not Path(flag).exists():
        raise RuntimeError(f"flag file {flag} missing")


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One local Ray instance on loopback for the module; the runner joins it."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def make(tmp_path: Path, name: str, nodes: list, metadata_url: str | None = None) -> Pipeline:
    return Pipeline(
        name,
        nodes,
        root=tmp_path / "root",
        metadata_url=metadata_url or f"sqlite:///{tmp_path / 'md.db'}",
    )


def small(tmp_path: Path, name: str = "small", metadata_url: str | None = None) -> Pipeline:
    gen = Gen(n=4)
    a = Train(examples=gen.outputs["examples"]).with_id("TrainA")
    b = Train(examples=gen.outputs["examples"], scale=2.0).with_id("TrainB")
    return make(tmp_path, name, [gen, a, b], metadata_url)


def without_pid(found: dict[str, tuple]) -> dict[str, tuple]:
    return {
        node: (state, [(t, json.dumps({**json.loads(p), "pid": 0})) for t, p in outputs])
        if node.startswith("Train")
        else (state, outputs)
        for node, (state, outputs) in found.items()
    }


def test_ray_runner_records_what_the_local_runner_records(tmp_path, recorded):
    local = small(tmp_path / "local")
    on_ray = small(tmp_path / "ray")
    by_local = LocalRunner(display="none").run(local)
    by_ray = RayRunner(display="none").run(on_ray)
    assert by_ray.ok, by_ray.message
    assert without_pid(recorded(on_ray.metadata_url, by_ray.run_id)) == without_pid(
        recorded(local.metadata_url, by_local.run_id)
    )
    assert by_ray["TrainB"].outputs["model"][0].properties["weight"] == 12.0
    assert "generated rows 4" in Path(by_ray["Gen"].log_path).read_text()
    # The function ran in a process of Ray's, not in one the runner forked.
    assert by_ray["TrainA"].outputs["model"][0].properties["pid"] != os.getpid()
    again = RayRunner(display="none").run(on_ray)
    assert {r.state for r in again.nodes.values()} == {"CACHED"}


def test_ray_runner_retries_a_failing_node(tmp_path):
    gen = Gen()
    flaky = Flaky(examples=gen.outputs["examples"], counter=str(tmp_path / "calls"))
    flaky.with_options(retries=1, retry_backoff=0)
    result = RayRunner(display="none").run(make(tmp_path, "retry", [gen, flaky]))
    assert result.ok, result.message
    assert result["Flaky"].attempts == 2
    assert result["Flaky"].outputs["model"][0].properties == {"calls": 2}


def test_ray_runner_failed_run_resumes(tmp_path, capsys):
    flag = tmp_path / "flag"
    gen = Gen()
    gate = Gate(examples=gen.outputs["examples"], flag=str(flag))
    pipeline = make(tmp_path, "resume", [gen, gate])
    failed = RayRunner(display="none").run(pipeline)
    assert failed.status == "FAILED"
    assert "flag file" in failed["Gate"].error
    assert f"--resume {failed.run_id} --runner ray" in failed.message
    assert "RuntimeError: flag file" in Path(failed["Gate"].log_path).read_text()
    flag.write_text("ok")
    resumed = RayRunner(display="none").run(pipeline, resume=failed.run_id)
    assert resumed.ok and resumed["Gen"].resumed and resumed["Gate"].state == "COMPLETE"


def test_ray_runner_with_postgresql_metadata(tmp_path, postgres_url, recorded):
    pipeline = small(tmp_path, name=f"ray-pg-{time.time_ns()}", metadata_url=postgres_url)
    result = RayRunner(display="none").run(pipeline)
    assert result.ok, result.message
    found = recorded(pipeline.metadata_url, result.run_id)
    assert {state for state, _ in found.values()} == {"COMPLETE"}


def test_ray_runner_on_penguin_data_transform_and_trainer(tmp_path, penguin_training, recorded):
    results = {}
    for name, runner in (("local", LocalRunner), ("ray", RayRunner)):
        nodes = penguin_training(tmp_path / name)
        pipeline = make(tmp_path / name, "penguin", nodes)
        result = runner(display="none").run(pipeline)
        assert result.ok, result.message
        results[name] = recorded(pipeline.metadata_url, result.run_id)
    assert results["ray"] == results["local"]


def test_ray_runner_refuses_local_stores_on_a_multi_node_cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(RayRunner, "cluster_nodes", lambda self: 3)
    pipeline = small(tmp_path)
    with pytest.raises(ConveyorError) as refused:
        RayRunner("auto", display="none").run(pipeline)
    message = str(refused.value)
    assert "3 nodes" in message and "--metadata-url postgresql://" in message
    assert "--root s3://" in message and "--shared-root" in message
    assert not (tmp_path / "root").exists()


def test_ray_runner_runs_shared_stores_on_a_multi_node_cluster(tmp_path, monkeypatch, postgres_url):
    monkeypatch.setattr(RayRunner, "cluster_nodes", lambda self: 3)
    pipeline = small(tmp_path, name=f"ray-shared-{time.time_ns()}", metadata_url=postgres_url)
    with pytest.raises(ConveyorError, match="local folder") as refused:
        RayRunner(display="none").run(pipeline)
    assert "SQLite" not in str(refused.value)
    assert RayRunner(shared_root=True, display="none").run(pipeline).ok


def test_ray_runner_checks_its_parameters():
    with pytest.raises(PipelineDefinitionError, match="'gpus'"):
        RayRunner(resources_per_node={"gpus": 1})
    with pytest.raises(ConveyorError, match="'address'"):
        RayRunner(address="")
    with pytest.raises(PipelineDefinitionError, match="num_cpus must be a number"):
        Gen().with_options(resources={"num_cpus": -1})


def test_ray_runner_honours_node_resources(tmp_path):
    gen = Gen()
    big = Train(examples=gen.outputs["examples"]).with_options(resources={"num_cpus": 2})
    gpu = Train(examples=gen.outputs["examples"]).with_id("OnGpu")
    gpu.with_options(resources={"num_gpus": 1})
    result = RayRunner(resources_per_node={"memory": 1e6}, display="none").run(
        make(tmp_path, "resources", [gen, big, gpu])
    )
    assert result["Train"].state == "COMPLETE"
    # The instance has no GPU: the node fails at once instead of waiting forever.
    assert result["OnGpu"].state == "FAILED"
    assert "requests num_gpus=1 but the Ray cluster has 0" in result["OnGpu"].error


@component
def KillsItsWorker(examples: Input[Examples], model: Output[Model], counter: Param[str] = ""):
    """Kills the Ray worker that runs it on its first call; completes on the next."""
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls == 1:
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(30)
    model.properties["calls"] = calls


def test_ray_runner_retries_a_node_whose_worker_died(tmp_path):
    gen = Gen()
    node = KillsItsWorker(examples=gen.outputs["examples"], counter=str(tmp_path / "calls"))
    node.with_options(retries=1, retry_backoff=0)
    result = RayRunner(display="none").run(make(tmp_path, "killed", [gen, node]))
    assert result.ok, result.message
    assert result["KillsItsWorker"].attempts == 2
    store = MetadataStore(f"sqlite:///{tmp_path / 'md.db'}")
    try:
        first = store.executions(run_id=result.run_id, states=["FAILED"])
    finally:
        store.close()
    assert len(first) == 1 and "Ray task running KillsItsWorker was lost" in first[0].error


CLI_PIPELINE = """
import json
from pathlib import Path

from conveyor import Output, Param, Pipeline, component
from conveyor.types import Examples


@component
def Hello(examples: Output[Examples], n: Param[int] = 2):
    Path(examples.uri, "data.json").write_text(json.dumps(list(range(n))))
    examples.properties["rows"] = n


pipeline = Pipeline("cli-ray", [Hello()])
"""


def session_processes(driver_pid: int) -> set[int]:
    """The processes of the Ray instance that ``driver_pid`` started (its session folder
    ends with the driver's pid) and their children (the workers): other Ray instances on the
    machine are left out."""
    import psutil

    mark = f"_{driver_pid}/"
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        if any(mark in part for part in process.info["cmdline"] or ()):
            found.add(process.pid)
            found.update(child.pid for child in process.children(recursive=True))
    return found


def alive(pids: set[int]) -> set[int]:
    import psutil

    return {pid for pid in pids if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}  # fmt: skip


def test_conveyor_run_with_the_ray_runner_leaves_no_ray_processes(tmp_path):
    (tmp_path / "pipeline.py").write_text(CLI_PIPELINE)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    command = [conveyor, "run", str(tmp_path / "pipeline.py")]
    url = f"sqlite:///{tmp_path / 'md.db'}"
    command += ["--runner", "ray", "--root", str(tmp_path / "root"), "--metadata-url", url]
    done = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    store = MetadataStore(url)
    try:
        assert [e.state for e in store.executions(pipeline="cli-ray")] == ["COMPLETE"]
    finally:
        store.close()
    deadline = time.time() + 20
    while alive(session_processes(done.pid)) and time.time() < deadline:
        time.sleep(0.5)
    assert not alive(session_processes(done.pid))


HELD_PIPELINE = CLI_PIPELINE.replace(
    'pipeline = Pipeline("cli-ray", [Hello()])',
    """
import os, time

from conveyor import Input
from conveyor.types import Model


@component
def Held(examples: Input[Examples], model: Output[Model], marker: Param[str] = ""):
    Path(marker).write_text(str(os.getpid()))
    while Path(marker).with_name("hold").exists():
        time.sleep(0.1)


hello = Hello()
pipeline = Pipeline("cli-ray-held", [hello, Held(examples=hello.outputs["examples"],
                    marker=str(Path(__file__).with_name("marker")))])
""",
)


def test_conveyor_run_with_the_ray_runner_interrupted_stops_its_task(tmp_path):
    (tmp_path / "pipeline.py").write_text(HELD_PIPELINE)
    (tmp_path / "hold").touch()
    url = f"sqlite:///{tmp_path / 'md.db'}"
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    command = [conveyor, "run", str(tmp_path / "pipeline.py"), "--runner", "ray"]
    command += ["--metadata-url", url, "--root", str(tmp_path / "root")]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    runner = subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.time() + 120
    while not (tmp_path / "marker").exists():
        assert time.time() < deadline and runner.poll() is None, "the task never started"
        time.sleep(0.1)
    task_pid = int((tmp_path / "marker").read_text())
    started = session_processes(runner.pid)  # the local Ray instance the run started
    assert started
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode != 0 and "--runner ray" in err and "--resume" in err
    store = MetadataStore(url)
    try:
        [held] = store.executions(node_id="Held")
    finally:
        store.close()
    assert held.state == "FAILED" and "interrupted" in held.error
    deadline = time.time() + 20
    while (Path(f"/proc/{task_pid}").exists() or alive(started)) and time.time() < deadline:
        time.sleep(0.5)
    assert not Path(f"/proc/{task_pid}").exists() and not alive(started)


def test_import_conveyor_does_not_import_ray():
    code = "import sys, conveyor, conveyor.orchestration; conveyor.RayRunner; "
    code += "print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_conveyor_run_ray_options_need_the_ray_runner(tmp_path):
    (tmp_path / "pipeline.py").write_text(CLI_PIPELINE)
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    command = [conveyor, "run", str(tmp_path / "pipeline.py"), "--ray-address", "auto"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "go with --runner ray" in done.stderr
