"""Bad input is reported, never a crash: missing labels, labels the model never saw, NaN
predictions, metrics undefined on a slice, thresholds on undefined metrics, unknown features
(caught before anything is predicted)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conveyor.evaluation import (
    EvalConfig,
    EvalConfigError,
    MetricThreshold,
    SlicingSpec,
    bless,
    evaluate,
)
from conveyor.frameworks import load_model
from conveyor.types import ConveyorError


def never_called(model, batch):
    raise AssertionError("predicted before checking the config")


def by_slice(evaluation) -> dict:
    return {r.slice: r for r in evaluation.candidate}


def test_missing_label_column_is_an_error_naming_it_and_the_split(table, write_examples, bundles):
    examples = write_examples(table.drop_columns(["kind"]), split="eval")
    with pytest.raises(EvalConfigError) as caught:
        evaluate(examples, bundles["multiclass"], EvalConfig(label_key="kind"),
                 predict_fn=never_called)  # fmt: skip
    message = str(caught.value)
    assert "label_key names feature 'kind'" in message and "split 'eval'" in message
    assert "Available: x1, x2, x3" in message


def test_default_label_missing_asks_for_label_key(table, write_examples, bundles):
    examples = write_examples(table.drop_columns(["kind"]))
    with pytest.raises(ConveyorError, match="model's label 'kind' is not a column.*label_key"):
        evaluate(examples, bundles["multiclass"], predict_fn=never_called)


def test_split_without_any_label_is_an_error_before_predicting(table, write_examples, bundles):
    empty = table.set_column(table.schema.get_field_index("kind"), "kind",
                             pa.nulls(len(table), pa.int64()))  # fmt: skip
    examples = write_examples(splits={"eval": empty, "train": table})
    with pytest.raises(ConveyorError) as caught:
        evaluate(examples, bundles["multiclass"], predict_fn=never_called)
    assert "label column 'kind' of split 'eval'" in str(caught.value)
    assert "holds no labels (1500 rows, all missing)" in str(caught.value)


def test_rows_without_a_label_are_left_out_and_counted(table, write_examples, bundles):
    holes = pa.array([None if i % 10 == 0 else v for i, v in enumerate(table["kind"].to_pylist())])
    examples = write_examples(table.set_column(table.schema.get_field_index("kind"), "kind", holes))
    result = evaluate(examples, bundles["multiclass"])
    assert result.excluded == {"missing label": 150}
    assert result.num_examples == {"eval": 1500}
    assert result.candidate[0].metrics["example_count"] == 1350


def test_unseen_label_values_count_as_wrong_and_are_listed(table, write_examples, bundles):
    answer = table["answer"].to_pylist()
    answer[:30] = ["maybe"] * 30
    examples = write_examples(table.set_column(table.schema.get_field_index("answer"), "answer",
                                               pa.array(answer)))  # fmt: skip
    config = EvalConfig(metrics=["accuracy", "log_loss", "confusion_matrix"])
    result = evaluate(examples, bundles["binary"], config)
    overall = result.candidate[0]
    assert result.unseen_labels == {"maybe": 30}
    assert "30 rows have a label the model never saw" in overall.notes[0]
    proba = load_model(bundles["binary"]).predict_proba(table)
    truth = np.array([a == "yes" for a in answer])
    right = (proba.argmax(axis=1) == truth)[30:].sum()
    assert overall.metrics["accuracy"] == pytest.approx(right / 1500)
    matrix = overall.plots["confusion_matrix"]
    assert matrix["true"] == ["no", "yes", "(unseen label)"] and sum(matrix["matrix"][2]) == 30


def test_labels_of_a_type_the_model_never_saw_are_all_unseen(table, write_examples, bundles):
    names = pa.array(np.array(["a", "b", "c"])[table["kind"].to_numpy()])
    examples = write_examples(table.set_column(table.schema.get_field_index("kind"), "kind", names))
    config = EvalConfig(class_names=[10, 11, 12], metrics=["accuracy", "roc_auc"])
    result = evaluate(examples, bundles["multiclass"], config)
    overall = result.candidate[0]
    assert overall.metrics["accuracy"] == 0.0
    assert overall.metrics["roc_auc"] is None
    assert overall.undefined["roc_auc"] == "no rows with a label the model knows"
    assert set(result.unseen_labels) == {"a", "b", "c"}


def nan_for_red(model, batch):
    proba = model.predict_proba(batch)
    red = np.asarray(pc.equal(batch.column("color"), "red").to_numpy(zero_copy_only=False))
    proba[red & (np.arange(len(proba)) % 2 == 0)] = np.nan
    return proba


def test_nan_predictions_make_the_slice_undefined_with_the_reason(examples, bundles):
    config = EvalConfig(
        metrics=["accuracy", "roc_auc", "log_loss"],
        slicing_specs=[SlicingSpec(feature_keys=["color"])],
        thresholds={"accuracy": MetricThreshold(lower=0.5, slices=["*"])},
    )
    result = evaluate(examples, bundles["multiclass"], config, predict_fn=nan_for_red)
    slices = by_slice(result)
    red, blue = slices["color=red"], slices["color=blue"]
    assert red.metrics["accuracy"] is None and red.metrics["roc_auc"] is None
    nan_rows = red.undefined["accuracy"].split(" of ")[0]
    assert red.undefined["accuracy"] == (
        f"{nan_rows} of {int(red.metrics['example_count'])} predictions are NaN"
    )
    assert int(nan_rows) > 0 and red.metrics["example_count"] > 0
    assert blue.metrics["accuracy"] > 0.5 and blue.undefined == {}
    assert slices["Overall"].metrics["accuracy"] is None  # Overall holds the red rows too

    blessing = bless(result)
    assert not blessing.blessed
    assert any(r.startswith("accuracy on color=red is undefined (") for r in blessing.reasons)


def test_one_class_slice_has_no_auc_and_a_threshold_on_it_fails(examples, bundles):
    config = EvalConfig(
        metrics=["accuracy", "roc_auc", "pr_auc"],
        slicing_specs=[SlicingSpec(feature_keys=["answer"])],
        thresholds={"roc_auc": MetricThreshold(lower=0.5, slices=["answer=yes"])},
    )
    result = evaluate(examples, bundles["binary"], config)
    yes = by_slice(result)["answer=yes"]
    assert yes.metrics["accuracy"] is not None
    assert yes.metrics["roc_auc"] is None
    assert yes.undefined["roc_auc"] == (
        "only one class (yes) among this slice's labels: ROC AUC needs two"
    )
    no = by_slice(result)["answer=no"]
    assert no.undefined["pr_auc"] == (
        "no label of the positive class (yes) in this slice: PR AUC needs some"
    )

    blessing = bless(result)
    assert not blessing.blessed
    assert blessing.reasons == [
        "roc_auc on answer=yes is undefined (only one class (yes) among this slice's labels: "
        "ROC AUC needs two), so its threshold cannot pass"
    ]


def test_unknown_slicing_feature_fails_before_any_prediction(examples, bundles):
    config = EvalConfig(slicing_specs=[SlicingSpec(feature_keys=["colour"])])
    with pytest.raises(EvalConfigError) as caught:
        evaluate(examples, bundles["multiclass"], config, predict_fn=never_called)
    message = str(caught.value)
    assert "slicing_specs[0] names feature 'colour'" in message
    assert "Did you mean 'color'?" in message and "Available: x1, x2, x3, color" in message


def test_metric_of_the_wrong_task_or_a_binary_metric_on_three_classes(examples, bundles):
    with pytest.raises(EvalConfigError, match="'mse', not metrics of classification"):
        evaluate(examples, bundles["multiclass"], EvalConfig(metrics=["mse"]))
    with pytest.raises(EvalConfigError, match="has 3 classes. Name their averages instead: "
                       "precision_macro"):  # fmt: skip
        evaluate(examples, bundles["multiclass"], EvalConfig(metrics=["precision"]))


def test_negative_weights_are_refused(table, write_examples, bundles):
    weights = pc.subtract(table["w"], 1.0)
    examples = write_examples(table.set_column(table.schema.get_field_index("w"), "w", weights))
    with pytest.raises(ConveyorError, match="'w' has negative values"):
        evaluate(examples, bundles["multiclass"], EvalConfig(example_weight_key="w"))
