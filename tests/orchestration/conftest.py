"""Fixtures for the runner tests: what a run recorded, and the penguin training nodes."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest


def _recorded(metadata_url: str, run_id: str) -> dict[str, tuple]:
    """Per node of run ``run_id``: the execution's state and its outputs' types and
    properties, as the metadata store has them."""
    from conveyor.metadata import MetadataStore

    store = MetadataStore(metadata_url)
    try:
        found = {}
        for execution in store.executions(run_id=run_id):
            ids = sorted(i for ids in execution.outputs.values() for i in ids)
            outputs = sorted(
                (a.type_name, json.dumps(a.properties, sort_keys=True))
                for a in store.artifacts(artifact_ids=ids)
            )
            found[execution.node_id] = (execution.state, outputs)
        return found
    finally:
        store.close()


@pytest.fixture
def recorded() -> Callable[[str, str], dict[str, tuple]]:
    return _recorded


def _suite_module(path: str) -> ModuleType:
    """A module of the test suite by its path under tests/."""
    file = Path(__file__).resolve().parents[1] / path
    spec = importlib.util.spec_from_file_location(f"_orchestration_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def penguin_training() -> Callable[[Path], list]:
    """Makes CsvExampleGen, Transform and a scikit-learn Trainer over the penguin data
    (those of tests/components), their files under the given folder."""
    from conveyor.components import Trainer

    penguin_nodes = _suite_module("components/conftest.py")._penguin_nodes
    trainer_module = _suite_module("components/test_trainer.py").TRAINER_MODULE

    def make(folder: Path) -> list:
        folder.mkdir(parents=True, exist_ok=True)
        example_gen, transform = penguin_nodes(folder)
        module = folder / "penguin_trainer.py"
        module.write_text(trainer_module)
        trainer = Trainer(
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            module_file=str(module),
        )
        return [example_gen, transform, trainer]

    return make


@contextlib.contextmanager
def _two_node_cluster(*, ray_data_always: bool = False) -> Iterator[tuple[object, object]]:
    """A Ray head (1 CPU) and a worker node (2 CPUs) as separate processes, on loopback.

    Both nodes start with this process's environment, so they see whatever it sees (an S3
    endpoint's settings, say). With `ray_data_always`, Ray Data passes are taken for splits
    of any size while the cluster is up. Yields (cluster, worker node)."""
    from ray import cluster_utils

    from conveyor.io import distributed

    # Loopback only: tests/conftest.py sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray
    # is imported, and each node binds 127.0.0.1.
    with pytest.MonkeyPatch.context() as env:  # the environment is restored on the way out
        if ray_data_always:
            env.setenv(distributed.MIN_ROWS_ENV, "0")
        loopback = {"node_ip_address": "127.0.0.1"}  # not the machine's external interface
        cluster = cluster_utils.Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False, **loopback},
        )
        try:
            worker = cluster.add_node(num_cpus=2, **loopback)
            cluster.wait_for_nodes()
            yield cluster, worker
        finally:
            distributed.shutdown()
            cluster.shutdown()


@pytest.fixture(scope="session")
def two_node_cluster() -> Callable[..., contextlib.AbstractContextManager]:
    """Starts a two-node Ray cluster on loopback: `with two_node_cluster() as (cluster, worker)`."""
    return _two_node_cluster


def _local_and_ray(make: Callable, tmp: Path, name: str, cluster, metadata_url: str) -> tuple:
    """`make(folder, name, metadata_url)`'s pipeline run by the local runner (its own SQLite
    store) and by the Ray runner on `cluster` (the shared store at `metadata_url`)."""
    from conveyor import LocalRunner, RayRunner

    local = make(tmp / "local", f"{name}-local", f"sqlite:///{tmp / 'md.db'}")
    by_local = LocalRunner(display="none").run(local)
    on_ray = make(tmp / "ray", f"{name}-ray-{time.time_ns()}", metadata_url)
    by_ray = RayRunner(cluster.address, shared_root=True, display="none").run(on_ray)
    assert by_local.ok, by_local.message
    assert by_ray.ok, by_ray.message
    return by_local, by_ray


@pytest.fixture(scope="session")
def local_and_ray() -> Callable[..., tuple]:
    """Runs one pipeline by both runners: `local_and_ray(make, tmp, name, cluster, url)`."""
    return _local_and_ray


def _assert_same(found, expected, where: str = "", *, rel: float = 1e-9, abs: float = 1e-12):
    """Equal, floats to `rel`/`abs`: partial results merge in another order than one pass."""
    if isinstance(expected, dict):
        assert sorted(found) == sorted(expected), where
        for key in expected:
            _assert_same(found[key], expected[key], f"{where}/{key}", rel=rel, abs=abs)
    elif isinstance(expected, list):
        assert len(found) == len(expected), where
        for i, (a, b) in enumerate(zip(found, expected, strict=True)):
            _assert_same(a, b, f"{where}[{i}]", rel=rel, abs=abs)
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=rel, abs=abs), where
    else:
        assert found == expected, where


@pytest.fixture(scope="session")
def assert_same() -> Callable[..., None]:
    """Asserts nested results equal, floats within `rel`/`abs`, naming the first place not."""
    return _assert_same
