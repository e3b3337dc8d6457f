"""Classification metrics per slice, accumulated batch by batch.

Each batch adds to every slice's sums in a few vectorised passes (``np.bincount`` over
slice, label and prediction): the weighted confusion matrix, log loss and Brier sums, the
calibration bins. Rankings (ROC AUC, PR AUC and their curves) need every score of a slice:
those are kept, in the model's own float dtype, only when such a metric is asked for.

Conventions, as in ``sklearn.metrics``: a class is averaged over when it occurs among the
slice's labels or predictions; precision or recall with nothing to divide by is 0. A label
the model never saw is one extra class: wrong in accuracy, precision, recall and F1, left
out of the probability metrics (log loss, Brier score, AUCs, calibration). Rows whose
prediction is NaN are counted and make every prediction metric of their slice undefined.

Example::

    slices = ClassificationSlices(num_classes=3, ranked=True, bins=10)
    slices.update(rows, slice_ids, labels, predictions, weights)
    slices.state(0).num_rows
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conveyor.evaluation.predictions import Predictions
from conveyor.evaluation.slicing import dense_groups

__all__ = ["ClassState", "ClassificationSlices"]


@dataclass
class ClassState:
    """One slice's sums. ``confusion[true, predicted]`` is weighted; its last row holds
    labels the model never saw."""

    num_classes: int
    bins: int
    num_rows: int = 0
    weight: float = 0.0
    nan_rows: int = 0
    unseen_rows: int = 0
    confusion: np.ndarray = field(init=False)
    has_proba: bool = False
    known_weight: float = 0.0  # weight of rows with a known label and a probability
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0
    calibration: np.ndarray = field(init=False)  # [bins, 3]: weight, sum p, sum hit
    ranked: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes + 1, self.num_classes))
        self.calibration = np.zeros((self.bins, 3))

    def scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(labels, probabilities [n, C], weights or None) of the kept rows."""
        if not self.ranked:
            empty = np.zeros((0, self.num_classes))
            return np.zeros(0, dtype=np.int64), empty, None
        labels = np.concatenate([r[0] for r in self.ranked])
        proba = np.concatenate([r[1] for r in self.ranked])
        weights = None if self.ranked[0][2] is None else np.concatenate([r[2] for r in self.ranked])
        self.ranked = [(labels, proba, weights)]
        return labels, proba, weights

    def merge(self, other: ClassState) -> None:
        """Add ``other``'s sums (and kept scores) to these."""
        self.num_rows += other.num_rows
        self.weight += other.weight
        self.nan_rows += other.nan_rows
        self.unseen_rows += other.unseen_rows
        self.confusion += other.confusion
        self.has_proba = self.has_proba or other.has_proba
        self.known_weight += other.known_weight
        self.log_loss_sum += other.log_loss_sum
        self.brier_sum += other.brier_sum
        self.calibration += other.calibration
        self.ranked.extend(other.ranked)


