"""What to evaluate and what it takes to be blessed: plain dataclasses with TFMA's concepts,
checked when built, and convertible to and from plain dicts (a component parameter is
stored as JSON).

Example::

    config = EvalConfig(
        label_key="species",
        metrics=["accuracy", "f1_macro", "roc_auc"],
        slicing_specs=[SlicingSpec(), SlicingSpec(feature_keys=["island"]),
                       SlicingSpec(boundaries={"body_mass_g": [3500, 4500]})],
        thresholds={"accuracy": MetricThreshold(lower=0.6, change=ChangeThreshold(absolute=0))},
    )
    EvalConfig.from_dict(config.to_dict()) == config   # True
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from conveyor.evaluation.catalogue import METRICS, metric_names
from conveyor.types import ConveyorError

__all__ = ["ChangeThreshold", "EvalConfig", "EvalConfigError", "MetricThreshold", "SlicingSpec"]

OVERALL = "Overall"
ALL_SLICES = "*"
DIRECTIONS = ("higher_is_better", "lower_is_better")


class EvalConfigError(ConveyorError):
    """An EvalConfig (or one of its parts) that cannot be evaluated as given."""


def _bad(param: str, owner: str, expected: str, got: Any) -> EvalConfigError:
    return EvalConfigError(
        f"The '{param}' parameter of {owner} must be {expected}. Got {got!r} instead."
    )


def _names(value: Any, param: str, owner: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _bad(param, owner, "a list of names", value)
    names = tuple(value)
    if not all(isinstance(n, str) and n for n in names):
        raise _bad(param, owner, "a list of non-empty strings", value)
    return names


def _number(value: Any, param: str, owner: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise _bad(param, owner, "a number or None", value)
    return float(value)


def _from_dict(cls: type, data: Any, param: str) -> Any:
    """``cls`` from a dict made by ``to_dict`` (or by the store's JSON form of a dataclass,
    which adds a ``__dataclass__`` key); an instance passes through."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise _bad(param, "EvalConfig", f"a {cls.__name__} or a dict", data)
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in data.items() if k != "__dataclass__"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise EvalConfigError(
            f"{cls.__name__} has no field(s) {', '.join(map(repr, unknown))}; its fields are "
            f"{', '.join(sorted(known))}."
        )
    return cls(**values)


# ---------------------------------------------------------------------- slicing
@dataclass(frozen=True)
class SlicingSpec:
    """One way to slice the data; ``SlicingSpec()`` is the whole data set ("Overall").

    ``feature_keys``: a slice per value (several keys: per combination, "hour=3 &
    payment=Cash"); ``feature_values``: only rows with these values; ``boundaries``: numeric
    features cut into buckets at these ascending boundaries ("body_mass_g=[3500, 4500)").

    Example::

        SlicingSpec(feature_keys=["trip_start_hour"])
        SlicingSpec(feature_keys=["species"], boundaries={"body_mass_g": [3500, 4500]})
    """

    feature_keys: tuple[str, ...] = ()
    feature_values: Mapping[str, Any] = field(default_factory=dict)
    boundaries: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = "SlicingSpec"
        keys = _names(self.feature_keys, "feature_keys", owner)
        if not isinstance(self.feature_values, Mapping):
            raise _bad("feature_values", owner, "a dict of feature: value", self.feature_values)
        for name, value in self.feature_values.items():
            if not isinstance(value, str | int | float | bool):
                raise _bad(f"feature_values[{name!r}]", owner, "a string or number", value)
        if not isinstance(self.boundaries, Mapping):
            raise _bad("boundaries", owner, "a dict of feature: [boundaries]", self.boundaries)
        cuts = {name: _boundaries(name, b) for name, b in self.boundaries.items()}
        named = [*keys, *cuts, *self.feature_values]
        repeated = sorted({n for n in named if named.count(n) > 1})
        if repeated:
            raise EvalConfigError(
                f"SlicingSpec names feature(s) {', '.join(map(repr, repeated))} more than once "
                "(in feature_keys, boundaries and feature_values together); name each once."
            )
        object.__setattr__(self, "feature_keys", keys)
        object.__setattr__(self, "feature_values", dict(self.feature_values))
        object.__setattr__(self, "boundaries", cuts)

    @property
    def features(self) -> tuple[str, ...]:
        """Every feature the spec reads, in slice-key order."""
        return (*self.feature_keys, *self.boundaries, *self.feature_values)

    @property
    def is_overall(self) -> bool:
        return not self.features

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_keys": list(self.feature_keys),
            "feature_values": dict(self.feature_values),
            "boundaries": {name: list(b) for name, b in self.boundaries.items()},
        }


def _boundaries(name: str, value: Any) -> tuple[float, ...]:
    param = f"boundaries[{name!r}]"
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _bad(param, "SlicingSpec", "a list of ascending numbers", value)
    cuts = tuple(_number(v, param, "SlicingSpec") for v in value)
    if not cuts or any(not math.isfinite(c) for c in cuts) or list(cuts) != sorted(set(cuts)):
        raise _bad(param, "SlicingSpec", "a non-empty list of finite, ascending numbers", value)
    return cuts  # type: ignore[return-value]


