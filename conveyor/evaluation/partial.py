"""A share of an evaluation's sums: what some of the rows (a split here, or a block of one
on a cluster's worker) add to every slice of every model, merged with the other shares by
slice key.

Slices are numbered in the order a share first meets them, so two shares number them
differently: :meth:`EvalPartial.merge` renumbers the other's by key. Counts and confusion
matrices merge exactly; sums of floats (log loss, Brier score, calibration) to the last
bits, as their order changes. ROC and PR AUCs are exact: a share keeps its slices' scores,
so the merged share holds every score of the rows evaluated.

Example::

    partial = scorer.new_partial("eval")   # see conveyor.evaluation.scoring
    scorer.add(partial, batch)
    partial.merge(other)                   # other: another share, e.g. from a worker
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from conveyor.evaluation.classification import ClassificationSlices
from conveyor.evaluation.regression import RegressionSlices
from conveyor.evaluation.slicing import Slicer

__all__ = ["EvalPartial", "ModelSums"]


@dataclass
class ModelSums:
    """One model's per-slice sums and the label values it never saw (with their counts)."""

    slices: ClassificationSlices | RegressionSlices | None = None
    unseen: Counter[str] = field(default_factory=Counter)

    def merge(self, other: ModelSums, remap: np.ndarray) -> None:
        """Add ``other``'s sums, whose slice id ``i`` is ``remap[i]`` here."""
        self.unseen.update(other.unseen)
        if other.slices is None:
            return
        if self.slices is None:
            self.slices = other.slices.empty()
        self.slices.merge(other.slices, remap)  # type: ignore[arg-type]


@dataclass
class EvalPartial:
    """The sums of some rows: slices met (``slicer``), each model's sums (candidate first),
    rows read per split and rows left out per reason. ``split``: where the rows being added
    come from."""

    split: str
    slicer: Slicer
    models: list[ModelSums]
    counts: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)

    def merge(self, other: EvalPartial) -> EvalPartial:
        """Add ``other`` to this share (slices matched by key); returns this share."""
        remap = self.slicer.absorb(other.slicer)
        for mine, theirs in zip(self.models, other.models, strict=True):
            mine.merge(theirs, remap)
        for name, rows in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + rows
        for why, rows in other.excluded.items():
            self.excluded[why] = self.excluded.get(why, 0) + rows
        return self
