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
    slices.update(slice_ids, labels, predictions, weights)
    slices.state(0).num_rows
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conveyor.evaluation.predictions import Predictions

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

    def update(
        self, slice_ids: np.ndarray, labels: np.ndarray, predicted: Predictions,
        weights: np.ndarray | None,
    ) -> None:  # fmt: skip
        """Add rows: ``slice_ids[k]`` is row k's slice, ``labels`` class ids (``C`` when
        unseen), ``predicted`` the rows' predictions, ``weights`` None for 1 each."""
        uniques, group = np.unique(slice_ids, return_inverse=True)
        G, C = len(uniques), self.num_classes
        w = np.ones(len(labels)) if weights is None else weights
        ok = predicted.class_ids >= 0
        rows = np.bincount(group, minlength=G)
        nan_rows = np.bincount(group, weights=~ok, minlength=G)
        unseen_rows = np.bincount(group, weights=labels == C, minlength=G)
        weight = np.bincount(group, weights=w, minlength=G)
        cells = (group * (C + 1) + labels) * C + np.where(ok, predicted.class_ids, 0)
        confusion = np.bincount(cells[ok], weights=w[ok], minlength=G * (C + 1) * C)
        confusion = confusion.reshape(G, C + 1, C)
        sums = None
        if predicted.proba is not None:
            sums = self._probability_sums(group, G, labels, predicted, w, ok)
        for g, slice_id in enumerate(uniques.tolist()):
            state = self.state(slice_id)
            state.num_rows += int(rows[g])
            state.nan_rows += int(nan_rows[g])
            state.unseen_rows += int(unseen_rows[g])
            state.weight += float(weight[g])
            state.confusion += confusion[g]
            if sums is not None:
                state.has_proba = True
                state.known_weight += float(sums["known"][g])
                state.log_loss_sum += float(sums["log_loss"][g])
                state.brier_sum += float(sums["brier"][g])
                state.calibration += sums["calibration"][g]
        if self.keep_scores and predicted.proba is not None:
            self._keep(uniques, group, labels, predicted.proba, weights, ok)

    def _probability_sums(
        self, group: np.ndarray, G: int, labels: np.ndarray, predicted: Predictions,
        w: np.ndarray, ok: np.ndarray,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        proba, C, B = predicted.proba, self.num_classes, self.bins
        known = ok & (labels >= 0) & (labels < C)
        g, y, p, wk = group[known], labels[known], proba[known], w[known]
        eps = np.finfo(p.dtype).eps
        picked = np.clip(p[np.arange(len(y)), y], eps, 1 - eps).astype(np.float64)
        onehot = np.zeros(p.shape, dtype=np.float64)
        onehot[np.arange(len(y)), y] = 1.0
        brier = ((onehot - p) ** 2).sum(axis=1)
        if C == 2:  # the positive class's probability against "is class 1"
            score, hit = p[:, 1].astype(np.float64), (y == 1).astype(np.float64)
        else:  # reliability: confidence against "was right"
            score = p.max(axis=1).astype(np.float64)
            hit = (predicted.class_ids[known] == y).astype(np.float64)
        cell = g * B + np.minimum((score * B).astype(np.int64), B - 1).clip(0)
        calibration = np.stack([
            np.bincount(cell, weights=wk, minlength=G * B),
            np.bincount(cell, weights=wk * score, minlength=G * B),
            np.bincount(cell, weights=wk * hit, minlength=G * B),
        ], axis=1).reshape(G, B, 3)  # fmt: skip
        return {
            "known": np.bincount(g, weights=wk, minlength=G),
            "log_loss": np.bincount(g, weights=-wk * np.log(picked), minlength=G),
            "brier": np.bincount(g, weights=wk * brier, minlength=G),
            "calibration": calibration,
        }

    def _keep(
        self, uniques: np.ndarray, group: np.ndarray, labels: np.ndarray, proba: np.ndarray,
        weights: np.ndarray | None, ok: np.ndarray,
    ) -> None:  # fmt: skip
        known = ok & (labels >= 0) & (labels < self.num_classes)
        group, labels, proba = group[known], labels[known].astype(np.int32), proba[known]
        weights = None if weights is None else weights[known]
        scores = proba[:, 1:] if self.num_classes == 2 else proba
        order = np.argsort(group, kind="stable")
        bounds = np.searchsorted(group[order], np.arange(len(uniques) + 1))
        for g, slice_id in enumerate(uniques.tolist()):
            rows = order[bounds[g] : bounds[g + 1]]
            if len(rows):
                kept = (labels[rows], scores[rows], None if weights is None else weights[rows])
                self.state(slice_id).ranked.append(kept)
