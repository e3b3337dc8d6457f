"""EvalConfig and its parts: checked when built, with messages that say what to write, and
the same config back from its plain-dict form (and from the store's JSON of it)."""

from __future__ import annotations

import json

import pytest

from conveyor.evaluation import (
    ChangeThreshold,
    EvalConfig,
    EvalConfigError,
    MetricThreshold,
    SlicingSpec,
)
from conveyor.orchestration.fingerprint import jsonable
from conveyor.types import ConveyorError

FULL = EvalConfig(
    label_key="species",
    class_names=["Adelie", "Chinstrap", "Gentoo"],
    example_weight_key="weight",
    metrics=["accuracy", "f1_macro", "roc_auc", "calibration"],
    slicing_specs=[
        SlicingSpec(),
        SlicingSpec(feature_keys=["island", "sex"]),
        SlicingSpec(feature_values={"island": "Biscoe"}, boundaries={"body_mass_g": [3500, 4500]}),
    ],
    thresholds={
        "accuracy": MetricThreshold(lower=0.6, change=ChangeThreshold(absolute=-0.01)),
        "log_loss": MetricThreshold(upper=0.9, slices=["*"]),
    },
    calibration_bins=20,
)


def test_eval_config_round_trips_through_a_plain_dict_and_json():
    data = json.loads(json.dumps(FULL.to_dict()))
    assert EvalConfig.from_dict(data) == FULL


def test_eval_config_round_trips_through_the_stores_json_of_it():
    stored = json.loads(json.dumps(jsonable(FULL)))
    assert stored["__dataclass__"] == "EvalConfig"
    assert EvalConfig.from_dict(stored) == FULL


def test_eval_config_unknown_metric_lists_the_known_ones():
    with pytest.raises(EvalConfigError) as caught:
        EvalConfig(metrics=["accuracy", "f1_marco"])
    message = str(caught.value)
    assert "'f1_marco'" in message and "Did you mean 'f1_macro'?" in message
    assert "balanced_accuracy" in message and "mape" in message


def test_eval_config_unknown_threshold_metric_fails_too():
    with pytest.raises(EvalConfigError, match="unknown metric.*'acuracy'"):
        EvalConfig(thresholds={"acuracy": MetricThreshold(lower=0.5)})


def test_eval_config_unknown_feature_fails_at_construction_when_features_are_known():
    with pytest.raises(EvalConfigError) as caught:
        EvalConfig(
            label_key="species",
            slicing_specs=[SlicingSpec(feature_keys=["islnd"])],
            known_features=["species", "island", "body_mass_g"],
        )
    message = str(caught.value)
    assert "slicing_specs[0] names feature 'islnd'" in message
    assert "Did you mean 'island'?" in message and "species, island, body_mass_g" in message


def test_eval_config_unknown_label_and_weight_fail_with_known_features():
    known = ["species", "island"]
    with pytest.raises(EvalConfigError, match="label_key names feature 'label'"):
        EvalConfig(label_key="label", known_features=known)
    with pytest.raises(EvalConfigError, match="example_weight_key names feature 'w'"):
        EvalConfig(label_key="species", example_weight_key="w", known_features=known)


def test_eval_config_is_a_conveyor_error_with_sklearn_style_messages():
    with pytest.raises(ConveyorError, match=r"The 'calibration_bins' parameter of EvalConfig "
                       r"must be an int from 1 to 1000\. Got 0 instead\."):  # fmt: skip
        EvalConfig(calibration_bins=0)


def test_threshold_on_plot_data_or_without_direction_is_refused():
    with pytest.raises(EvalConfigError, match="'confusion_matrix', which is plot data"):
        EvalConfig(thresholds={"confusion_matrix": MetricThreshold(lower=0)})
    with pytest.raises(EvalConfigError, match="needs a direction"):
        EvalConfig(thresholds={"mean_prediction": MetricThreshold(
            change=ChangeThreshold(relative=0.1))})  # fmt: skip
    ok = EvalConfig(thresholds={"mean_prediction": MetricThreshold(
        change=ChangeThreshold(relative=0.1, direction="lower_is_better"))})  # fmt: skip
    assert ok.thresholds["mean_prediction"].change.direction == "lower_is_better"


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: MetricThreshold(), "needs lower, upper or change"),
        (lambda: MetricThreshold(lower=2, upper=1), "'lower' parameter"),
        (lambda: ChangeThreshold(), "needs absolute or relative"),
        (lambda: ChangeThreshold(absolute=0, direction="up"), "'direction' parameter"),
        (lambda: SlicingSpec(feature_keys="island"), "'feature_keys' parameter"),
        (lambda: SlicingSpec(boundaries={"x": [3, 1]}), "ascending"),
        (lambda: SlicingSpec(boundaries={"x": []}), "non-empty"),
        (lambda: SlicingSpec(feature_keys=["x"], boundaries={"x": [1]}), "more than once"),
        (lambda: EvalConfig(class_names=["a"]), "at least two distinct"),
        (lambda: EvalConfig(slicing_specs=SlicingSpec()), "list of SlicingSpec"),
        (lambda: EvalConfig.from_dict({"label": "x"}), "no field\\(s\\) 'label'"),
    ],
)
def test_config_parts_are_checked_when_built(build, match):
    with pytest.raises(EvalConfigError, match=match):
        build()


def test_eval_config_specs_put_overall_first_once():
    config = EvalConfig(slicing_specs=[SlicingSpec(feature_keys=["a"]), SlicingSpec(),
                                       SlicingSpec(feature_keys=["a"])])  # fmt: skip
    assert [s.features for s in config.specs] == [(), ("a",)]
