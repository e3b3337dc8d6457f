"""Regression metrics per slice, accumulated batch by batch with ``np.bincount``.

The label's weighted mean and sum of squared deviations merge across batches with Chan's
formula, so R² is stable however the rows arrive. MAPE divides by ``max(|label|, eps)`` as
``sklearn.metrics.mean_absolute_percentage_error`` does. Rows whose prediction is NaN are
counted and make every prediction metric of their slice undefined.

Example::

    slices = RegressionSlices()
    slices.update(slice_ids, labels, predictions, weights)
    regression_result(slices.state(0), "Overall", 0, ["mse", "r2"]).metrics
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conveyor.evaluation.predictions import Predictions
from conveyor.evaluation.slice_result import SliceResult

__all__ = ["RegressionSlices", "RegressionState", "regression_result"]

_SUMS = ("squared", "absolute", "percentage", "prediction")


@dataclass
class RegressionState:
    num_rows: int = 0
    nan_rows: int = 0
    weight: float = 0.0  # of rows with a finite prediction
    mean_label: float = 0.0
    label_m2: float = 0.0  # weighted sum of squared deviations from mean_label
    squared: float = 0.0
    absolute: float = 0.0
    percentage: float = 0.0
    prediction: float = 0.0

    def merge(self, weight: float, mean: float, m2: float) -> None:
        """Fold in a batch's label moments (Chan et al.)."""
        total = self.weight + weight
        if total <= 0:
            return
        delta = mean - self.mean_label
        self.mean_label += delta * weight / total
        self.label_m2 += m2 + delta * delta * self.weight * weight / total
        self.weight = total


class RegressionSlices:
    """Every slice's :class:`RegressionState`, updated a batch at a time."""

    def __init__(self) -> None:
        self._states: dict[int, RegressionState] = {}

    def state(self, slice_id: int) -> RegressionState:
        return self._states.setdefault(slice_id, RegressionState())

    def update(
        self, slice_ids: np.ndarray, labels: np.ndarray, predicted: Predictions,
        weights: np.ndarray | None,
    ) -> None:  # fmt: skip
        uniques, group = np.unique(slice_ids, return_inverse=True)
        G = len(uniques)
        p = predicted.values
        ok = np.isfinite(p)
        rows = np.bincount(group, minlength=G)
        nan_rows = np.bincount(group, weights=~ok, minlength=G)
        g, y, p = group[ok], labels[ok], p[ok]
        w = np.ones(len(y)) if weights is None else weights[ok]
        weight = np.bincount(g, weights=w, minlength=G)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(g, weights=w * y, minlength=G) / weight
        m2 = np.bincount(g, weights=w * (y - np.nan_to_num(mean)[g]) ** 2, minlength=G)
        error = y - p
        eps = np.finfo(np.float64).eps
        sums = {
            "squared": np.bincount(g, weights=w * error**2, minlength=G),
            "absolute": np.bincount(g, weights=w * np.abs(error), minlength=G),
            "percentage": np.bincount(
                g, weights=w * np.abs(error) / np.maximum(np.abs(y), eps), minlength=G
            ),
            "prediction": np.bincount(g, weights=w * p, minlength=G),
        }
        for index, slice_id in enumerate(uniques.tolist()):
            state = self.state(slice_id)
            state.num_rows += int(rows[index])
            state.nan_rows += int(nan_rows[index])
            state.merge(float(weight[index]), float(np.nan_to_num(mean[index])), float(m2[index]))
            for name in _SUMS:
                setattr(state, name, getattr(state, name) + float(sums[name][index]))


def regression_result(state: RegressionState, key: str, spec: int, names: list[str]) -> SliceResult:
    """The metrics ``names`` of one slice."""
    result = SliceResult(key, spec)
    result.set("example_count", state.num_rows)
    if "weighted_example_count" in names:
        result.set("weighted_example_count", state.weight)
    wanted = [n for n in names if n not in ("example_count", "weighted_example_count")]
    why = ""
    if state.nan_rows:
        why = f"{state.nan_rows} of {state.num_rows} predictions are NaN"
        result.notes.append(f"{why}.")
    elif state.weight <= 0:
        why = "no rows with a positive weight in this slice"
    if why:
        for name in wanted:
            result.set(name, None, why)
        return result
    w = state.weight
    values = {
        "mse": state.squared / w,
        "rmse": np.sqrt(state.squared / w),
        "mae": state.absolute / w,
        "mape": state.percentage / w,
        "mean_label": state.mean_label,
        "mean_prediction": state.prediction / w,
    }
    for name in wanted:
        if name == "r2":
            if state.label_m2 > 0:
                result.set("r2", 1.0 - state.squared / state.label_m2)
            else:
                result.set("r2", None, "the label is constant on this slice: R² divides by 0")
        else:
            result.set(name, float(values[name]))
    return result
