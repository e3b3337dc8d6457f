"""Every metric agrees with sklearn.metrics on the same predictions: binary and three-class,
weighted and not, overall and on a slice, whatever the batch size."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from conveyor.evaluation import EvalConfig, SlicingSpec, evaluate, metric_names
from conveyor.frameworks import load_model

CLASSIFICATION = [n for n in metric_names("classification")
                  if n not in ("confusion_matrix", "calibration")]  # fmt: skip
REGRESSION = metric_names("regression")


def sklearn_classification(y, proba, w, binary: bool) -> dict[str, float]:
    pred = proba.argmax(axis=1)
    labels = list(range(proba.shape[1]))
    out = {
        "example_count": len(y),
        "weighted_example_count": len(y) if w is None else w.sum(),
        "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred, sample_weight=w),
        "log_loss": skm.log_loss(y, proba, sample_weight=w, labels=labels),
        "brier_score": skm.brier_score_loss(
            y, proba if not binary else proba[:, 1], sample_weight=w
        ),
    }
    for stem, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("f1", skm.f1_score)):  # fmt: skip
        for average in ("macro", "micro", "weighted"):
            out[f"{stem}_{average}"] = fn(y, pred, average=average, sample_weight=w)
        if binary:
            out[stem] = fn(y, pred, sample_weight=w)
    if binary:
        out["roc_auc"] = skm.roc_auc_score(y, proba[:, 1], sample_weight=w)
        out["pr_auc"] = skm.average_precision_score(y, proba[:, 1], sample_weight=w)
    else:
        out["roc_auc"] = skm.roc_auc_score(y, proba, multi_class="ovr", sample_weight=w,
                                           labels=labels)  # fmt: skip
        out["pr_auc"] = skm.average_precision_score(y, proba, sample_weight=w)
    return out


def sklearn_regression(y, p, w) -> dict[str, float]:
    return {
        "example_count": len(y),
        "weighted_example_count": len(y) if w is None else w.sum(),
        "mse": skm.mean_squared_error(y, p, sample_weight=w),
        "rmse": skm.root_mean_squared_error(y, p, sample_weight=w),
        "mae": skm.mean_absolute_error(y, p, sample_weight=w),
        "mape": skm.mean_absolute_percentage_error(y, p, sample_weight=w),
        "r2": skm.r2_score(y, p, sample_weight=w),
        "mean_label": np.average(y, weights=w),
        "mean_prediction": np.average(p, weights=w),
    }


def labels_of(table, model: str) -> np.ndarray:
    if model == "binary":
        return (table["answer"].to_numpy(zero_copy_only=False) == "yes").astype(int)
    return table["kind"].to_numpy()


def assert_agree(ours: dict, theirs: dict) -> None:
    assert set(theirs) <= set(ours), sorted(set(theirs) - set(ours))
    for name, expected in theirs.items():
        assert ours[name] == pytest.approx(expected, rel=1e-6, abs=1e-9), name


@pytest.mark.parametrize("model", ["binary", "multiclass"])
@pytest.mark.parametrize("weighted", [False, True])
def test_classification_metrics_agree_with_sklearn(model, weighted, table, examples, bundles):
    names = CLASSIFICATION if model == "binary" else [
        n for n in CLASSIFICATION if n not in ("precision", "recall", "f1")]  # fmt: skip
    config = EvalConfig(metrics=names, example_weight_key="w" if weighted else None)
    result = evaluate(examples, bundles[model], config, batch_size=256)
    proba = load_model(bundles[model]).predict_proba(table)
    w = table["w"].to_numpy() if weighted else None
    expected = sklearn_classification(labels_of(table, model), proba, w, model == "binary")
    assert_agree(result.candidate[0].metrics, expected)
    assert result.candidate[0].undefined == {}


@pytest.mark.parametrize("weighted", [False, True])
def test_classification_metrics_agree_with_sklearn_on_a_slice(weighted, table, examples, bundles):
    config = EvalConfig(
        metrics=[n for n in CLASSIFICATION if n not in ("precision", "recall", "f1")],
        example_weight_key="w" if weighted else None,
        slicing_specs=[SlicingSpec(feature_keys=["color"])],
    )
    result = evaluate(examples, bundles["multiclass"], config, batch_size=300)
    by_key = {r.slice: r for r in result.candidate}
    assert list(by_key) == ["Overall", "color=blue", "color=green", "color=red"]
    red = table.filter(np.asarray(table["color"].to_numpy(zero_copy_only=False) == "red"))
    proba = load_model(bundles["multiclass"]).predict_proba(red)
    w = red["w"].to_numpy() if weighted else None
    expected = sklearn_classification(red["kind"].to_numpy(), proba, w, binary=False)
    assert_agree(by_key["color=red"].metrics, expected)


@pytest.mark.parametrize("weighted", [False, True])
def test_regression_metrics_agree_with_sklearn(weighted, table, examples, bundles):
    config = EvalConfig(metrics=REGRESSION, example_weight_key="w" if weighted else None)
    result = evaluate(examples, bundles["regressor"], config, batch_size=128)
    predicted = load_model(bundles["regressor"]).predict(table)
    w = table["w"].to_numpy() if weighted else None
    assert_agree(result.candidate[0].metrics,
                 sklearn_regression(table["target"].to_numpy(), predicted, w))  # fmt: skip


def test_metrics_do_not_depend_on_the_batch_size(examples, bundles):
    config = EvalConfig(example_weight_key="w", slicing_specs=[SlicingSpec(feature_keys=["hour"])])
    small = evaluate(examples, bundles["multiclass"], config, batch_size=7)
    whole = evaluate(examples, bundles["multiclass"], config, batch_size=100_000)
    for a, b in zip(small.candidate, whole.candidate, strict=True):
        assert a.slice == b.slice
        for name, value in b.metrics.items():
            assert a.metrics[name] == pytest.approx(value, rel=1e-9), (a.slice, name)


def test_confusion_matrix_and_calibration_match_sklearn(table, examples, bundles):
    config = EvalConfig(metrics=["confusion_matrix", "calibration"], calibration_bins=5)
    result = evaluate(examples, bundles["binary"], config)
    plots = result.candidate[0].plots
    proba = load_model(bundles["binary"]).predict_proba(table)
    y = labels_of(table, "binary")
    assert plots["confusion_matrix"]["true"] == ["no", "yes"]
    assert np.array_equal(plots["confusion_matrix"]["matrix"],
                          skm.confusion_matrix(y, proba.argmax(axis=1)))  # fmt: skip
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, proba[:, 1], n_bins=5)
    bins = plots["calibration"]["bins"]
    assert [b["observed"] for b in bins] == pytest.approx(list(observed))
    assert [b["predicted"] for b in bins] == pytest.approx(list(predicted))


def test_roc_and_pr_points_span_the_curve(examples, bundles):
    config = EvalConfig(metrics=["roc_auc", "pr_auc"])
    plots = evaluate(examples, bundles["multiclass"], config).candidate[0].plots
    assert set(plots["roc"]) == set(plots["pr"]) == {"a", "b", "c"}
    for points in plots["roc"].values():
        assert points[0] == [0.0, 0.0] and points[-1] == [1.0, 1.0]
        assert len(points) <= 200
