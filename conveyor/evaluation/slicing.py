"""Which slices each row of a batch belongs to, vectorised over Arrow columns.

Slice keys read as people write them: ``Overall``, ``species=Adelie``, ``hour=3 &
payment=Cash``, ``body_mass_g=[3500, 4500)``; a missing value is ``(missing)``. Each key gets
an integer id the first time a batch holds it; :meth:`Slicer.ordered` lists the keys in a
stable order (spec by spec, values sorted) whatever order the batches came in.

Example::

    slicer = Slicer(config.specs)
    rows, ids = slicer.assign(batch)     # row i of the batch is in slice ids[k] when rows[k] == i
    slicer.key(ids[0])                   # 'Overall'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.evaluation.config import OVERALL, EvalConfigError, SlicingSpec

__all__ = ["MISSING", "Slicer", "bucket_label", "dense_groups", "value_label"]

MISSING = "(missing)"


def value_label(value: Any) -> str:
    """A slice value as it reads in a key."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.15g}" if not value.is_integer() else str(int(value))
    return str(value)


def bucket_label(boundaries: tuple[float, ...], index: int) -> str:
    """The bucket ``index`` of ``boundaries`` (0 below the first), as ``[low, high)``."""
    low = value_label(boundaries[index - 1]) if index > 0 else "-inf"
    high = value_label(boundaries[index]) if index < len(boundaries) else "inf"
    return f"{'(' if index == 0 else '['}{low}, {high})"


@dataclass(frozen=True)
class _Codes:
    """One feature's value per row as a small integer, and what each integer means."""

    codes: np.ndarray  # int64 [n]
    labels: list[str]
    sort_keys: list[tuple]


class Slicer:
    """Assigns the rows of each batch to slices (see the module docstring)."""

    def __init__(self, specs: tuple[SlicingSpec, ...]) -> None:
        self.specs = specs
        self._ids: dict[str, int] = {}
        self._keys: list[str] = []
        self._order: list[tuple] = []

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(name for spec in self.specs for name in spec.features))

    def key(self, slice_id: int) -> str:
        return self._keys[slice_id]

    def ordered(self) -> list[str]:
        """Every key seen so far, Overall first, then spec by spec with values in order."""
        order = sorted(range(len(self._keys)), key=lambda i: self._order[i])
        return [self._keys[i] for i in order]

    def spec_of(self) -> dict[str, int]:
        """Slice key → index of the spec in ``specs`` that made it."""
        return {key: self._order[i][0] for i, key in enumerate(self._keys)}

    def absorb(self, other: Slicer) -> np.ndarray:
        """Take in the slices ``other`` has seen; returns, for each of ``other``'s slice ids,
        the id of the same key here (ids are numbered in the order each slicer met them)."""
        return np.array([self._id(key, order) for key, order in
                         zip(other._keys, other._order, strict=True)], dtype=np.int64)  # fmt: skip

    def assign(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, slice_ids)``: row ``rows[k]`` of ``batch`` belongs to ``slice_ids[k]``; a
        row is listed once per spec whose slices hold it."""
        rows, ids = [], []
        for index, spec in enumerate(self.specs):
            spec_rows, spec_ids = self._spec(index, spec, batch)
            rows.append(spec_rows)
            ids.append(spec_ids)
        return np.concatenate(rows), np.concatenate(ids)

    def _spec(
        self, index: int, spec: SlicingSpec, batch: pa.RecordBatch
    ) -> tuple[np.ndarray, np.ndarray]:
        n = batch.num_rows
        if spec.is_overall:
            return np.arange(n), np.full(n, self._id(OVERALL, (index,)), dtype=np.int64)
        rows = _matching_rows(spec, batch)
        parts = [_categorical(batch.column(name).take(rows), name) for name in spec.feature_keys]
        parts += [_bucketed(batch.column(name).take(rows), name, cuts)
                  for name, cuts in spec.boundaries.items()]  # fmt: skip
        fixed = [f"{name}={value_label(v)}" for name, v in spec.feature_values.items()]
        if not parts:  # feature_values only: one slice
            return rows, np.full(len(rows), self._id(" & ".join(fixed), (index,)), dtype=np.int64)
        combined, first = _combine([p.codes for p in parts])
        local_ids = np.empty(len(first), dtype=np.int64)
        for group, row in enumerate(first):
            names = [f"{name}={p.labels[p.codes[row]]}" for name, p in zip(
                spec.features, parts, strict=False)]  # fmt: skip
            order = (index, *(p.sort_keys[p.codes[row]] for p in parts))
            local_ids[group] = self._id(" & ".join(names + fixed), order)
        return rows, local_ids[combined]

    def _id(self, key: str, order: tuple) -> int:
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._keys)
            self._keys.append(key)
            self._order.append(order)
        return found


def dense_groups(slice_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(uniques, group)``: the slice ids present, ascending, and each row's index among
    them; what ``np.unique(..., return_inverse=True)`` gives, in linear time for the small
    non-negative ids slices have."""
    present = np.bincount(slice_ids) > 0
    uniques = np.flatnonzero(present)
    index = np.cumsum(present) - 1
    return uniques, index[slice_ids]


