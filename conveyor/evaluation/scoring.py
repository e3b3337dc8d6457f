"""Scoring batches of examples into an :class:`~conveyor.evaluation.partial.EvalPartial`:
the label derived where the model's transform computes it, rows without a label (or weight)
counted and left out, the rest sliced and predicted by every model.

A :class:`Scorer` works in one process with loaded models. An :class:`EvalPlan` is what a
cluster's worker needs to build the same scorer (the models' URIs rather than the models,
the columns to read), small and picklable; it loads the models once per worker process.

Example::

    scorer = Scorer(passes, derived, config)
    partial = scorer.new_partial("eval")
    for batch in batches:
        scorer.add(partial, batch)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.evaluation.config import EvalConfig
from conveyor.evaluation.derived_label import DerivedLabel
from conveyor.evaluation.model_pass import ModelPass
from conveyor.evaluation.partial import EvalPartial, ModelSums
from conveyor.evaluation.slicing import Slicer
from conveyor.types import ConveyorError

__all__ = ["EvalPlan", "Scorer"]


class Scorer:
    """Adds batches of raw examples to partial sums (see the module docstring)."""

    def __init__(
        self, passes: list[ModelPass], derived: DerivedLabel | None, config: EvalConfig
    ) -> None:
        self.passes = passes
        self.derived = derived
        self.config = config
        self.label_key = passes[0].label_key

    def new_partial(self, split: str) -> EvalPartial:
        models = [ModelSums() for _ in self.passes]
        return EvalPartial(split, Slicer(self.config.specs), models, counts={split: 0})

    def add(self, partial: EvalPartial, batch: pa.RecordBatch) -> None:
        """Slice, predict and sum ``batch`` (rows of ``partial.split``)."""
        partial.counts[partial.split] = partial.counts.get(partial.split, 0) + batch.num_rows
        if self.derived is not None:
            batch = self.derived.add_to(batch)
        weight_key = self.config.example_weight_key
        batch, weights = usable_rows(batch, self.label_key, weight_key, partial.excluded)
        if batch.num_rows:
            rows, slice_ids = partial.slicer.assign(batch)
            for run, sums in zip(self.passes, partial.models, strict=True):
                run.update(sums, batch, rows, slice_ids, weights)


@dataclass(frozen=True)
class EvalPlan:
    """What a worker needs to score blocks as this process would: the config, the models'
    URIs by role (candidate first), the label, the columns to read and the ``predict_fn``."""

    config: EvalConfig
    models: dict[str, str]
    label_key: str
    label_type: pa.DataType
    columns: list[str]
    predict_fn: Callable[..., Any] | None = None
    derived_label: bool = False
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def create(self, split: str) -> EvalPartial:
        """Empty sums for rows of ``split``."""
        return self.scorer().new_partial(split)

    def add(self, partial: EvalPartial, batch: pa.RecordBatch) -> None:
        self.scorer().add(partial, batch)

    def scorer(self) -> Scorer:
        """This process's scorer for the plan, its models loaded on first use."""
        if _loaded.get("token") != self.token:
            _loaded.clear()
            _loaded.update(token=self.token, scorer=self._build())
        return _loaded["scorer"]

    def _build(self) -> Scorer:
        from conveyor.frameworks import load_model

        bundles = {role: load_model(uri) for role, uri in self.models.items()}
        passes = [
            ModelPass(bundle, self.config, label_key=self.label_key, label_type=self.label_type,
                      name=f"the {role} model", predict_fn=self.predict_fn)
            for role, bundle in bundles.items()
        ]  # fmt: skip
        derived = None
        if self.derived_label:
            derived = DerivedLabel.find(bundles["candidate"], self.label_key, self.columns)
        return Scorer(passes, derived, self.config)


_loaded: dict[str, Any] = {}  # the scorer of the plan last used in this process


def usable_rows(
    batch: pa.RecordBatch, label_key: str, weight_key: str | None, excluded: dict[str, int]
) -> tuple[pa.RecordBatch, np.ndarray | None]:
    """The rows with a label (and a weight), counting the others in ``excluded``."""
    label = batch.column(label_key)
    keep = pc.is_valid(label)
    if pa.types.is_floating(label.type):
        keep = pc.and_(keep, pc.invert(pc.fill_null(pc.is_nan(label), True)))
    _count(excluded, "missing label", batch.num_rows - pc.sum(keep).as_py())
    weights = None
    if weight_key is not None:
        raw = batch.column(weight_key).cast(pa.float64()).fill_null(np.nan)
        values = raw.to_numpy(zero_copy_only=False)
        if (values < 0).any():
            raise ConveyorError(
                f"The example weight {weight_key!r} has negative values (e.g. "
                f"{values[values < 0][0]}); weights must be 0 or more."
            )
        has_weight = pa.array(np.isfinite(values))
        _count(excluded, "missing weight", pc.sum(pc.and_(keep, pc.invert(has_weight))).as_py())
        keep = pc.and_(keep, has_weight)
        weights = values[np.asarray(keep)]
    if pc.all(keep).as_py():
        return batch, weights
    return batch.filter(keep), weights


def _count(excluded: dict[str, int], why: str, rows: int | None) -> None:
    if rows:
        excluded[why] = excluded.get(why, 0) + int(rows)
