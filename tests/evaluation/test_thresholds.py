"""The blessing: value bounds, change against the baseline (absolute and relative, either
direction), change thresholds skipped without a baseline, every failure explained."""

from __future__ import annotations

import pytest

from conveyor.evaluation import (
    ChangeThreshold,
    EvalConfig,
    Evaluation,
    MetricThreshold,
    SliceResult,
    bless,
)


def results(**by_slice: dict[str, float | None]) -> list[SliceResult]:
    out = []
    for key, metrics in by_slice.items():
        result = SliceResult(key.replace("_", "="))
        for name, value in metrics.items():
            result.set(name, value, "no rows" if value is None else "")
        out.append(result)
    return out


def evaluation(thresholds, candidate, baseline=None) -> Evaluation:
    return Evaluation(
        task="classification", label_key="y", class_names=["a", "b"], splits=["eval"],
        metrics=list(thresholds), candidate=candidate, baseline=baseline,
        config=EvalConfig(thresholds=thresholds),
    )  # fmt: skip


def test_bless_value_bounds_pass_and_fail_with_the_figures():
    thresholds = {"accuracy": MetricThreshold(lower=0.8), "log_loss": MetricThreshold(upper=0.3)}
    blessing = bless(evaluation(thresholds, results(Overall={"accuracy": 0.75, "log_loss": 0.2})))
    assert not blessing.blessed
    assert blessing.reasons == ["accuracy on Overall is 0.75, below the lower bound 0.8"]
    assert [c.passed for c in blessing.checks] == [False, True]


def test_bless_without_a_baseline_skips_change_thresholds_and_says_so():
    thresholds = {"accuracy": MetricThreshold(lower=0.5, change=ChangeThreshold(absolute=0))}
    blessing = bless(evaluation(thresholds, results(Overall={"accuracy": 0.9})))
    assert blessing.blessed and blessing.reasons == []
    assert blessing.skipped == [
        "change of accuracy on Overall (change >= +0; higher is better) skipped: there is no "
        "baseline model"
    ]


@pytest.mark.parametrize(
    ("change", "candidate", "baseline", "blessed"),
    [
        (ChangeThreshold(absolute=0), 0.90, 0.90, True),
        (ChangeThreshold(absolute=0), 0.89, 0.90, False),
        (ChangeThreshold(absolute=-0.02), 0.89, 0.90, True),
        (ChangeThreshold(relative=0.05), 0.95, 0.90, True),
        (ChangeThreshold(relative=0.05), 0.94, 0.90, False),
        (ChangeThreshold(absolute=0, relative=0.01), 0.905, 0.90, False),
    ],
)
def test_bless_change_higher_is_better(change, candidate, baseline, blessed):
    thresholds = {"accuracy": MetricThreshold(change=change)}
    verdict = bless(evaluation(thresholds, results(Overall={"accuracy": candidate}),
                               results(Overall={"accuracy": baseline})))  # fmt: skip
    assert verdict.blessed is blessed
    if not blessed:
        [reason] = verdict.reasons
        assert f"against the baseline's {baseline:.4g}" in reason and "outside" in reason


def test_bless_change_lower_is_better_follows_the_metric():
    thresholds = {"log_loss": MetricThreshold(change=ChangeThreshold(absolute=0.01))}
    worse = bless(evaluation(thresholds, results(Overall={"log_loss": 0.32}),
                             results(Overall={"log_loss": 0.30})))  # fmt: skip
    better = bless(evaluation(thresholds, results(Overall={"log_loss": 0.25}),
                              results(Overall={"log_loss": 0.30})))  # fmt: skip
    assert not worse.blessed and better.blessed
    assert "lower is better" in worse.reasons[0]


def test_bless_every_slice_and_a_missing_slice():
    thresholds = {
        "accuracy": MetricThreshold(lower=0.7, slices=["*"]),
        "recall_macro": MetricThreshold(lower=0.1, slices=["color=purple"]),
    }
    candidate = results(Overall={"accuracy": 0.8}, color_red={"accuracy": 0.6},
                        color_blue={"accuracy": None})  # fmt: skip
    verdict = bless(evaluation(thresholds, candidate))
    assert verdict.reasons == [
        "accuracy on color=red is 0.6, below the lower bound 0.7",
        "accuracy on color=blue is undefined (no rows), so its threshold cannot pass",
        "recall_macro on slice 'color=purple': the slice has no rows in the evaluated data",
    ]


def test_bless_baseline_value_undefined_cannot_compare():
    thresholds = {"accuracy": MetricThreshold(change=ChangeThreshold(absolute=0))}
    verdict = bless(evaluation(thresholds, results(Overall={"accuracy": 0.8}),
                               results(Overall={"accuracy": None})))  # fmt: skip
    assert verdict.reasons == [
        "accuracy on Overall: the baseline's value is undefined (no rows); cannot compare"
    ]


def test_bless_with_no_thresholds_blesses():
    verdict = bless(evaluation({}, results(Overall={"accuracy": 0.1})))
    assert verdict.blessed and verdict.checks == []