# ---------------------------------------------------------------------- thresholds
@dataclass(frozen=True)
class ChangeThreshold:
    """How the candidate must compare with the baseline model, as in TFMA:
    ``diff = candidate - baseline``; with ``higher_is_better`` it passes when ``diff >=
    absolute`` and ``diff / |baseline| >= relative``; with ``lower_is_better`` when ``diff <=
    absolute`` and ``diff / |baseline| <= relative``. ``direction`` defaults to the metric's.

    Example::

        ChangeThreshold(absolute=0)        # no worse than the baseline
        ChangeThreshold(absolute=-0.01)    # at most 0.01 worse (higher is better)
    """

    absolute: float | None = None
    relative: float | None = None
    direction: str | None = None

    def __post_init__(self) -> None:
        owner = "ChangeThreshold"
        object.__setattr__(self, "absolute", _number(self.absolute, "absolute", owner))
        object.__setattr__(self, "relative", _number(self.relative, "relative", owner))
        if self.absolute is None and self.relative is None:
            raise EvalConfigError(
                "ChangeThreshold needs absolute or relative (or both), e.g. "
                "ChangeThreshold(absolute=0) for 'no worse than the baseline'."
            )
        if self.direction is not None and self.direction not in DIRECTIONS:
            expected = f"one of {', '.join(DIRECTIONS)} or None"
            raise _bad("direction", owner, expected, self.direction)

    def to_dict(self) -> dict[str, Any]:
        return {"absolute": self.absolute, "relative": self.relative, "direction": self.direction}


@dataclass(frozen=True)
class MetricThreshold:
    """Bounds a metric must meet for the model to be blessed: ``lower <= value <= upper``
    and, when a baseline model is given, the ``change`` against it. ``slices``: the slice
    keys it applies to ("Overall" by default; "*" for every slice).

    Example::

        MetricThreshold(lower=0.6, change=ChangeThreshold(absolute=0))
        MetricThreshold(upper=0.5, slices=["*"])      # log_loss on every slice
    """

    lower: float | None = None
    upper: float | None = None
    change: ChangeThreshold | None = None
    slices: tuple[str, ...] = (OVERALL,)

    def __post_init__(self) -> None:
        owner = "MetricThreshold"
        lower, upper = _number(self.lower, "lower", owner), _number(self.upper, "upper", owner)
        change = None if self.change is None else _from_dict(ChangeThreshold, self.change, "change")
        if lower is None and upper is None and change is None:
            raise EvalConfigError("MetricThreshold needs lower, upper or change.")
        if lower is not None and upper is not None and lower > upper:
            raise _bad("lower", owner, f"at most upper ({upper})", lower)
        slices = _names(self.slices, "slices", owner)
        if not slices:
            raise _bad("slices", owner, 'a non-empty list of slice keys (or ["*"])', self.slices)
        for name, value in (("lower", lower), ("upper", upper), ("change", change)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "slices", slices)

    def applies_to(self, slice_key: str) -> bool:
        return ALL_SLICES in self.slices or slice_key in self.slices

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "upper": self.upper,
            "change": None if self.change is None else self.change.to_dict(),
            "slices": list(self.slices),
        }


