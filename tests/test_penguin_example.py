"""The README's main job: the full penguin pipeline (ExampleGen to Pusher and BulkInferrer,
a scikit-learn Trainer) runs cold, re-runs against its own blessed model as the baseline,
then comes back entirely from the cache; a worse model is neither blessed nor pushed, and a
server watching the push destination keeps the old version."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from conveyor import LocalRunner
from conveyor.cli.main import main
from conveyor.evaluation import load_evaluation
from conveyor.serving import start_server

PIPELINE = Path(__file__).resolve().parents[1] / "examples" / "penguin" / "pipeline.py"
NODES = ["CsvExampleGen", "UnlabelledExampleGen", "StatisticsGen", "SchemaGen",
         "ExampleValidator", "Transform", "Trainer", "LatestBlessedModel", "Evaluator",
         "InfraValidator", "Pusher", "BulkInferrer"]  # fmt: skip
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]

# A Trainer module that learns nothing: it always predicts the most frequent species.
CRIPPLED = """
from sklearn.dummy import DummyClassifier

from conveyor.frameworks import save_model


def run_fn(fn_args):
    data = fn_args.data_accessor
    features = data.feature_names("train", label="species")
    X, y = data.to_numpy("train", features=features, label="species")
    model = DummyClassifier(strategy="most_frequent").fit(X, y)
    save_model(model, fn_args.serving_model_dir, features=features, label="species",
               class_names=["Adelie", "Chinstrap", "Gentoo"], transform=fn_args.transform_graph)
"""


def _json(capsys, *args: str):
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _states(capsys, run_id: str) -> dict[str, str]:
    return {e["node_id"]: e["state"] for e in _json(capsys, "executions", run_id)}


def _pipeline_module():
    spec = importlib.util.spec_from_file_location("penguin_pipeline_under_test", PIPELINE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_penguin_example_runs_evaluates_pushes_and_caches(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PUSH_DESTINATION", str(tmp_path / "serving"))
    for _ in range(3):
        assert main(["run", str(PIPELINE)]) == 0
    runs = _json(capsys, "runs")
    assert [r["status"] for r in runs] == ["COMPLETE"] * 3
    cold, baseline, cached = (_states(capsys, r["run_id"]) for r in reversed(runs))
    assert set(cold.values()) == {"COMPLETE"} and sorted(cold) == sorted(NODES)
    # The second run has a baseline (the first run's model): Evaluator compares them.
    assert baseline["Evaluator"] == "COMPLETE" and baseline["Trainer"] == "CACHED"
    assert cached == {**dict.fromkeys(NODES, "CACHED"), "LatestBlessedModel": "COMPLETE"}

    [anomalies] = _json(capsys, "artifacts", "--type", "ExampleAnomalies")
    assert anomalies["properties"]["has_anomalies"] is False
    first, second = sorted(_json(capsys, "artifacts", "--type", "ModelEvaluation"),
                           key=lambda a: a["id"])  # fmt: skip
    result = load_evaluation(first["uri"])
    assert result.blessed and result.metrics()["accuracy"] > 0.9
    assert sorted(result.slices()) == ["Overall", "species=0", "species=1", "species=2"]
    assert second["properties"]["baseline_model_id"] == first["properties"]["model_id"]
    blessings = _json(capsys, "artifacts", "--type", "ModelBlessing")
    assert all(b["properties"]["blessed"] for b in blessings)
    [infra] = _json(capsys, "artifacts", "--type", "InfraBlessing")
    assert infra["properties"]["blessed"] is True
    pushes = sorted(_json(capsys, "artifacts", "--type", "PushedModel"), key=lambda a: a["id"])
    assert [p["properties"]["pushed_version"] for p in pushes] == [1, 1]
    assert pushes[1]["properties"]["already_latest"] is True
    assert sorted(p.name for p in (tmp_path / "serving").iterdir()) == ["1"]
    [inference] = _json(capsys, "artifacts", "--type", "InferenceResult")[:1]
    table = pq.read_table(Path(inference["uri"], "Split-unlabelled"))
    assert table.num_rows == 10 and set(table.column("prediction").to_pylist()) <= set(SPECIES)
    [model] = _json(capsys, "artifacts", "--type", "Model")
    assert model["properties"]["has_transform"] is True
    assert model["properties"]["class_names"] == SPECIES


def test_penguin_worse_model_is_not_blessed_and_the_served_version_stays(tmp_path):
    module = _pipeline_module()
    serving = tmp_path / "serving"
    options = {"root": tmp_path / "root", "metadata_url": f"sqlite:///{tmp_path}/md.db",
               "push_destination": serving}  # fmt: skip
    good = LocalRunner(display="none").run(module.create_pipeline("sklearn", **options))
    assert good.ok, good.message
    crippled = tmp_path / "crippled.py"
    crippled.write_text(CRIPPLED)
    worse_pipeline = module.create_pipeline("sklearn", module_file=crippled, **options)
    with start_server(model_name="penguin", model_base=str(serving), poll_s=0.2) as server:
        worse = LocalRunner(display="none").run(worse_pipeline)
        assert worse.ok, worse.message
        status = httpx.get(f"{server.url}/v1/models/penguin").json()
    [version] = [v for v in status["model_version_status"] if v["state"] == "AVAILABLE"]
    assert version["version"] == "1"
    blessing = worse["Evaluator"].outputs["blessing"][0]
    assert blessing.properties["blessed"] is False
    assert any("accuracy" in reason for reason in blessing.properties["reasons"])
    pushed = worse["Pusher"].outputs["pushed_model"][0]
    assert pushed.properties["pushed"] is False and pushed.properties["reasons"]
    assert sorted(p.name for p in serving.iterdir()) == ["1"]
    inference = worse["BulkInferrer"].outputs["inference_result"][0]
    assert inference.properties["inferred"] is False
