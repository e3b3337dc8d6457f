"""An evaluation's files and load_evaluation: slices, metrics, undefined reasons, plots,
the baseline diff, the Parquet table; predict_fn outputs picked by prediction_key."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conveyor.evaluation import (
    ChangeThreshold,
    EvalConfig,
    MetricThreshold,
    SlicingSpec,
    bless,
    evaluate,
    load_evaluation,
    write_evaluation,
)
from conveyor.types import ConveyorError, ModelEvaluation

CONFIG = EvalConfig(
    label_key="kind",
    metrics=["accuracy", "f1_macro", "roc_auc", "log_loss", "confusion_matrix", "calibration"],
    slicing_specs=[SlicingSpec(feature_keys=["color"])],
    thresholds={"accuracy": MetricThreshold(lower=0.5, change=ChangeThreshold(absolute=0))},
)


@pytest.fixture(scope="module")
def written(tmp_path_factory, examples, bundles) -> str:
    evaluation = evaluate(examples, bundles["weak"], CONFIG, baseline_model=bundles["multiclass"])
    folder = tmp_path_factory.mktemp("evaluation")
    write_evaluation(str(folder), evaluation, bless(evaluation))
    return str(folder)


def test_load_evaluation_gives_slices_metrics_and_the_verdict(written):
    result = load_evaluation(ModelEvaluation(written))
    assert result.slices() == ["Overall", "color=blue", "color=green", "color=red"]
    overall = result.metrics()
    assert set(overall) == {"example_count", "accuracy", "f1_macro", "roc_auc", "log_loss"}
    assert overall["example_count"] == 1500
    assert result.metrics("color=red")["example_count"] < 1500
    assert result.blessed is False
    assert any(r.startswith("accuracy on Overall is") and "against the baseline's" in r
               for r in result.reasons)  # fmt: skip
    assert result.config == CONFIG


def test_load_evaluation_gives_the_baseline_and_the_diff(written):
    result = load_evaluation(written)
    assert result.has_baseline
    change = result.diff()["accuracy"]
    assert change["candidate"] == result.metrics()["accuracy"]
    assert change["baseline"] == result.baseline_metrics()["accuracy"]
    assert change["change"] == pytest.approx(change["candidate"] - change["baseline"])
    assert change["relative_change"] == pytest.approx(change["change"] / change["baseline"])
    on_disk = json.loads(Path(written, "diff.json").read_text())
    assert on_disk["color=red"]["accuracy"] == result.diff("color=red")["accuracy"]


def test_load_evaluation_gives_plot_data(written):
    plots = load_evaluation(written).plots("color=blue")
    assert set(plots) == {"confusion_matrix", "calibration", "roc"}
    assert plots["calibration"]["kind"] == "confidence (top class)"
    assert set(plots["roc"]) == {"a", "b", "c"}


def test_metrics_parquet_has_a_row_per_model_and_slice(written):
    table = pq.read_table(Path(written, "metrics.parquet")).to_pylist()
    assert [(r["model"], r["slice"]) for r in table[:2]] == [
        ("candidate", "Overall"), ("candidate", "color=blue")]  # fmt: skip
    assert len(table) == 8
    overall = load_evaluation(written).metrics()
    assert table[0]["accuracy"] == overall["accuracy"]


def test_load_evaluation_unknown_slice_and_wrong_folder(written, tmp_path):
    with pytest.raises(ConveyorError, match="no slice 'color=Red'. Did you mean 'color=red'?"):
        load_evaluation(written).metrics("color=Red")
    with pytest.raises(ConveyorError, match="holds no metrics.json"):
        load_evaluation(str(tmp_path))


def outputs_by_name(model, batch):
    proba = model.predict_proba(batch)
    return {"scores": proba[:, ::-1], "probs": proba}


def test_predict_fn_dict_output_is_picked_by_prediction_key(examples, bundles):
    plain = evaluate(examples, bundles["multiclass"], EvalConfig(metrics=["accuracy"]))
    picked = evaluate(examples, bundles["multiclass"], EvalConfig(
        metrics=["accuracy"], prediction_key="probs"), predict_fn=outputs_by_name)  # fmt: skip
    assert picked.candidate[0].metrics == plain.candidate[0].metrics
    with pytest.raises(ConveyorError, match="prediction_key \\('nope'\\) must name one of them"):
        evaluate(examples, bundles["multiclass"], EvalConfig(prediction_key="nope"),
                 predict_fn=outputs_by_name)  # fmt: skip
