"""Examples as NumPy arrays: the ``(X, y)`` that scikit-learn, PyTorch, JAX and Keras take.

Features must be scalar numeric columns (a list of at most one value, as tf.Example decodes,
counts as a scalar); missing feature values become NaN in a float matrix. The label keeps its
own dtype and may be a string.

Example::

    from conveyor.io import batch_to_numpy, check_features, record_batches

    check_features(examples, "train", features=["fare", "trip_miles"], label="tips")
    for batch in record_batches(examples, "train", batch_size=4096):
        X, y = batch_to_numpy(batch, features=["fare", "trip_miles"], label="tips")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from conveyor.types import ConveyorError

if TYPE_CHECKING:
    from conveyor.io.examples import ExamplesLike, ExamplesSource

__all__ = [
    "arrow_mask",
    "batch_to_numpy",
    "bool_mask",
    "check_features",
    "is_list_type",
    "row_numbers",
]


_LIST_TYPES = (
    pa.ListType,
    pa.LargeListType,
    pa.FixedSizeListType,
    pa.ListViewType,
    pa.LargeListViewType,
)


def is_list_type(t: pa.DataType) -> bool:
    """Whether ``t`` is one of Arrow's list types: ``list``, ``large_list``, ``fixed_size_list``,
    ``list_view`` or ``large_list_view`` (each a column with several values per row)."""
    return isinstance(t, _LIST_TYPES)


def arrow_mask(mask: np.ndarray) -> pa.BooleanArray:
    """A NumPy bool array as an Arrow one, packed directly (``pa.array`` imports pandas)."""
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return pa.BooleanArray.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


def row_numbers(rows: np.ndarray) -> pa.Int64Array:
    """NumPy row numbers as an Arrow array for ``take``, sharing the memory (``pa.array``
    imports pandas)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    return pa.Int64Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows)])


def bool_mask(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as a NumPy bool array, nulls as False.

    Read straight from the bit buffers: pyarrow's own ``to_numpy`` imports pandas for
    booleans, which costs a fresh process a fifth of a second.
    """
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    if not pa.types.is_boolean(mask.type):
        raise TypeError(f"bool_mask needs a boolean array, got {mask.type}")
    validity, data = mask.buffers()[:2]
    values = _bits(data, mask.offset, len(mask))
    if mask.null_count and validity is not None:
        values &= _bits(validity, mask.offset, len(mask))
    return values


def _bits(buffer: pa.Buffer | None, offset: int, length: int) -> np.ndarray:
    if buffer is None or length == 0:
        return np.zeros(length, dtype=bool)
    first, last = offset // 8, (offset + length + 7) // 8
    raw = np.frombuffer(buffer, dtype=np.uint8, count=last - first, offset=first)
    start = offset - first * 8
    return np.unpackbits(raw, bitorder="little")[start : start + length].astype(bool)


def check_features(
    examples: ExamplesLike,
    split: str = "train",
    *,
    features: Sequence[str],
    label: str | None = None,
) -> ExamplesSource:
    """Fail before reading any row if ``features`` or ``label`` are missing, or a feature is
    not numeric; returns the opened source."""
    # Imported here, not at the top: conveyor.io.examples imports this module.
    from conveyor.io.examples import _check_columns, open_examples

    source = open_examples(examples)
    if isinstance(features, str) or not features:
        raise ConveyorError(
            "The 'features' parameter must be a non-empty list of column names. "
            f"Got {features!r} instead."
        )
    _check_columns(source, split, features, role="feature")
    if label is not None:
        _check_columns(source, split, [label], role="label")
    try:
        batch_to_numpy(source.schema(split).empty_table(), features=features, label=label)
    except ConveyorError as exc:
        raise ConveyorError(f"{exc} (Split {split!r} of the Examples at {source.uri}.)") from None
    return source


def batch_to_numpy(
    batch: pa.RecordBatch | pa.Table,
    *,
    features: Sequence[str],
    label: str | None = None,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, y)`` from one record batch or table; see :func:`~conveyor.io.examples.to_numpy`."""
    dtype = np.dtype(dtype)
    X = np.empty((batch.num_rows, len(features)), dtype=dtype)
    for j, name in enumerate(features):
        X[:, j] = _feature_values(_column(batch, name), name, dtype)
    y = None if label is None else _label_values(_column(batch, label), label)
    return X, y


def _column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    if name not in batch.schema.names:
        raise ConveyorError(f"No column {name!r}; columns: {', '.join(batch.schema.names)}.")
    column = batch.column(name)
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        column = _single_values(column, name)
    return column


def _single_values(column: pa.Array, name: str) -> pa.Array:
    """A list column whose lists hold at most one value (as tf.Example decodes) as scalars."""
    import pyarrow.compute as pc

    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    if len(lengths) and lengths.max() > 1:
        row = int(np.argmax(lengths > 1))
        raise ConveyorError(
            f"Feature {name!r} holds lists (row {row} has {lengths[row]} values), but a single "
            "value per row is needed here. Transform it into scalar columns first."
        )
    present = lengths == 1
    positions = pa.array(np.cumsum(present) - 1, mask=~present)
    return column.flatten().take(positions)


def _is_numeric(arrow_type: pa.DataType) -> bool:
    return any(
        check(arrow_type)
        for check in (
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_boolean,
            pa.types.is_decimal,
            pa.types.is_null,
        )
    )


def _feature_values(column: pa.Array, name: str, dtype: np.dtype) -> np.ndarray:
    if not _is_numeric(column.type):
        raise ConveyorError(
            f"Feature {name!r} is {column.type}, but a numeric matrix needs scalar numeric "
            "features (int, float, bool). Transform or encode it first (e.g. a vocabulary or "
            "one-hot encoding in Transform), or leave it out of 'features'."
        )
    if dtype.kind != "f" and column.null_count:
        raise ConveyorError(
            f"Feature {name!r} has {column.null_count} missing values, which dtype {dtype} "
            "cannot hold. Impute them first, or use a float dtype (missing values become NaN)."
        )
    try:
        target = pa.from_numpy_dtype(dtype) if dtype.kind == "f" else pa.float64()
    except (pa.ArrowNotImplementedError, NotImplementedError, TypeError):  # e.g. bfloat16
        target = pa.float64()
    return column.cast(target, safe=False).to_numpy(zero_copy_only=False)


def _label_values(column: pa.Array, name: str) -> np.ndarray:
    if column.null_count:
        raise ConveyorError(
            f"Label {name!r} is missing in {column.null_count} rows. "
            "Drop or impute those rows before training."
        )
    if not (
        _is_numeric(column.type)
        or pa.types.is_string(column.type)
        or pa.types.is_large_string(column.type)
    ):
        raise ConveyorError(f"Label {name!r} is {column.type}; expected a number or a string.")
    return column.to_numpy(zero_copy_only=False, writable=True)
