"""Input files of every format, read as Arrow record batches under one schema.

:func:`infer_schema` looks at every input file once and settles one type per column;
:func:`read_batches` streams one file as record batches of exactly that schema, so all files
of an input read alike and a column never changes type between files or batches::

    schema = sources.infer_schema(uris, "csv")
    bad_rows = BadRows("skip")
    for uri in uris:
        for batch in sources.read_batches(uri, "csv", schema=schema, bad_rows=bad_rows):
            ...

Types
    CSV and JSON lines are typed from the first 2 MiB of *every* file, unified across files:
    a column with no value anywhere is ``string``; ``int64`` with ``double`` is ``double``; a
    number or boolean next to text is ``string`` (``bool`` with a number too: only text holds
    both); an integer column with missing values stays ``int64``, with nulls. Dates and times
    stay strings, as written. Parquet and Avro types come from the files' own schemas
    (integers read as ``int64``, floats as ``double``; ``int64`` in one file and ``double`` in
    another is ``double``). A ``schema`` given to :func:`infer_schema` (for instance
    ``tfmd.arrow_schema(...)``) fixes the types of the columns it names; a list type there
    reads each CSV value as a one-element list.

Missing values
    In CSV an empty field, or one of pyarrow's null markers (``NA``, ``NULL``, ``NaN``, ...),
    is null in a numeric or boolean column; in a string column it is kept as written, so an
    empty field is ``""`` (TFX's CSV decoder keeps it as an empty bytes value too).

Bad rows
    A row that cannot be read goes to the ``BadRows`` policy with its file, physical line
    (for Parquet and Avro, the row number) and reason: a wrong number of fields, an
    unterminated quote (the file ends inside a quoted value, or one runs on past the read
    window), a value that does not parse as its column's type, invalid UTF-8 in a string
    column, an invalid JSON line. In ``error`` mode the first one stops the read; otherwise
    the row is left out and the good rows around it are kept.

    CSV is read fast first (pyarrow reads whole windows of the file in parallel). Only a
    file whose fast read fails is read again carefully, from the window that failed: every
    column as raw bytes, bad rows found column by column with vectorised checks, physical
    line numbers counted through multi-line quoted values.

Schema widening
    A type inferred from a sample can meet a later value that does not fit it (``2.5`` in an
    ``int64`` column). That is not a bad row: :func:`read_batches` raises
    :class:`SchemaWidening` naming the column and a wider type. The caller widens the schema
    and reads every file again from the start, with a fresh ``BadRows``::

        while True:
            try:
                write_everything(schema)
                break
            except SchemaWidening as widening:
                schema = widen(schema, widening)

    A column only moves up ``int64 -> double -> string`` or ``bool -> string`` (for JSON lines
    only ``int64 -> double``), so the loop ends. Columns whose type was given are never
    widened: a value that does not fit them is a bad row. The inferred columns are listed in
    the schema's metadata (``conveyor.inferred_columns``); ``schema.remove_metadata()``
    makes every column fixed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import numpy as np
import pyarrow as pa

from conveyor.io.bad_rows import BadInputError, BadRows
from conveyor.types import ConveyorError

__all__ = [
    "FORMATS",
    "INFERRED_COLUMNS",
    "SchemaWidening",
    "format_for",
    "infer_schema",
    "read_batches",
    "widen",
]

FORMATS = ("csv", "parquet", "jsonl", "avro", "tfrecord")
INFERRED_COLUMNS = b"conveyor.inferred_columns"
SAMPLE_BYTES = 2 << 20

_MiB = 1 << 20
_EXTENSIONS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".avro": "avro",
    ".tfrecord": "tfrecord",
    ".tfrecords": "tfrecord",
    ".gz": "tfrecord",
}
# What pyarrow's CSV converter accepts, for the careful path to agree with the fast one.


class SchemaWidening(ConveyorError):
    """A value past the inference sample needs a wider type for an inferred column.

    ``new_type`` is the type to widen to; see the module docstring for the protocol.
    """

    def __init__(
        self,
        column: str,
        new_type: pa.DataType,
        *,
        old_type: pa.DataType | None = None,
        file: str | None = None,
        line: int | None = None,
        value: str | None = None,
    ) -> None:
        self.column, self.new_type, self.old_type = column, new_type, old_type
        self.file, self.line, self.value = file, line, value
        where = f" at {file}, line {line}" if file else ""
        super().__init__(
            f"Column '{column}' was typed {old_type} from a sample, but the value {value!r}"
            f"{where} needs {new_type}. Widen the schema (sources.widen) and read again, or "
            "give a schema that fixes the column's type."
        )

    def __reduce__(self) -> tuple:
        details = {k: getattr(self, k) for k in ("old_type", "file", "line", "value")}
        return (_rebuild_widening, (self.column, self.new_type, details))


def _rebuild_widening(column: str, new_type: pa.DataType, details: dict) -> SchemaWidening:
    return SchemaWidening(column, new_type, **details)


def widen(
    schema: pa.Schema, column: str | SchemaWidening, value_kind: pa.DataType | None = None
) -> pa.Schema:
    """``schema`` with ``column`` widened to hold values of ``value_kind`` as well.

    Pass the column and the kind of the value that did not fit, or the
    :class:`SchemaWidening` itself. The metadata (which columns were inferred) is kept.
    """
    if isinstance(column, SchemaWidening):
        column, value_kind = column.column, column.new_type
    if value_kind is None:
        raise ConveyorError("widen needs the kind of value to make room for; got None.")
    index = schema.get_field_index(column)
    if index < 0:
        raise ConveyorError(f"Cannot widen column '{column}': the schema has no such column.")
    field = schema.field(index)
    return schema.set(index, field.with_type(_widest(field.type, value_kind)))


def format_for(uri: str) -> str:
    """The format of ``uri`` from its extension (``.csv``, ``.parquet``, ``.jsonl``, ...)."""
    name = uri.rstrip("/").rsplit("/", 1)[-1].lower()
    stem, extension = os.path.splitext(name)
    inner = os.path.splitext(stem)[1]
    if extension == ".gz" and _EXTENSIONS.get(inner, "tfrecord") != "tfrecord":
        raise ConveyorError(
            f"{uri} is a gzipped {_EXTENSIONS[inner]} file; only TFRecord is read gzipped. "
            "Decompress it first."
        )
    if extension not in _EXTENSIONS:
        raise ConveyorError(
            f"Cannot tell the format of {uri} from its extension ({extension or 'none'}): "
            f"expected one of {', '.join(_EXTENSIONS)}. Rename the file or name the format "
            f"({', '.join(FORMATS)})."
        )
    return _EXTENSIONS[extension]


def infer_schema(
    uris: list[str],
    format: str,
    *,
    schema: pa.Schema | None = None,
    sample_bytes: int = SAMPLE_BYTES,
) -> pa.Schema:
    """One schema for all of ``uris``; ``schema`` fixes the types of the columns it names.

    CSV and JSON lines are sampled (the first ``sample_bytes`` of each file); see the module
    docstring for how types are settled across files.
    """
    _check_format(format)
    if not uris:
        raise ConveyorError("infer_schema needs at least one file. Got an empty list of URIs.")
    # The readers build on this module's type rules, so they are imported here, not on top.
    from conveyor.io._csv import _infer_csv
    from conveyor.io._formats import (
        _avro_schema_of,
        _infer_jsonl,
        _infer_tfrecord,
        _infer_typed,
        _parquet_schema,
    )

    fixed = {field.name: field.type for field in schema} if schema is not None else {}
    if format == "csv":
        return _infer_csv(list(uris), fixed, sample_bytes)
    if format == "jsonl":
        return _infer_jsonl(list(uris), fixed, sample_bytes)
    if format == "tfrecord":
        return _infer_tfrecord(list(uris), fixed)
    described = _parquet_schema if format == "parquet" else _avro_schema_of
    return _infer_typed(list(uris), fixed, described)


def read_batches(
    uri: str,
    format: str,
    *,
    schema: pa.Schema,
    bad_rows: BadRows,
    batch_size: int = 65536,
) -> Iterator[pa.RecordBatch]:
    """Stream one file as record batches of exactly ``schema``, at most ``batch_size`` rows each.

    Memory stays bounded by the read window (a few MiB to 64 MiB), never the file. Raises
    :class:`SchemaWidening` when an inferred type must widen (see the module docstring).
    """
    _check_format(format)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConveyorError(
            f"The 'batch_size' parameter of read_batches must be an int >= 1. "
            f"Got {batch_size!r} instead."
        )
    from conveyor.io._csv import _read_csv
    from conveyor.io._formats import _read_avro, _read_jsonl, _read_parquet, _read_tfrecord

    readers: dict[str, Callable[..., Iterator[pa.RecordBatch]]] = {
        "csv": _read_csv,
        "parquet": _read_parquet,
        "jsonl": _read_jsonl,
        "avro": _read_avro,
        "tfrecord": _read_tfrecord,
    }
    return readers[format](uri, schema, bad_rows, batch_size)


# ---------------------------------------------------------------------------- types
def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ConveyorError(
            f"The 'format' parameter must be one of {', '.join(FORMATS)}. Got {format!r} instead."
        )


def _widest(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The narrowest of null < bool | int64 < double < string holding both (CSV's order)."""
    common = _common(a, b)
    return pa.string() if common is None else common


