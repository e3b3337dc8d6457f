"""The penguin example with a trainer that is not Python: a shell and awk script learns
per-species centroids from a CSV export, and Evaluator scores them through a Python
``predict_fn`` in a normal local run, then from the cache; the same pipeline compiles for
Kubeflow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.cli.main import main
from conveyor.evaluation import load_evaluation
from conveyor.frameworks import load_model
from conveyor.metadata import MetadataStore
from conveyor.types import ConveyorError

PIPELINE = Path(__file__).resolve().parents[2] / "examples" / "penguin_container" / "pipeline.py"
NODES = ["CsvExampleGen", "Transform", "ExportCsv", "CentroidTrainer", "PackageModel",
         "Evaluator"]  # fmt: skip


def _run(tmp_path: Path) -> dict:
    url = f"sqlite:///{tmp_path}/md.db"
    assert main(["run", str(PIPELINE), "--metadata-url", url, "--root", str(tmp_path)]) == 0
    store = MetadataStore(url)
    try:
        [run] = store.runs(limit=1)
        executions = {e.node_id: e for e in store.executions(run_id=run.run_id)}
        ids = [i for e in executions.values() for ids in e.outputs.values() for i in ids]
        artifacts = {a.id: a for a in store.artifacts(artifact_ids=ids)}
    finally:
        store.close()
    return {node: (e.state, {k: artifacts[v[0]] for k, v in e.outputs.items()}, e.log_uri)
            for node, e in executions.items()}  # fmt: skip


def test_penguin_container_trainer_is_scored_by_the_evaluator(tmp_path):
    cold = _run(tmp_path)
    assert {node: state for node, (state, _, _) in cold.items()} == dict.fromkeys(NODES, "COMPLETE")
    _, trainer_outputs, trainer_log = cold["CentroidTrainer"]
    centroids = Path(trainer_outputs["model"].uri, "centroids.csv").read_text().splitlines()
    assert centroids[0].startswith("species,") and len(centroids) == 4  # header + 3 species
    assert "rows, 3 classes" in Path(trainer_log).read_text()

    evaluation = load_evaluation(cold["Evaluator"][1]["evaluation"].uri)
    assert evaluation.blessed and evaluation.metrics()["accuracy"] > 0.9
    assert json.loads(Path(cold["Evaluator"][1]["blessing"].uri, "blessing.json").read_text())

    bundle = load_model(cold["PackageModel"][1]["model"].uri)
    assert bundle.class_names == ["Adelie", "Chinstrap", "Gentoo"]
    with pytest.raises(ConveyorError, match="score it with a predict_fn"):
        bundle.predict([{"culmen_length_mm": 0.3, "culmen_depth_mm": 0.5,
                         "flipper_length_mm": 0.2, "body_mass_g": 0.3}])  # fmt: skip

    warm = _run(tmp_path)
    assert {node: state for node, (state, _, _) in warm.items()} == dict.fromkeys(NODES, "CACHED")


def test_penguin_container_pipeline_compiles_for_kubeflow(tmp_path):
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("kfp")
    out = tmp_path / "penguin.yaml"
    assert main(["compile", str(PIPELINE), "-o", str(out), "--image", "reg/cv:1"]) == 0
    spec = yaml.safe_load(out.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(t["taskInfo"]["name"] for t in tasks.values()) == sorted(NODES)
    assert tasks["packagemodel"]["dependentTasks"] == ["centroidtrainer", "transform"]


def test_penguin_container_runs_step_by_step_from_its_kubeflow_definition(tmp_path):
    """Each task of the compiled YAML runs as KFP would start it (its command, its arguments
    with the parameters filled in), in an order the DAG allows."""
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("kfp")
    out = tmp_path / "penguin.yaml"
    assert main(["compile", str(PIPELINE), "-o", str(out)]) == 0
    spec = yaml.safe_load(out.read_text())
    url = f"sqlite:///{tmp_path}/md.db"
    values = {"run_id": "job-1", "metadata_url": url, "pipeline_root": str(tmp_path / "root")}
    tasks, done = spec["root"]["dag"]["tasks"], []
    while len(done) < len(tasks):
        ready = [k for k, t in tasks.items()
                 if k not in done and set(t.get("dependentTasks", [])) <= set(done)]  # fmt: skip
        for key in ready:
            label = spec["components"][tasks[key]["componentRef"]["name"]]["executorLabel"]
            container = spec["deploymentSpec"]["executors"][label]["container"]
            args = [re.sub(r"\{\{\$\.inputs\.parameters\['(\w+)'\]\}\}", lambda m: values[m[1]], a)
                    for a in container["args"]]  # fmt: skip
            step = subprocess.run([sys.executable, *container["command"][1:], *args],
                                  capture_output=True, text=True, timeout=300)  # fmt: skip
            assert step.returncode == 0, step.stderr
            done.append(key)
    store = MetadataStore(url)
    try:
        assert store.get_run("job-1").status == "COMPLETE"
        [evaluation] = store.artifacts(run_id="job-1", type_name="ModelEvaluation")
    finally:
        store.close()
    assert evaluation.properties["blessed"] is True
    assert evaluation.properties["overall"]["accuracy"] > 0.9
