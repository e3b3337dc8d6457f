"""The blessing: every threshold checked on every slice it applies to, each failure said in
words, change thresholds skipped (and recorded as skipped) when there is no baseline.

A metric that is undefined where a threshold applies fails that threshold: a model is not
blessed on a figure nobody could compute.

Example::

    blessing = bless(evaluation)
    blessing.blessed, blessing.reasons
    # False, ["accuracy on Overall is 0.41, below the lower bound 0.6"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from conveyor.evaluation.catalogue import METRICS
from conveyor.evaluation.config import ChangeThreshold, MetricThreshold
from conveyor.evaluation.engine import Evaluation
from conveyor.evaluation.slice_result import SliceResult

__all__ = ["Blessing", "Check", "bless"]


@dataclass(frozen=True)
class Check:
    """One threshold on one slice: ``passed`` is None when it was skipped."""

    metric: str
    slice: str
    kind: str  # "lower", "upper" or "change"
    bound: str
    value: float | None
    baseline: float | None
    passed: bool | None
    message: str


@dataclass
class Blessing:
    blessed: bool
    reasons: list[str] = field(default_factory=list)  # every failed check
    skipped: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "blessed": self.blessed,
            "reasons": self.reasons,
            "skipped": self.skipped,
            "checks": [asdict(c) for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Blessing:
        checks = [Check(**c) for c in data.get("checks", [])]
        return cls(data["blessed"], list(data["reasons"]), list(data["skipped"]), checks)


def bless(evaluation: Evaluation) -> Blessing:
    """Check ``evaluation.config.thresholds`` against the candidate's (and the baseline's)
    results."""
    candidate = {r.slice: r for r in evaluation.candidate}
    baseline = None if evaluation.baseline is None else {r.slice: r for r in evaluation.baseline}
    checks: list[Check] = []
    for metric, threshold in evaluation.config.thresholds.items():
        for key in _slices(threshold, candidate):
            checks += _check(metric, threshold, key, candidate.get(key), baseline)
    failed = list(dict.fromkeys(c.message for c in checks if c.passed is False))
    skipped = list(dict.fromkeys(c.message for c in checks if c.passed is None))
    return Blessing(not failed, failed, skipped, checks)


def _slices(threshold: MetricThreshold, candidate: dict[str, SliceResult]) -> list[str]:
    if "*" in threshold.slices:
        return list(candidate)
    return [key for key in threshold.slices if key != "*"]


def _check(
    metric: str, threshold: MetricThreshold, key: str, result: SliceResult | None,
    baseline: dict[str, SliceResult] | None,
) -> list[Check]:  # fmt: skip
    bounds = [(k, v) for k, v in (("lower", threshold.lower), ("upper", threshold.upper))
              if v is not None]  # fmt: skip
    wanted = {kind: f"value {'>=' if kind == 'lower' else '<='} {figure(v)}" for kind, v in bounds}
    if threshold.change is not None:
        wanted["change"] = _wanted(threshold.change, _higher(metric, threshold.change))
    value = None if result is None else result.metrics.get(metric)
    if value is None:
        if result is None:
            message = f"{metric} on slice {key!r}: the slice has no rows in the evaluated data"
        else:
            why = result.undefined.get(metric, "not computed")
            message = f"{metric} on {key} is undefined ({why}), so its threshold cannot pass"
        return [Check(metric, key, kind, text, None, None, False, message)
                for kind, text in wanted.items()]  # fmt: skip
    checks = [_bound(metric, key, kind, bound, value, wanted[kind]) for kind, bound in bounds]
    if threshold.change is not None:
        checks.append(_change(metric, key, threshold.change, value, baseline))
    return checks


def _bound(metric: str, key: str, kind: str, bound: float, value: float, wanted: str) -> Check:
    passed = value >= bound if kind == "lower" else value <= bound
    side = "below the lower" if kind == "lower" else "above the upper"
    relation = ">=" if kind == "lower" else "<="
    message = (
        f"{metric} on {key} is {figure(value)}, {side} bound {figure(bound)}"
        if not passed
        else f"{metric} on {key} is {figure(value)} {relation} {figure(bound)}"
    )
    return Check(metric, key, kind, wanted, value, None, passed, message)


def _higher(metric: str, change: ChangeThreshold) -> bool:
    direction = change.direction or f"{METRICS[metric].better}_is_better"
    return direction == "higher_is_better"


def _change(
    metric: str, key: str, change: ChangeThreshold, value: float,
    baseline: dict[str, SliceResult] | None,
) -> Check:  # fmt: skip
    higher = _higher(metric, change)
    wanted = _wanted(change, higher)
    if baseline is None:
        message = f"change of {metric} on {key} ({wanted}) skipped: there is no baseline model"
        return Check(metric, key, "change", wanted, value, None, None, message)
    base = baseline.get(key)
    base_value = None if base is None else base.metrics.get(metric)
    if base_value is None:
        why = "has no such slice" if base is None else base.undefined.get(metric, "undefined")
        message = f"{metric} on {key}: the baseline's value is undefined ({why}); cannot compare"
        return Check(metric, key, "change", wanted, value, None, False, message)
    diff = value - base_value
    relative = diff / abs(base_value) if base_value else (0.0 if diff == 0 else float("inf") * diff)
    passed = all(
        (got >= limit) if higher else (got <= limit)
        for got, limit in ((diff, change.absolute), (relative, change.relative))
        if limit is not None
    )
    verdict = "within" if passed else "outside"
    message = (
        f"{metric} on {key} is {figure(value)} against the baseline's {figure(base_value)} "
        f"(change {diff:+.4g}, {relative:+.2%}): {verdict} the allowed change ({wanted})"
    )
    return Check(metric, key, "change", wanted, value, base_value, passed, message)


def figure(value: float) -> str:
    """A metric value in a message: four significant digits."""
    return f"{value:.4g}"


def _wanted(change: ChangeThreshold, higher: bool) -> str:
    sign = ">=" if higher else "<="
    parts = []
    if change.absolute is not None:
        parts.append(f"change {sign} {change.absolute:+g}")
    if change.relative is not None:
        parts.append(f"relative change {sign} {change.relative:+.2%}")
    better = "higher" if higher else "lower"
    return f"{' and '.join(parts)}; {better} is better"
