"""Labels as the metrics need them: class ids for a classifier, numbers for a regressor.

How a label value finds its class id:

- ``EvalConfig.class_names`` (or else the bundle's ``class_names``) lists the label values by
  class id, and a label matches by value (``"Adelie"`` → 0);
- integer labels and class names that are not integers (the penguin labels 0, 1, 2 and the
  names Adelie, Chinstrap, Gentoo): the labels are the class ids;
- no class names at all: the labels are the class ids.

A label the model never saw (a value outside the class names, an id out of range) gets id
``num_classes``: it counts as wrong, and is listed with its count. A missing label (null, or
NaN for a regressor) gets id -1 / NaN; those rows are left out of every metric and counted.

Example::

    encoder = LabelEncoder.for_classes(["Adelie", "Chinstrap", "Gentoo"], pa.int64(), "species")
    encoder.encode(pa.array([0, 2, None, 7]))   # array([0, 2, -1, 3])
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.evaluation.slicing import value_label
from conveyor.types import ConveyorError

__all__ = ["LabelEncoder", "regression_labels"]

logger = logging.getLogger(__name__)

MAX_LISTED = 20


def _is_int_like(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_boolean(data_type)


class LabelEncoder:
    """Label values → class ids for one classifier (see the module docstring)."""

    def __init__(self, num_classes: int, class_names: list[Any] | None, by_id: bool) -> None:
        self.num_classes = num_classes
        self.class_names = class_names
        self.by_id = by_id  # labels are class ids
        self.unseen: Counter[str] = Counter()

    @classmethod
    def for_classes(
        cls, class_names: list[Any] | None, label_type: pa.DataType, label_key: str,
        num_classes: int | None = None,
    ) -> LabelEncoder:  # fmt: skip
        if class_names is None:
            if not _is_int_like(label_type):
                raise ConveyorError(
                    f"The model has no class_names, so the label {label_key!r} must hold class "
                    f"ids (integers), but it holds {label_type}. Give "
                    "EvalConfig(class_names=[...]) with the label's values by class id."
                )
            return cls(num_classes or 0, None, by_id=True)
        names_are_ints = all(isinstance(n, int) and not isinstance(n, bool) for n in class_names)
        by_id = _is_int_like(label_type) and not names_are_ints
        if by_id:
            logger.info(
                "Label %r holds integers and the class names (%s) do not: reading the labels "
                "as class ids.", label_key, ", ".join(map(str, class_names)),
            )  # fmt: skip
        return cls(len(class_names), list(class_names), by_id=by_id)

    def encode(self, column: pa.Array, unseen_counts: Counter[str] | None = None) -> np.ndarray:
        """Class ids (int64) for a label column: -1 where missing, ``num_classes`` where
        unseen (and the unseen values are counted, in ``unseen_counts`` when given)."""
        if self.by_id:
            ids = column.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
            unseen = (ids >= self.num_classes) | (ids < -1) if self.num_classes else ids < -1
        else:
            found = pc.index_in(_comparable(column), value_set=self._value_set(column.type))
            ids = found.fill_null(self.num_classes).to_numpy(zero_copy_only=False)
            ids = np.where(column.is_null().to_numpy(zero_copy_only=False), -1, ids)
            unseen = ids == self.num_classes
        ids = np.where(unseen, self.num_classes, ids).astype(np.int64)
        if unseen.any():
            values = column.filter(pa.array(unseen)).to_pylist()
            counts = self.unseen if unseen_counts is None else unseen_counts
            counts.update(value_label(v) for v in values)
        return ids

    def widen(self, num_classes: int) -> None:
        """Set the class count once the first predictions show it (models without names)."""
        if not self.num_classes:
            self.num_classes = num_classes

    def unseen_values(self) -> dict[str, int]:
        """The most frequent label values the model never saw, with their counts."""
        return dict(self.unseen.most_common(MAX_LISTED))

    def _value_set(self, label_type: pa.DataType) -> pa.Array:
        if _numeric(label_type) and all(isinstance(n, int | float) for n in self.class_names):
            return pa.array(self.class_names, pa.float64())
        return pa.array([str(n) for n in self.class_names], pa.string())


def _numeric(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type)


def _comparable(column: pa.Array) -> pa.Array:
    if _numeric(column.type):
        return column.cast(pa.float64())
    if pa.types.is_boolean(column.type):
        return pc.if_else(column, "true", "false")
    return column.cast(pa.string())


def regression_labels(column: pa.Array, label_key: str) -> np.ndarray:
    """A regressor's labels as float64, NaN where missing."""
    if not (_numeric(column.type) or pa.types.is_boolean(column.type)):
        raise ConveyorError(
            f"The label {label_key!r} holds {column.type}, but the model is a regressor: its "
            "label must be numeric."
        )
    return column.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