def _matching_rows(spec: SlicingSpec, batch: pa.RecordBatch) -> np.ndarray:
    """Rows whose values equal the spec's ``feature_values`` (all rows when it has none)."""
    mask = None
    for name, value in spec.feature_values.items():
        column = batch.column(name)
        try:
            scalar = pa.scalar(value).cast(column.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise EvalConfigError(
                f"SlicingSpec's feature_values[{name!r}] = {value!r} cannot be compared with "
                f"feature {name!r} of type {column.type}: {exc}. Give a value of that type."
            ) from None
        equal = pc.fill_null(pc.equal(column, scalar), False)
        mask = equal if mask is None else pc.and_(mask, equal)
    if mask is None:
        return np.arange(batch.num_rows)
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


def _categorical(column: pa.Array, name: str) -> _Codes:
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            or pa.types.is_boolean(column.type)):  # fmt: skip
        raise EvalConfigError(
            f"Cannot slice by feature {name!r}: its values are {column.type}; slice by a "
            "string, integer, boolean or floating feature (or bucket a number with boundaries)."
        )
    encoded = pc.dictionary_encode(column)
    values = encoded.dictionary.to_pylist()
    if pa.types.is_floating(column.type):
        values = [None if v != v else v for v in values]  # NaN reads as missing
    codes = encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
    values.append(None)
    missing = [i for i, v in enumerate(values) if v is None]
    if len(missing) > 1:  # NaN and null: one missing code
        codes = np.where(np.isin(codes, missing), missing[-1], codes)
    labels = [value_label(v) for v in values]
    sort_keys = [(1, "") if v is None else (0, v) for v in values]
    return _Codes(codes.astype(np.int64), labels, sort_keys)


def _bucketed(column: pa.Array, name: str, cuts: tuple[float, ...]) -> _Codes:
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise EvalConfigError(
            f"Cannot bucket feature {name!r} by boundaries: its values are {column.type}, not "
            "numbers. Slice it with feature_keys instead."
        )
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    codes = np.searchsorted(np.asarray(cuts), values, side="right")
    codes[np.isnan(values)] = len(cuts) + 1
    labels = [bucket_label(cuts, i) for i in range(len(cuts) + 1)] + [MISSING]
    sort_keys = [(0, i) for i in range(len(cuts) + 1)] + [(1, 0)]
    return _Codes(codes.astype(np.int64), labels, sort_keys)


def _combine(codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the index of its value combination, and one row holding each combination."""
    combined = codes[0]
    for more in codes[1:]:
        _, combined = np.unique(combined * (int(more.max(initial=0)) + 1) + more,
                                return_inverse=True)  # fmt: skip
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return inverse.reshape(-1), first
