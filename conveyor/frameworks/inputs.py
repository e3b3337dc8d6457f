"""What a model bundle predicts from: raw features as a pandas DataFrame, a list of dicts
(rows), a dict of columns, or an Arrow Table / RecordBatch, checked against the fields the
bundle reads; and the float32 matrix ``X`` a model takes, built from named feature columns.

Rows go through :func:`conveyor.transform.rows.rows_to_batch`, so a served row and a row given
here are judged alike. Columns are held to the same rules: a required feature must be present
and non-null, and a value of the wrong kind (text for a number, a fraction for an integer) is
an error naming the feature, never a silent NaN.

Example::

    batch = raw_batch([{"culmen_length_mm": 39.1}], fields)   # pa.RecordBatch of ``fields``
    X = feature_matrix(transformed, ["culmen_length_mm_z"])   # float32 [1, 1]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.transform import dtypes
from conveyor.transform.fitted import FittedTransform
from conveyor.transform.graph import Graph
from conveyor.transform.rows import BadRowError, rows_to_batch
from conveyor.types import ConveyorError


class ModelInputs:
    """How raw data becomes ``X`` for one bundle: the raw fields read (the transform's, pruned
    to what ``features`` depend on, or the features themselves as required float32 numbers
    when there is no transform), the transform, and the width of ``X``."""

    def __init__(self, features: Sequence[str], transform: FittedTransform | None) -> None:
        self.features = list(features)
        self.transform = None if transform is None else serving_transform(transform, features)
        if self.transform is None:
            self.fields = [pa.field(name, pa.float32(), nullable=False) for name in features]
            model_schema = pa.schema(self.fields)
        else:
            self.fields = list(self.transform.raw_schema)
            model_schema = self.transform.transformed_schema
        self.width = matrix_width(model_schema, self.features)

    def signature(self) -> list[dict[str, Any]]:
        """The raw inputs: name, type (as in ``graph.json``) and whether each is required."""
        return [
            {"name": f.name, "type": dtypes.to_json(f.type), "required": not f.nullable}
            for f in self.fields
        ]

    def matrix(self, raw: Any) -> np.ndarray:
        """``X`` for raw data: checked, transformed, the features' columns in order."""
        batch = raw_batch(raw, self.fields)
        if self.transform is not None:
            batch = self.transform.transform_batch(batch)
        return feature_matrix(batch, self.features)


def serving_transform(fitted: FittedTransform, features: Sequence[str]) -> FittedTransform:
    """``fitted`` computing only ``features`` and reading only the raw features they need, so
    a served row need not carry the label (or anything else only the label uses)."""
    graph = fitted.graph
    missing = [name for name in features if name not in graph.outputs]
    if missing:
        raise ConveyorError(
            f"Feature(s) {', '.join(map(repr, missing))} are not outputs of the transform; its "
            f"outputs: {', '.join(map(repr, graph.outputs))}."
        )
    pruned = Graph(graph.raw_schema, graph.nodes, {name: graph.outputs[name] for name in features})
    used = set(pruned.used_inputs())
    pruned.raw_schema = pa.schema([f for f in graph.raw_schema if f.name in used])
    return FittedTransform(pruned)


def raw_batch(raw: Any, fields: Sequence[pa.Field]) -> pa.RecordBatch:
    """``raw`` as one batch with a column per field of ``fields``, checked."""
    fields = list(fields)
    if isinstance(raw, pa.RecordBatch | pa.Table):
        return _from_columns(dict(zip(raw.schema.names, raw.columns, strict=True)), fields)
    if type(raw).__name__ == "DataFrame" and hasattr(raw, "columns"):
        columns = {str(name): raw[name] for name in raw.columns}
        return _from_columns(columns, fields)
    if isinstance(raw, Mapping):
        return _from_columns(dict(raw), fields)
    if isinstance(raw, np.ndarray):
        raise ConveyorError(
            "predict takes raw features (a DataFrame, a list of dicts, a dict of columns or an "
            "Arrow table); for a matrix of transformed features call predict_transformed(X)."
        )
    if isinstance(raw, Sequence) and not isinstance(raw, str | bytes):
        return rows_to_batch(raw, fields)
    raise ConveyorError(
        "predict takes raw features as a pandas DataFrame, a list of dicts, a dict of columns "
        f"or a pyarrow Table/RecordBatch; got {type(raw).__name__}."
    )


