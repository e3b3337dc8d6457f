"""The Ray runner on a real two-node cluster (a head and a worker node, separate processes on
loopback): shared stores required, and a node that dies under a task."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from conveyor import Input, LocalRunner, Output, Param, Pipeline, RayRunner, component
from conveyor.types import ConveyorError, Examples, Model

ray = pytest.importorskip("ray")
pytest.importorskip("ray.cluster_utils")


@component
def Gen(examples: Output[Examples]):
    Path(examples.uri, "rows.txt").write_text("1\n2\n3\n")


@component
def Wide(examples: Input[Examples], model: Output[Model], started: Param[str] = ""):
    """Says it started, then waits while a ``hold`` file lies beside ``started``."""
    Path(started).write_text(str(os.getpid()))
    deadline = time.time() + 60
    while Path(started).with_name("hold").exists() and time.time() < deadline:
        time.sleep(0.1)
    model.properties["rows"] = len(Path(examples.uri, "rows.txt").read_text().split())


@pytest.fixture(scope="module")
def penguin_pipeline():
    """examples/penguin/pipeline.py, the README's main job."""
    import importlib.util

    file = Path(__file__).resolve().parents[2] / "examples" / "penguin" / "pipeline.py"
    spec = importlib.util.spec_from_file_location("_penguin_pipeline_on_ray", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cluster(s3_endpoint, two_node_cluster):
    """A head and a worker node; both see the S3 endpoint (its settings are in the
    environment they start with)."""
    with two_node_cluster() as (cluster, worker):
        yield cluster, worker


def pipeline(tmp_path: Path, name: str, metadata_url: str) -> Pipeline:
    gen = Gen()
    # Two CPUs: only the worker node has them.
    wide = Wide(examples=gen.outputs["examples"], started=str(tmp_path / "started"))
    wide.with_options(resources={"num_cpus": 2})
    return Pipeline(name, [gen, wide], root=tmp_path / "root", metadata_url=metadata_url)


def test_ray_cluster_refuses_a_local_sqlite_store(tmp_path, cluster):
    with pytest.raises(ConveyorError, match="cluster of 2 nodes") as refused:
        RayRunner(cluster[0].address, display="none").run(
            pipeline(tmp_path, "local", f"sqlite:///{tmp_path / 'md.db'}")
        )
    assert "SQLite" in str(refused.value) and "local folder" in str(refused.value)


def test_ray_cluster_runs_with_postgresql_and_a_shared_root(tmp_path, cluster, postgres_url):
    result = RayRunner(cluster[0].address, shared_root=True, display="none").run(
        pipeline(tmp_path, f"cluster-{time.time_ns()}", postgres_url)
    )
    assert result.ok, result.message
    assert result["Wide"].outputs["model"][0].properties == {"rows": 3}


def test_ray_cluster_runs_the_penguin_pipeline_into_a_bucket_as_the_local_runner_does(
    tmp_path, cluster, postgres_url, penguin_pipeline
):
    """The README's main job on the cluster, metadata in PostgreSQL and every artifact in
    the S3 bucket, gives the statistics, transform constants and evaluation metrics the
    local runner gives with a local root and SQLite."""
    import s3fs

    local = penguin_pipeline.create_pipeline(
        root=tmp_path / "local", metadata_url=f"sqlite:///{tmp_path / 'md.db'}",
        push_destination=tmp_path / "local-push",
    )  # fmt: skip
    bucket = f"s3://conveyor/cluster-{time.time_ns()}"
    on_cluster = penguin_pipeline.create_pipeline(
        name=f"penguin-{time.time_ns()}", root=f"{bucket}/root", metadata_url=postgres_url,
        push_destination=f"{bucket}/push",
    )  # fmt: skip
    by_local = LocalRunner(display="none").run(local)
    by_cluster = RayRunner(cluster[0].address, display="none").run(on_cluster)
    assert by_local.ok, by_local.message
    assert by_cluster.ok, by_cluster.message
    assert {i: n.state for i, n in by_cluster.nodes.items()} == {
        i: n.state for i, n in by_local.nodes.items()
    }
    fs = s3fs.S3FileSystem()
    for node in by_cluster.nodes.values():
        for artifact in (a for found in node.outputs.values() for a in found):
            assert artifact.uri.startswith(f"{bucket}/root/{node.node_id}/"), artifact.uri
    assert fs.find(f"{bucket}/push")  # the blessed model was pushed to the bucket
    assert _outcome(by_cluster) == _outcome(by_local)


def _outcome(result) -> dict:
    """What the run found: statistics, fitted transform constants, evaluation metrics."""
    from conveyor.evaluation import load_evaluation
    from conveyor.orchestration.staging import local_copy

    def uri(node_id: str, key: str) -> str:
        found = result[node_id].outputs[key][0].uri
        return str(local_copy(found)) if "://" in found else found

    statistics = {
        split.name: split.read_bytes()
        for split in sorted(Path(uri("StatisticsGen", "statistics")).glob("Split-*/*.pb"))
    }
    graph = json.loads(next(Path(uri("Transform", "transform_graph")).rglob("*.json")).read_text())
    evaluation = load_evaluation(uri("Evaluator", "evaluation"))
    metrics = {key: evaluation.metrics(key) for key in evaluation.slices()}
    return {"statistics": statistics, "constants": graph["values"], "metrics": metrics,
            "blessed": evaluation.blessed}  # fmt: skip


def test_ray_cluster_losing_a_node_fails_resumably(tmp_path, cluster, postgres_url):
    head, worker = cluster
    (tmp_path / "hold").touch()
    started = tmp_path / "started"

    def kill_worker_node() -> None:
        deadline = time.time() + 120
        while not started.exists() and time.time() < deadline:
            time.sleep(0.1)
        head.remove_node(worker)

    killer = threading.Thread(target=kill_worker_node, daemon=True)
    killer.start()
    runs = pipeline(tmp_path, f"lost-{time.time_ns()}", postgres_url)
    failed = RayRunner(head.address, shared_root=True, display="none").run(runs)
    killer.join()
    assert failed.status == "FAILED" and failed["Gen"].ok
    assert "Ray task running Wide was lost" in failed["Wide"].error
    assert "--resume" in failed.resume_command or "resume=" in failed.resume_command

    head.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    head.wait_for_nodes()
    (tmp_path / "hold").unlink()
    resumed = RayRunner(head.address, shared_root=True, display="none").run(
        runs, resume=failed.run_id
    )
    assert resumed.ok, resumed.message
    assert resumed["Gen"].resumed and resumed["Wide"].state == "COMPLETE"
