"""The second example: TFX's Chicago taxi pipeline with a LightGBM model. The Evaluator
derives the label ``tips_xf`` from the raw trips with the bundle's own transform, slices by
hour, and its figures are sklearn.metrics' on the same rows and predictions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

import conveyor
from conveyor import LocalRunner, io
from conveyor.evaluation import load_evaluation

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chicago_taxi"


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("taxi")
    spec = importlib.util.spec_from_file_location("taxi_pipeline", EXAMPLE / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    pipeline = module.create_pipeline(
        root=tmp / "root", metadata_url=f"sqlite:///{tmp}/md.db", push_destination=tmp / "push"
    )
    result = LocalRunner(display="none").run(pipeline)
    assert result.ok, result.message
    return result, tmp


def test_taxi_evaluator_derives_the_label_and_agrees_with_sklearn(taxi_run):
    result, _ = taxi_run
    evaluation = load_evaluation(result["Evaluator"].outputs["evaluation"][0])
    assert evaluation.blessed, evaluation.reasons
    hours = [key for key in evaluation.slices() if key.startswith("trip_start_hour=")]
    assert len(hours) == 24
    rows = io.read_table(result["CsvExampleGen"].outputs["examples"][0], "eval")
    bundle = conveyor.load_model(result["Trainer"].outputs["model"][0])
    fare = rows.column("fare").to_numpy(zero_copy_only=False)
    tips = np.nan_to_num(rows.column("tips").to_numpy(zero_copy_only=False))
    labels = np.where(np.isnan(fare), 0, tips > np.nan_to_num(fare) * 0.2).astype(int)
    scores = bundle.predict_proba(rows)[:, 1]
    overall = evaluation.metrics()
    assert overall["example_count"] == rows.num_rows
    assert overall["accuracy"] == pytest.approx(accuracy_score(labels, scores > 0.5))
    assert overall["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), rel=1e-6)
    hour = rows.column("trip_start_hour").to_numpy(zero_copy_only=False) == 8
    at_eight = evaluation.metrics("trip_start_hour=8")
    assert at_eight["example_count"] == hour.sum()
    assert at_eight["roc_auc"] == pytest.approx(roc_auc_score(labels[hour], scores[hour]))


def test_taxi_bundle_serves_raw_trips_with_census_tracts_beyond_float32(taxi_run):
    result, tmp = taxi_run
    pushed = result["Pusher"].outputs["pushed_model"][0]
    assert pushed.properties["pushed"] is True and pushed.properties["pushed_version"] == 1
    bundle = conveyor.load_model(str(tmp / "push" / "1"))
    rows = io.read_table(result["CsvExampleGen"].outputs["examples"][0], "eval")
    rows = rows.filter(rows.column("dropoff_census_tract").is_valid()).slice(0, 50)
    assert rows.num_rows == 50
    assert min(rows.column("dropoff_census_tract").to_pylist()) > 2**24  # e.g. 17031832200
    raw = rows.drop_columns(["tips"]).to_pylist()  # what a client sends: no label
    assert (bundle.predict(raw) == bundle.predict(rows)).all()