# ---------------------------------------------------------------------- the config
@dataclass(frozen=True)
class EvalConfig:
    """What the Evaluator computes and what blesses a model.

    - ``label_key``: the label column of the examples (default: the bundle's label, when the
      examples have that column); ``example_weight_key``: a weight column (default: 1 each).
    - ``class_names``: the label's values by class id, when they differ from the bundle's
      (the penguin labels 0, 1, 2 for a bundle whose class_names are species names need
      none: integer labels are read as class ids when the class names are not integers).
    - ``prediction_key``: which entry of a ``predict_fn``'s dict of outputs to evaluate.
    - ``metrics``: names (see ``conveyor.evaluation.metric_names()``); by default a standard
      set for the task. Metrics named in ``thresholds`` are always computed.
    - ``slicing_specs``: the slices; "Overall" is always evaluated.
    - ``thresholds``: metric name → :class:`MetricThreshold`.
    - ``known_features``: the example's feature names, when known, so that a misspelt label,
      weight or slicing feature fails here rather than when the Evaluator starts.

    Example::

        EvalConfig(label_key="species", metrics=["accuracy"],
                   thresholds={"accuracy": MetricThreshold(lower=0.6)})
    """

    label_key: str | None = None
    prediction_key: str | None = None
    class_names: tuple[Any, ...] | None = None
    example_weight_key: str | None = None
    metrics: tuple[str, ...] | None = None
    slicing_specs: tuple[SlicingSpec, ...] = (SlicingSpec(),)
    thresholds: Mapping[str, MetricThreshold] = field(default_factory=dict)
    calibration_bins: int = 10
    known_features: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        owner = "EvalConfig"
        for name in ("label_key", "prediction_key", "example_weight_key"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise _bad(name, owner, "a column name or None", value)
        if self.class_names is not None:
            names = _class_names(self.class_names)
            object.__setattr__(self, "class_names", names)
        if self.metrics is not None:
            metrics = _names(self.metrics, "metrics", owner)
            _check_metrics(metrics, "metrics")
            object.__setattr__(self, "metrics", tuple(dict.fromkeys(metrics)))
        specs = self.slicing_specs
        if isinstance(specs, SlicingSpec | Mapping) or not isinstance(specs, Iterable):
            raise _bad("slicing_specs", owner, "a list of SlicingSpec", specs)
        specs = tuple(_from_dict(SlicingSpec, s, "slicing_specs") for s in specs)
        object.__setattr__(self, "slicing_specs", specs)
        object.__setattr__(self, "thresholds", _thresholds(self.thresholds))
        bins = self.calibration_bins
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 1000:
            raise _bad("calibration_bins", owner, "an int from 1 to 1000", bins)
        if self.known_features is not None:
            known = _names(self.known_features, "known_features", owner)
            object.__setattr__(self, "known_features", known)
            self.check_features(known, where="known_features")

    # ------------------------------------------------------------------ reading it
    @property
    def specs(self) -> tuple[SlicingSpec, ...]:
        """The slicing specs, the overall one first (added when missing)."""
        unique: list[SlicingSpec] = []
        for spec in self.slicing_specs:
            if not spec.is_overall and spec not in unique:
                unique.append(spec)
        return (SlicingSpec(), *unique)

    def features_read(self) -> dict[str, str]:
        """Every column the config names → what names it, for messages."""
        named = {}
        if self.label_key:
            named[self.label_key] = "label_key"
        if self.example_weight_key:
            named[self.example_weight_key] = "example_weight_key"
        for index, spec in enumerate(self.slicing_specs):
            for name in spec.features:
                named.setdefault(name, f"slicing_specs[{index}]")
        return named

    def check_features(self, available: Iterable[str], *, where: str) -> None:
        """Fail naming the first feature the config reads that ``available`` lacks."""
        available = list(available)
        for name, role in self.features_read().items():
            if name not in available:
                close = difflib.get_close_matches(name, available, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise EvalConfigError(
                    f"EvalConfig's {role} names feature {name!r}, which is not in {where}.{hint} "
                    f"Available: {', '.join(available)}."
                )

    # ------------------------------------------------------------------ plain dicts
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_dict` turns back into an equal config."""
        return {
            "label_key": self.label_key,
            "prediction_key": self.prediction_key,
            "class_names": None if self.class_names is None else list(self.class_names),
            "example_weight_key": self.example_weight_key,
            "metrics": None if self.metrics is None else list(self.metrics),
            "slicing_specs": [spec.to_dict() for spec in self.slicing_specs],
            "thresholds": {name: t.to_dict() for name, t in self.thresholds.items()},
            "calibration_bins": self.calibration_bins,
            "known_features": None if self.known_features is None else list(self.known_features),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | EvalConfig) -> EvalConfig:
        """An EvalConfig from :meth:`to_dict`'s form (or the metadata store's JSON of one)."""
        return _from_dict(cls, data, "eval_config")


def _class_names(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _bad("class_names", "EvalConfig", "a list of label values by class id", value)
    names = tuple(value)
    if len(names) < 2 or len(set(names)) != len(names):
        raise _bad("class_names", "EvalConfig", "at least two distinct label values", value)
    if not all(isinstance(n, str | int) and not isinstance(n, bool) for n in names):
        raise _bad("class_names", "EvalConfig", "strings or integers", value)
    return names


def _check_metrics(names: Iterable[str], param: str) -> None:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(METRICS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise EvalConfigError(
            f"EvalConfig's {param} names unknown metric(s) {', '.join(map(repr, unknown))}."
            f"{hint} Known metrics: classification: {', '.join(metric_names('classification'))}; "
            f"regression: {', '.join(n for n in metric_names('regression') if 'count' not in n)}."
        )


def _thresholds(value: Any) -> dict[str, MetricThreshold]:
    if not isinstance(value, Mapping):
        raise _bad("thresholds", "EvalConfig", "a dict of metric name: MetricThreshold", value)
    _check_metrics(value, "thresholds")
    thresholds = {
        name: _from_dict(MetricThreshold, t, f"thresholds[{name!r}]") for name, t in value.items()
    }
    for name, threshold in thresholds.items():
        info = METRICS[name]
        if not info.scalar:
            raise EvalConfigError(
                f"EvalConfig's thresholds name {name!r}, which is plot data, not a number; "
                "put thresholds on numeric metrics such as accuracy."
            )
        change = threshold.change
        if change is not None and change.direction is None and info.better is None:
            raise EvalConfigError(
                f"The change threshold on {name!r} needs a direction: neither higher nor lower "
                f"is better for it. Pass ChangeThreshold(..., direction='higher_is_better' or "
                "'lower_is_better')."
            )
    return thresholds
