"""``python -m conveyor.entrypoint``: a pipeline executed one node per process (as Kubeflow
runs it) leaves the same record in the metadata store as the local runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conveyor import LocalRunner
from conveyor.cli.pipeline_file import load_pipeline
from conveyor.metadata import MetadataStore

PIPELINE = """
import json
from pathlib import Path

from conveyor import Input, Output, Param, Pipeline, component
from conveyor.types import Examples, Model, ModelEvaluation


@component
def Gen(examples: Output[Examples], n: Param[int] = 4):
    Path(examples.uri, "data.json").write_text(json.dumps(list(range(n))))
    examples.properties["rows"] = n
    print("generated", n, "rows")


@component
def Train(examples: Input[Examples], model: Output[Model]):
    data = json.loads(Path(examples.uri, "data.json").read_text())
    model.properties["weight"] = sum(data)


@component
def Check(examples: Input[Examples], model: Input[Model], evaluation: Output[ModelEvaluation]):
    evaluation.properties["ok"] = model.properties["weight"] > examples.properties["rows"]


def create_pipeline():
    gen = Gen(n=5)
    train = Train(examples=gen.outputs["examples"])
    check = Check(examples=gen.outputs["examples"], model=train.outputs["model"])
    return Pipeline("steps", [gen, train, check])
"""
NODES = ["Gen", "Train", "Check"]


def _entrypoint(pipeline_file: Path, node: str, run_id: str, url: str, root: Path, *extra: str):
    command = [sys.executable, "-m", "conveyor.entrypoint", str(pipeline_file), "--node", node,
               "--run-id", run_id, "--metadata-url", url, "--pipeline-root", str(root),
               *extra]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _record(url: str, run_id: str) -> dict:
    """A run as the store has it, with ids and folders replaced by node names."""
    store = MetadataStore(url)
    try:
        run = store.get_run(run_id)
        executions = store.executions(run_id=run_id)
        produced = {i: (e.node_id, key) for e in executions for key, ids in e.outputs.items()
                    for i in ids}  # fmt: skip
        artifacts = {a.id: a for a in store.artifacts(artifact_ids=sorted(produced))}
        return {
            "status": run.status,
            "states": {e.node_id: e.state for e in executions},
            "outputs": {
                produced[i]: (type(a).__name__, a.properties, a.state, Path(a.uri).parts[-3:-1])
                for i, a in artifacts.items()
            },
            "inputs": {e.node_id: {k: sorted(produced[i] for i in ids)
                                   for k, ids in e.inputs.items()} for e in executions},
        }  # fmt: skip
    finally:
        store.close()


def test_entrypoint_records_what_the_local_runner_records(tmp_path, monkeypatch):
    pipeline_file = tmp_path / "steps_pipeline.py"
    pipeline_file.write_text(PIPELINE)
    local_url, steps_url = f"sqlite:///{tmp_path}/local.db", f"sqlite:///{tmp_path}/steps.db"
    pipeline = load_pipeline(pipeline_file)
    pipeline.metadata_url, pipeline.root = local_url, str(tmp_path / "local")
    for run_id in ("cold", "warm"):
        assert LocalRunner(display="none").run(pipeline, run_id=run_id).ok

    for run_id in ("cold", "warm"):
        for node in NODES:
            done = _entrypoint(pipeline_file, node, run_id, steps_url, tmp_path / "steps")
            assert done.returncode == 0, done.stderr
            assert f"steps {run_id} {node}: " in done.stdout

    cold = _record(steps_url, "cold")
    assert cold == _record(local_url, "cold")
    assert cold["status"] == "COMPLETE" and set(cold["states"].values()) == {"COMPLETE"}
    assert cold["outputs"][("Check", "evaluation")][1] == {"ok": True}
    assert cold["inputs"]["Check"] == {"examples": [("Gen", "examples")],
                                       "model": [("Train", "model")]}  # fmt: skip
    warm = _record(steps_url, "warm")
    assert warm == _record(local_url, "warm")
    assert warm["states"] == dict.fromkeys(NODES, "CACHED")


def test_entrypoint_prints_the_log_and_reruns_without_cache(tmp_path):
    pipeline_file = tmp_path / "steps_pipeline.py"
    pipeline_file.write_text(PIPELINE)
    url = f"sqlite:///{tmp_path}/md.db"
    first = _entrypoint(pipeline_file, "Gen", "r1", url, tmp_path / "root")
    assert "generated 5 rows" in first.stdout
    again = _entrypoint(pipeline_file, "Gen", "r2", url, tmp_path / "root", "--no-cache")
    assert again.returncode == 0 and "Gen: COMPLETE" in again.stdout


def test_entrypoint_refuses_a_node_whose_upstream_has_not_run(tmp_path):
    pipeline_file = tmp_path / "steps_pipeline.py"
    pipeline_file.write_text(PIPELINE)
    url = f"sqlite:///{tmp_path}/md.db"
    done = _entrypoint(pipeline_file, "Train", "r1", url, tmp_path / "root")
    assert done.returncode == 1
    assert "needs the outputs of Gen" in done.stderr and "--run-id" in done.stderr
    assert _record(url, "r1")["status"] == "FAILED"


def test_entrypoint_names_an_unknown_node(tmp_path):
    pipeline_file = tmp_path / "steps_pipeline.py"
    pipeline_file.write_text(PIPELINE)
    done = _entrypoint(pipeline_file, "Pusher", "r1", f"sqlite:///{tmp_path}/md.db", tmp_path)
    assert done.returncode == 2
    assert "has no node 'Pusher'" in done.stderr and "Gen, Train, Check" in done.stderr


def test_entrypoint_loads_the_pipeline_from_a_module(tmp_path, monkeypatch):
    (tmp_path / "steps_pipeline.py").write_text(PIPELINE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    url = f"sqlite:///{tmp_path}/md.db"
    done = _entrypoint(Path("steps_pipeline"), "Gen", "r1", url, tmp_path / "root")
    assert done.returncode == 0, done.stderr
    missing = _entrypoint(Path("no_such_pipeline"), "Gen", "r1", url, tmp_path / "root")
    assert missing.returncode == 2 and "Cannot import pipeline module" in missing.stderr
