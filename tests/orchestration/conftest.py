"""Fixtures for the runner tests: what a run recorded, and the penguin training nodes."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
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

    keys = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", distributed.MIN_ROWS_ENV)
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if ray_data_always:
        os.environ[distributed.MIN_ROWS_ENV] = "0"
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
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def two_node_cluster() -> Callable[..., contextlib.AbstractContextManager]:
    """Starts a two-node Ray cluster on loopback: `with two_node_cluster() as (cluster, worker)`."""
    return _two_node_cluster