class ClassificationSlices:
    """Every slice's :class:`ClassState`, updated a batch at a time."""

    def __init__(self, num_classes: int, *, ranked: bool, bins: int) -> None:
        self.num_classes = num_classes
        self.keep_scores = ranked
        self.bins = bins
        self._states: dict[int, ClassState] = {}

    def state(self, slice_id: int) -> ClassState:
        found = self._states.get(slice_id)
        if found is None:
            found = self._states[slice_id] = ClassState(self.num_classes, self.bins)
        return found

    def empty(self) -> ClassificationSlices:
        """No slices yet, the same classes and settings."""
        return ClassificationSlices(self.num_classes, ranked=self.keep_scores, bins=self.bins)

    def merge(self, other: ClassificationSlices, remap: np.ndarray) -> None:
        """Add ``other``'s slices, whose slice id ``i`` is ``remap[i]`` here."""
        for slice_id, state in other._states.items():
            self.state(int(remap[slice_id])).merge(state)

    def update(
        self, rows: np.ndarray, slice_ids: np.ndarray, labels: np.ndarray,
        predicted: Predictions, weights: np.ndarray | None,
    ) -> None:  # fmt: skip
        """Add a batch: ``labels`` (class ids, ``C`` when unseen), ``predicted`` and
        ``weights`` (None for 1 each) are per batch row; batch row ``rows[k]`` belongs to slice
        ``slice_ids[k]``. Per-row figures are computed once, then summed per slice."""
        uniques, group = dense_groups(slice_ids)
        G, C = len(uniques), self.num_classes
        w = np.ones(len(labels)) if weights is None else weights
        ok = predicted.class_ids >= 0
        per_row = {"rows": np.ones(len(labels)), "nan": ~ok, "unseen": labels == C, "weight": w}
        if predicted.proba is not None:
            per_row.update(self._probability_rows(labels, predicted, w, ok))
        sums = {name: np.bincount(group, weights=v[rows], minlength=G) for name, v in
                per_row.items() if name != "bin"}  # fmt: skip
        cells = (labels * C + np.where(ok, predicted.class_ids, 0))[rows] + group * ((C + 1) * C)
        counted = ok[rows]
        confusion = np.bincount(cells[counted], weights=w[rows][counted],
                                minlength=G * (C + 1) * C).reshape(G, C + 1, C)  # fmt: skip
        calibration = None
        if predicted.proba is not None:
            calibration = self._calibration(group, G, rows, per_row)
        for g, slice_id in enumerate(uniques.tolist()):
            self._add(self.state(slice_id), g, sums, confusion[g],
                      None if calibration is None else calibration[g])  # fmt: skip
        if self.keep_scores and predicted.proba is not None:
            self._keep(uniques, group, rows, labels, predicted.proba, weights, ok)

    @staticmethod
    def _add(state: ClassState, g: int, sums: dict, confusion: np.ndarray, calibration) -> None:
        state.num_rows += int(sums["rows"][g])
        state.nan_rows += int(sums["nan"][g])
        state.unseen_rows += int(sums["unseen"][g])
        state.weight += float(sums["weight"][g])
        state.confusion += confusion
        if calibration is not None:
            state.has_proba = True
            state.known_weight += float(sums["known"][g])
            state.log_loss_sum += float(sums["log_loss"][g])
            state.brier_sum += float(sums["brier"][g])
            state.calibration += calibration

    def _probability_rows(
        self, labels: np.ndarray, predicted: Predictions, w: np.ndarray, ok: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Per batch row, weighted: log loss, Brier score, calibration bin, score and hit
        (0 where the label is unknown or the prediction NaN)."""
        proba, C, B = predicted.proba, self.num_classes, self.bins
        known = ok & (labels >= 0) & (labels < C)
        y = np.where(known, labels, 0)
        p = np.where(known[:, None], proba, 0)
        eps = np.finfo(p.dtype).eps
        true_p = p[np.arange(len(y)), y].astype(np.float64)
        brier = np.einsum("ij,ij->i", p, p) - 2.0 * true_p + 1.0  # sum over classes
        if C == 2:  # the positive class's probability against "is class 1"
            score, hit = p[:, 1].astype(np.float64), (y == 1).astype(np.float64)
        else:  # reliability: confidence against "was right"
            score = p.max(axis=1).astype(np.float64)
            hit = (predicted.class_ids == y).astype(np.float64)
        wk = np.where(known, w, 0.0)
        return {
            "known": wk,
            "log_loss": -wk * np.log(np.clip(true_p, eps, 1 - eps)),
            "brier": wk * brier,
            "bin": np.minimum((score * B).astype(np.int64), B - 1).clip(0),
            "cal_score": wk * score,
            "cal_hit": wk * hit,
        }

    def _calibration(
        self, group: np.ndarray, G: int, rows: np.ndarray, per_row: dict
    ) -> np.ndarray:
        B = self.bins
        cell = group * B + per_row["bin"][rows]
        return np.stack([
            np.bincount(cell, weights=per_row[name][rows], minlength=G * B)
            for name in ("known", "cal_score", "cal_hit")
        ], axis=1).reshape(G, B, 3)  # fmt: skip

    def _keep(
        self, uniques: np.ndarray, group: np.ndarray, rows: np.ndarray, labels: np.ndarray,
        proba: np.ndarray, weights: np.ndarray | None, ok: np.ndarray,
    ) -> None:  # fmt: skip
        known = (ok & (labels >= 0) & (labels < self.num_classes))[rows]
        group, rows = group[known], rows[known]
        small = group.astype(np.int16) if len(uniques) < 2**15 else group  # radix sort
        order = np.argsort(small, kind="stable")
        bounds = np.searchsorted(group[order], np.arange(len(uniques) + 1))
        scores = proba[:, 1:] if self.num_classes == 2 else proba
        for g, slice_id in enumerate(uniques.tolist()):
            taken = rows[order[bounds[g] : bounds[g + 1]]]
            if len(taken):
                kept = (labels[taken].astype(np.int32), scores[taken],
                        None if weights is None else weights[taken])  # fmt: skip
                self.state(slice_id).ranked.append(kept)
