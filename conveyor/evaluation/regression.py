"""Regression metrics per slice, accumulated batch by batch with ``np.bincount``.

The label's weighted mean and sum of squared deviations merge across batches with Chan's
formula, so R² is stable however the rows arrive. MAPE divides by ``max(|label|, eps)`` as
``sklearn.metrics.mean_absolute_percentage_error`` does. Rows whose prediction is NaN are
counted and make every prediction metric of their slice undefined.

Example::

    slices = RegressionSlices()
    slices.update(rows, slice_ids, labels, predictions, weights)
    regression_result(slices.state(0), "Overall", 0, ["mse", "r2"]).metrics
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conveyor.evaluation.predictions import Predictions
from conveyor.evaluation.slice_result import SliceResult
from conveyor.evaluation.slicing import dense_groups

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

    def add_state(self, other: RegressionState) -> None:
        """Add ``other``'s rows (another share of the same slice)."""
        self.num_rows += other.num_rows
        self.nan_rows += other.nan_rows
        self.merge(other.weight, other.mean_label, other.label_m2)
        for name in _SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class RegressionSlices:
    """Every slice's :class:`RegressionState`, updated a batch at a time."""

    def __init__(self) -> None:
        self._states: dict[int, RegressionState] = {}

    def state(self, slice_id: int) -> RegressionState:
        return self._states.setdefault(slice_id, RegressionState())

    def empty(self) -> RegressionSlices:
        return RegressionSlices()

    def merge(self, other: RegressionSlices, remap: np.ndarray) -> None:
        """Add ``other``'s slices, whose slice id ``i`` is ``remap[i]`` here."""
        for slice_id, state in other._states.items():
            self.state(int(remap[slice_id])).add_state(state)

    def update(
        self, rows: np.ndarray, slice_ids: np.ndarray, labels: np.ndarray,
        predicted: Predictions, weights: np.ndarray | None,
    ) -> None:  # fmt: skip
        """Add a batch; batch row ``rows[k]`` belongs to slice ``slice_ids[k]``."""
        uniques, group = dense_groups(slice_ids)
        G = len(uniques)
        ok = np.isfinite(predicted.values)
        y, p = np.where(ok, labels, 0.0), np.where(ok, predicted.values, 0.0)
        w = np.where(ok, 1.0 if weights is None else weights, 0.0)
        error = y - p
        per_row = {
            "rows": np.ones(len(y)), "nan": ~ok, "weight": w, "label": w * y,
            "squared": w * error**2, "absolute": w * np.abs(error),
            "percentage": w * np.abs(error) / np.maximum(np.abs(y), np.finfo(np.float64).eps),
            "prediction": w * p,
        }  # fmt: skip
        sums = {name: np.bincount(group, weights=v[rows], minlength=G) for name, v in
                per_row.items()}  # fmt: skip
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nan_to_num(sums["label"] / sums["weight"])
        m2 = np.bincount(group, weights=w[rows] * (y[rows] - mean[group]) ** 2, minlength=G)
        for index, slice_id in enumerate(uniques.tolist()):
            state = self.state(slice_id)
            state.num_rows += int(sums["rows"][index])
            state.nan_rows += int(sums["nan"][index])
            state.merge(float(sums["weight"][index]), float(mean[index]), float(m2[index]))
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
