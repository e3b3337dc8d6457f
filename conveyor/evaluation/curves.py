"""Exact, weighted ROC and precision-recall curves of one binary problem, and their areas.

The same arithmetic as scikit-learn's ``roc_curve``/``roc_auc_score`` (trapezoids between
distinct scores) and ``average_precision_score`` (precision at each distinct score times the
recall gained there), so the figures agree with it on the same scores. The scores are
sorted whole: a slice's scores are kept in memory (in the model's own float dtype) until its
curve is drawn.

Example::

    curve = binary_curve(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.4]), None)
    curve.roc_auc(), curve.average_precision()    # (1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BinaryCurve", "binary_curve", "thin"]

MAX_POINTS = 200


@dataclass(frozen=True)
class BinaryCurve:
    """Cumulative weighted true and false positives at each distinct score, highest first."""

    tps: np.ndarray
    fps: np.ndarray
    thresholds: np.ndarray

    @property
    def defined(self) -> bool:
        return len(self.tps) > 0 and self.tps[-1] > 0 and self.fps[-1] > 0

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """(false positive rate, true positive rate), starting at (0, 0)."""
        fpr = np.r_[0.0, self.fps / self.fps[-1]]
        tpr = np.r_[0.0, self.tps / self.tps[-1]]
        return fpr, tpr

    def roc_auc(self) -> float:
        fpr, tpr = self.roc()
        return float(np.trapezoid(tpr, fpr))

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) at each distinct score, highest score first."""
        predicted = self.tps + self.fps
        precision = np.divide(self.tps, predicted, out=np.ones_like(self.tps), where=predicted > 0)
        return self.tps / self.tps[-1], precision

    def average_precision(self) -> float:
        recall, precision = self.precision_recall()
        return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def binary_curve(
    positive: np.ndarray, scores: np.ndarray, weights: np.ndarray | None
) -> BinaryCurve:
    """The curve of ``scores`` for the boolean ``positive`` (weighted by ``weights``)."""
    order = np.argsort(scores)[::-1]  # ties need no order: only their last index counts
    scores = scores[order]
    hit = positive[order].astype(np.float64)
    weight = np.ones_like(hit) if weights is None else weights[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1] if len(scores) else []
    tps = np.cumsum(hit * weight)[last]
    fps = np.cumsum((1.0 - hit) * weight)[last]
    return BinaryCurve(tps, fps, scores[last].astype(np.float64))


def thin(x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS) -> list[list[float]]:
    """At most ``limit`` points of a curve (both ends kept), as ``[[x, y], ...]`` rounded for
    plotting."""
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), limit)).round().astype(int))
    return [[round(float(a), 5), round(float(b), 5)] for a, b in zip(x[keep], y[keep], strict=True)]