def _from_columns(columns: dict[str, Any], fields: list[pa.Field]) -> pa.RecordBatch:
    arrays = []
    for field in fields:
        if field.name not in columns:
            if not field.nullable:
                raise BadRowError(
                    f"The data lacks feature {field.name!r}, which the model needs. Columns "
                    f"given: {', '.join(map(repr, columns)) or 'none'}."
                )
            arrays.append(None)
            continue
        arrays.append(_column(columns[field.name], field))
    lengths = {len(a) for a in arrays if a is not None}
    if len(lengths) > 1:
        raise BadRowError(f"The columns have different lengths: {sorted(lengths)}.")
    length = lengths.pop() if lengths else 0
    arrays = [
        pa.nulls(length, f.type) if a is None else a for a, f in zip(arrays, fields, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _column(values: Any, field: pa.Field) -> pa.Array:
    name = field.name
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
            raise BadRowError(
                f"Feature {name!r}: a dict of columns maps each feature to a list of values; "
                f"got {type(values).__name__}. For one row send a list holding one dict."
            )
        try:  # pandas' missing values (NaN, None, NA) become nulls, as when fitting a frame
            values = pa.array(values, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise BadRowError(
                f"Feature {name!r} mixes kinds of values and cannot be read as "
                f"{dtypes.describe(field.type)}: {exc}"
            ) from None
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if values.type != field.type:
        values = _cast(values, field)
    if not field.nullable and values.null_count:
        row = values.is_null().to_pylist().index(True)
        raise BadRowError(
            f"Row {row} lacks feature {name!r}, which the model needs and which was present in "
            "every training example. Send it (or fill it in the preprocessing_fn with "
            "fill_missing and refit)."
        )
    return values


def _cast(values: pa.Array, field: pa.Field) -> pa.Array:
    if not _convertible(values.type, field.type):
        raise BadRowError(
            f"Feature {field.name!r} must be {dtypes.describe(field.type)}; got a column of "
            f"{dtypes.describe(values.type)}."
        )
    try:
        return values.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BadRowError(
            f"Feature {field.name!r} must be {dtypes.describe(field.type)}; its values do not "
            f"convert: {exc}"
        ) from None


def _convertible(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether values of ``source`` may stand for ``target`` (the kinds the row check takes)."""
    if pa.types.is_null(source):
        return True
    source_is_list = dtypes.is_list(source) or pa.types.is_large_list(source)
    if source_is_list or dtypes.is_list(target):
        both = source_is_list and dtypes.is_list(target)
        return both and _convertible(source.value_type, target.value_type)
    if pa.types.is_integer(target) or pa.types.is_floating(target):
        return pa.types.is_integer(source) or pa.types.is_floating(source)
    if pa.types.is_boolean(target):
        return pa.types.is_boolean(source)
    if pa.types.is_string(target):
        return dtypes.normalize(source) == pa.string()
    if pa.types.is_binary(target):
        return dtypes.normalize(source) in (pa.string(), pa.binary())
    return False


def matrix_width(schema: pa.Schema, features: Sequence[str]) -> int:
    """The number of columns of ``X``: one per scalar feature, ``size`` per fixed-size list
    (e.g. a one-hot vector). Other kinds of feature cannot feed a model."""
    width = 0
    for name in features:
        kind = schema.field(name).type
        if dtypes.is_numeric(kind):
            width += 1
        elif pa.types.is_fixed_size_list(kind) and dtypes.is_numeric(kind.value_type):
            width += kind.list_size
        else:
            raise ConveyorError(
                f"Feature {name!r} is {dtypes.describe(kind)}; a model takes numbers (or "
                "fixed-size lists of numbers, such as one_hot's). Turn it into numbers in the "
                "preprocessing_fn (compute_and_apply_vocabulary, hash_strings, one_hot) or "
                "leave it out of features."
            )
    return width


def feature_matrix(batch: pa.RecordBatch | pa.Table, features: Sequence[str]) -> np.ndarray:
    """``X``: float32 ``[N, F]``, the ``features`` columns of ``batch`` in order (a
    fixed-size list fills ``size`` consecutive columns); nulls become NaN."""
    columns = []
    for name in features:
        column = batch.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        columns.append(column)
    if all(pa.types.is_floating(c.type) for c in columns):
        # Floats (nulls as NaN) convert as Arrow's cast to float32 would, straight into X.
        X = np.empty((batch.num_rows, len(columns)), dtype=np.float32)
        with np.errstate(over="ignore"):  # beyond float32's range is infinite, as in Arrow
            for index, column in enumerate(columns):
                X[:, index] = column.to_numpy(zero_copy_only=False)
        return X
    blocks = []
    for column in columns:
        if pa.types.is_fixed_size_list(column.type):
            blocks.append(_list_block(column))
        else:
            # Unchecked, as training's to_numpy casts: an integer beyond 2**24 (a census
            # tract id) rounds to the nearest float32 rather than failing.
            values = column.cast(pa.float32(), safe=False).to_numpy(zero_copy_only=False)
            blocks.append(np.asarray(values, dtype=np.float32).reshape(-1, 1))
    if not blocks:
        return np.zeros((batch.num_rows, 0), dtype=np.float32)
    return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)


def _list_block(column: pa.FixedSizeListArray) -> np.ndarray:
    size = column.type.list_size
    if column.null_count:
        rows = [r if r is not None else [None] * size for r in column.to_pylist()]
        filled = [[np.nan if v is None else v for v in row] for row in rows]
        return np.array(filled, dtype=np.float32).reshape(-1, size)
    values = column.flatten().cast(pa.float32()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(-1, size)