def _unify(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """One type for values typed ``a`` in one file and ``b`` in another, or None if none fits."""
    common = _common(a, b)
    if common is None and pa.types.is_list(a) and pa.types.is_list(b):
        value = _unify(a.value_type, b.value_type)
        return pa.list_(value) if value is not None else None
    return common


def _common(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """``a`` or ``b`` when they are equal or one is null, double for int64 with double."""
    if a == b or pa.types.is_null(b):
        return a
    if pa.types.is_null(a):
        return b
    if {a, b} == {pa.int64(), pa.float64()}:
        return pa.float64()
    return None


def _unify_columns(
    types: dict[str, pa.DataType],
    where: dict[str, str],
    found: Iterable[tuple[str, pa.DataType]],
    uri: str,
    fixed: dict[str, pa.DataType],
    advice: str,
) -> None:
    """Fold the ``(column, type)`` pairs ``found`` in ``uri`` into ``types``.

    ``where`` remembers the file each column was first seen in; a type that cannot be unified
    is an error ending in ``advice``, unless the column's type is ``fixed``. New columns are
    added to ``types`` in the order they are found.
    """
    for name, kind in found:
        if name not in types:
            types[name], where[name] = kind, uri
            continue
        unified = _unify(types[name], kind)
        if unified is None and name not in fixed:
            raise ConveyorError(
                f"Column '{name}' is {types[name]} in {where[name]} but {kind} in {uri}{advice}"
            )
        types[name] = unified or types[name]


def _normalized(t: pa.DataType) -> pa.DataType:
    """Conveyor's canonical form of a file's type: int64, double, string, binary, list."""
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_dictionary(t):
        return _normalized(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return pa.list_(_normalized(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_normalized(f.type)) for f in t])
    return t


def _schema_of(
    names: list[str], types: dict[str, pa.DataType], fixed: dict[str, pa.DataType], mark: bool
) -> pa.Schema:
    """The final schema: ``fixed`` types win; a column with no values anywhere is a string."""
    fields, inferred = [], []
    for name in names:
        if name in fixed:
            fields.append(pa.field(name, fixed[name]))
            continue
        found = types.get(name, pa.null())
        fields.append(pa.field(name, pa.string() if pa.types.is_null(found) else found))
        inferred.append(name)
    metadata = {INFERRED_COLUMNS: json.dumps(inferred).encode()} if mark and inferred else None
    return pa.schema(fields, metadata=metadata)


def _inferred(schema: pa.Schema) -> set[str]:
    raw = (schema.metadata or {}).get(INFERRED_COLUMNS)
    return set(json.loads(raw)) if raw else set()


def _check_fixed(fixed: Any, names: list[str], uri: str) -> None:
    for name in fixed:
        if name not in names:
            raise ConveyorError(
                f"The schema names column '{name}', but {uri} has no such column (it has "
                f"{', '.join(names)}). Fix the schema or the data."
            )


def _same_columns(first: tuple[str, list[str]], other: tuple[str, list[str]]) -> None:
    (uri_a, names_a), (uri_b, names_b) = first, other
    if set(names_a) == set(names_b):
        return
    only_a = [n for n in names_a if n not in names_b]
    only_b = [n for n in names_b if n not in names_a]
    raise ConveyorError(
        f"{uri_b} and {uri_a} have different columns: only in {uri_b}: "
        f"{', '.join(only_b) or '(none)'}; only in {uri_a}: {', '.join(only_a) or '(none)'}. "
        "Every file of one input must have the same columns (in any order)."
    )


def _unique(names: list[str], uri: str) -> list[str]:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise BadInputError(f"{uri} has duplicate column names: {', '.join(sorted(seen))}.")
    return names


# ---------------------------------------------------------------------------- conversion
def _listed(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Scalars as one-element lists (null stays null) when ``target`` is a list type."""
    is_list = pa.types.is_list(target) or pa.types.is_large_list(target)
    if not is_list or pa.types.is_nested(array.type):
        return array
    offsets = pa.array(np.arange(len(array) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, array, mask=array.is_null())


def _cast_finding_failures(array: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Cast, and where that fails, find the failing values by halving (null in the result)."""
    try:
        return array.cast(target), np.zeros(len(array), bool)
    except pa.ArrowNotImplementedError as exc:
        raise ConveyorError(f"Cannot read {array.type} values as {target}: {exc}") from exc
    except (pa.ArrowInvalid, ValueError, OverflowError):
        if len(array) == 1:
            return pa.nulls(1, target), np.ones(1, bool)
    half = len(array) // 2
    left, left_failed = _cast_finding_failures(array.slice(0, half), target)
    right, right_failed = _cast_finding_failures(array.slice(half), target)
    return pa.concat_arrays([left, right]), np.concatenate([left_failed, right_failed])


# ---------------------------------------------------------------------------- reading
def _window(size: int) -> int:
    """Bytes read at once: enough for every core, bounded, and small next to a file of ``size``."""
    want = min(4 * _MiB * pa.cpu_count(), size // 8)
    return int(min(64 * _MiB, max(4 * _MiB, want)))


def _read_full(handle: IO[bytes], size: int) -> bytes:
    buffer = bytearray(size)
    return bytes(buffer[: _read_into(handle, memoryview(buffer))])


def _read_into(handle: IO[bytes], view: memoryview) -> int:
    got = 0
    while got < len(view):
        part = handle.readinto(view[got:])  # type: ignore[attr-defined]
        if not part:
            break
        got += part
    return got
