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

import csv
import functools
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from conveyor.io import filesystems as fsx
from conveyor.io.bad_rows import BadInputError, BadRow, BadRows
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

logger = logging.getLogger(__name__)

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
_INT = rb"[ \t]*-?(?:[0-9]+|0[xX][0-9a-fA-F]+)[ \t]*"
_FLOAT = (
    rb"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
    rb"|(?i:inf|infinity|nan))[ \t]*"
)
_UTF8 = (
    rb"(?:[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}"
    rb"|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*"
)


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
    if a == b or pa.types.is_null(b):
        return a
    if pa.types.is_null(a):
        return b
    if {a, b} == {pa.int64(), pa.float64()}:
        return pa.float64()
    return pa.string()


def _unify(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """One type for values typed ``a`` in one file and ``b`` in another, or None if none fits."""
    if a == b or pa.types.is_null(b):
        return a
    if pa.types.is_null(a):
        return b
    if {a, b} == {pa.int64(), pa.float64()}:
        return pa.float64()
    if pa.types.is_list(a) and pa.types.is_list(b):
        value = _unify(a.value_type, b.value_type)
        return pa.list_(value) if value is not None else None
    return None


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


# ---------------------------------------------------------------------------- CSV: infer
@functools.cache
def _markers() -> tuple[frozenset[bytes], frozenset[bytes], frozenset[bytes]]:
    """pyarrow's default null, true and false values (the careful path must agree)."""
    defaults = pcsv.ConvertOptions()
    return tuple(  # type: ignore[return-value]
        frozenset(v.encode() for v in values)
        for values in (defaults.null_values, defaults.true_values, defaults.false_values)
    )


def _convert_options(
    column_types: dict[str, pa.DataType] | None = None, include: list[str] | None = None
) -> pcsv.ConvertOptions:
    return pcsv.ConvertOptions(
        column_types=column_types or {}, include_columns=include or [], strings_can_be_null=False
    )


def _infer_csv(uris: list[str], fixed: dict[str, pa.DataType], sample_bytes: int) -> pa.Schema:
    first: tuple[str, list[str]] | None = None
    types: dict[str, pa.DataType] = {}
    for uri in uris:
        names, sample = _csv_sample(uri, sample_bytes)
        if first is None:
            first = (uri, names)
        _same_columns(first, (uri, names))
        for name, kind in sample.items():
            types[name] = _widest(types.get(name, pa.null()), kind)
    assert first is not None
    _check_fixed(fixed, first[1], first[0])
    return _schema_of(first[1], types, fixed, mark=True)


def _csv_sample(uri: str, sample_bytes: int) -> tuple[list[str], dict[str, pa.DataType]]:
    with fsx.open_file(uri, "rb") as handle:
        data = handle.read(sample_bytes + 1)
    if not data.strip():
        raise BadInputError(f"{uri} is empty: a CSV file needs a header line and rows.")
    truncated = len(data) > sample_bytes
    if truncated:
        end = data.rfind(b"\n", 0, sample_bytes)
        data = data[: end + 1] if end > 0 else data[:sample_bytes]
    skipped = []  # malformed rows are reported when the file is read, not here

    def skip(row: Any) -> str:
        skipped.append(row.number)
        return "skip"

    try:
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(block_size=len(data) + 1),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip),
            convert_options=_convert_options(),
        )
    except pa.ArrowInvalid as exc:
        raise BadInputError(f"Cannot read the header and first rows of {uri}: {exc}") from exc
    names = _unique(table.column_names, uri)
    if table.num_rows == 0 and not truncated and not skipped:
        raise BadInputError(f"{uri} has a header but no rows. Remove the file or add its rows.")
    return names, {name: _csv_kind(table.column(name).type) for name in names}


def _csv_kind(t: pa.DataType) -> pa.DataType:
    if pa.types.is_null(t) or pa.types.is_boolean(t):
        return t
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    return pa.string()  # text, undecodable bytes (bad rows later), dates and times as written


# ---------------------------------------------------------------------------- CSV: read
@dataclass(frozen=True)
class _CsvFile:
    uri: str
    names: list[str]
    header_lines: int
    size: int

    @property
    def window(self) -> int:
        """Bytes read at once: enough for every core, bounded, and small next to the file."""
        want = min(4 * _MiB * pa.cpu_count(), self.size // 8)
        return int(min(64 * _MiB, max(4 * _MiB, want)))


def _csv_file(uri: str) -> _CsvFile:
    with fsx.open_file(uri, "rb") as handle:
        head = handle.read(_MiB)
    text = head.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise BadInputError(f"{uri} is empty: a CSV file needs a header line and rows.")
    reader = csv.reader(io.StringIO(text, newline=""))
    names = _unique(next(reader), uri)
    return _CsvFile(uri, names, reader.line_num, fsx.size(uri))


def _csv_read_type(field: pa.Field) -> pa.DataType:
    t = field.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        t = t.value_type
    if pa.types.is_nested(t):
        raise ConveyorError(
            f"Column '{field.name}' is typed {field.type}, which CSV cannot hold; give it a "
            "scalar type or a list of scalars."
        )
    return t


def _read_csv(
    uri: str, schema: pa.Schema, bad_rows: BadRows, batch_size: int
) -> Iterator[pa.RecordBatch]:
    file = _csv_file(uri)
    _check_fixed(schema.names, file.names, uri)
    return _csv_batches(file, schema, bad_rows, batch_size)


def _csv_batches(
    file: _CsvFile, schema: pa.Schema, bad_rows: BadRows, batch_size: int
) -> Iterator[pa.RecordBatch]:
    fast = _FastCsv(file, schema)
    try:
        for batch in fast.batches():
            yield from _slices(_as_schema(batch, schema), batch_size)
    except (pa.ArrowInvalid, _NeedsCare) as exc:
        line = _line_at(file.uri, fast.offset)
        logger.info("Reading %s carefully from line %d on: %s", file.uri, line, exc)
        careful = _CarefulCsv(file, schema, bad_rows, skip=fast.delivered)
        yield from careful.batches(fast.offset, line, batch_size)
        return
    if fast.rows == 0:
        raise BadInputError(f"{file.uri} has a header but no rows. Remove the file or add rows.")


class _NeedsCare(Exception):
    """The fast path cannot tell a file is well formed; read it carefully."""


class _FastCsv:
    """The common case: windows of whole records, each parsed by ``read_csv`` on all cores.

    A window is cut at the last newline outside quotes. Quotes are followed by parity,
    which matches pyarrow's parse when the quoting is regular (a quote opens a field or
    closes one, or is doubled inside it); on anything else the rest of the file goes through
    pyarrow's streaming reader. ``offset`` and ``delivered`` say where a careful read must
    resume: the window (or stream) that failed starts at ``offset``, and ``delivered`` of its
    rows went out already.
    """

    def __init__(self, file: _CsvFile, schema: pa.Schema) -> None:
        self.file, self.schema = file, schema
        self.offset, self.delivered, self.rows = 0, 0, 0
        self.types = {f.name: _csv_read_type(f) for f in schema}

    def batches(self) -> Iterator[pa.RecordBatch]:
        window = self.file.window
        with fsx.open_file(self.file.uri, "rb") as handle:
            leftover = b""
            while True:
                buffer = bytearray(window)  # fresh each time: the parsed table may point into it
                buffer[: len(leftover)] = leftover
                size = len(leftover) + _read_into(handle, memoryview(buffer)[len(leftover) :])
                if not size:
                    return
                eof = size < window
                cut = _cut(buffer, size, eof)
                if cut is None:
                    handle.seek(self.offset)
                    yield from self._streamed(handle)
                    return
                end, quoted = cut
                yield from self._window(memoryview(buffer)[:end], quoted)
                self.offset += end
                self.delivered = 0
                leftover = bytes(buffer[end:size])
                if eof and not leftover:
                    return

    def _window(self, data: memoryview, quoted: bool) -> Iterator[pa.RecordBatch]:
        table = pcsv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=pcsv.ReadOptions(
                block_size=_MiB, column_names=self.file.names if self.offset else None
            ),
            parse_options=pcsv.ParseOptions(newlines_in_values=quoted),
            convert_options=_convert_options(self.types, self.schema.names),
        )
        for batch in table.combine_chunks().to_batches():
            self.delivered += batch.num_rows
            self.rows += batch.num_rows
            yield batch

    def _streamed(self, handle: IO[bytes]) -> Iterator[pa.RecordBatch]:
        """pyarrow's streaming reader from ``offset`` on; the last batch waits for a check."""
        read_options = pcsv.ReadOptions(
            block_size=self.file.window, column_names=self.file.names if self.offset else None
        )
        parse_options = pcsv.ParseOptions(newlines_in_values=True)
        convert_options = _convert_options(self.types, self.schema.names)

        def open_reader(source: _Throttle) -> Any:
            return pcsv.open_csv(source, read_options, parse_options, convert_options)

        held = None
        for batch in _Throttle(handle).batches(open_reader):
            if held is not None:
                self.delivered += held.num_rows
                self.rows += held.num_rows
                yield held
            held = batch
        if held is None or held.num_rows == 0:
            return
        if _spans_lines(held, held.num_rows - 1):  # a last record may hide an open quote
            raise _NeedsCare("the last record spans lines")
        self.delivered += held.num_rows
        self.rows += held.num_rows
        yield held


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


def _cut(buffer: bytearray, size: int, eof: bool) -> tuple[int, bool] | None:
    """Where the window's last whole record ends and whether it has quotes; None if unsure."""
    if buffer.find(b'"', 0, size) < 0:  # memchr: the common case costs next to nothing
        end = size if eof else buffer.rfind(b"\n", 0, size) + 1
        return (end, False) if end else None
    arr = np.frombuffer(buffer, np.uint8, count=size)
    quotes = np.flatnonzero(arr == ord('"'))
    if eof:
        end = size
        if len(quotes) % 2:
            raise _NeedsCare("the file ends inside a quoted value")
    else:
        newlines = np.flatnonzero(arr == ord("\n"))
        outside = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
        if not len(outside):
            return None
        end = int(outside[-1]) + 1
    quotes = quotes[quotes < end]
    return (end, True) if _regular_quotes(arr[:end], quotes) else None


def _regular_quotes(arr: np.ndarray, quotes: np.ndarray) -> bool:
    """Every opening quote starts a field and every closing one ends it (or is doubled)."""
    edges = np.array([ord(","), ord("\n"), ord("\r"), ord('"')], np.uint8)
    before = np.full(len(quotes), ord("\n"), np.uint8)
    before[quotes > 0] = arr[quotes[quotes > 0] - 1]
    after = np.full(len(quotes), ord("\n"), np.uint8)
    inside = quotes + 1 < len(arr)
    after[inside] = arr[quotes[inside] + 1]
    opening = np.arange(len(quotes)) % 2 == 0
    return bool(np.where(opening, np.isin(before, edges), np.isin(after, edges)).all())


def _spans_lines(batch: pa.RecordBatch, row: int) -> bool:
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_binary(column.type):
            value = column[row].as_py()
            if value is not None and (b"\n" if isinstance(value, bytes) else "\n") in value:
                return True
    return False


def _as_schema(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = [_as_type(batch.column(f.name), f.type) for f in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _as_type(array: pa.Array, target: pa.DataType) -> pa.Array:
    """``array`` as ``target``, a scalar read for a list column becoming a one-element list."""
    return array if array.type == target else _listed(array, target).cast(target)


def _listed(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Scalars as one-element lists (null stays null) when ``target`` is a list type."""
    is_list = pa.types.is_list(target) or pa.types.is_large_list(target)
    if not is_list or pa.types.is_nested(array.type):
        return array
    offsets = pa.array(np.arange(len(array) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, array, mask=array.is_null())


def _slices(batch: pa.RecordBatch, batch_size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, batch_size):
        yield batch.slice(start, batch_size)


class _Throttle(io.RawIOBase):
    """A file that keeps pyarrow's streaming CSV reader a couple of blocks ahead, not 32.

    The reader prefetches up to 32 blocks on a background thread, so a slow consumer would
    otherwise hold much of a large file in memory. ``read`` waits for a permit, one per batch
    handed out; once the consumer itself has waited a while, reads go on regardless, so the
    two never deadlock.
    """

    def __init__(self, raw: IO[bytes], ahead: int = 2) -> None:
        super().__init__()
        self._raw = raw
        self._permits = threading.Semaphore(ahead)
        self._waiting_since: float | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._done and not self._permits.acquire(timeout=0.05):
            since = self._waiting_since
            if since is not None and time.monotonic() - since > 0.5:
                break
        return b"" if self._done else self._raw.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def batches(self, open_reader: Callable[[_Throttle], Any]) -> Iterator[pa.RecordBatch]:
        """Batches of ``open_reader(self)``; opening reads blocks too, so it counts as waiting."""
        try:
            self._waiting_since = time.monotonic()
            try:
                reader = open_reader(self)
            finally:
                self._waiting_since = None
            while True:
                self._waiting_since = time.monotonic()
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                finally:
                    self._waiting_since = None
                self._permits.release()
                yield batch
        finally:
            self._done = True


# ---------------------------------------------------------------------------- CSV: careful
class _Lines:
    """Physical line numbers of parsed records (pyarrow counts records, not lines)."""

    def __init__(self, line: int, record: int) -> None:
        self.line, self.record = line, record

    def walk(self, newlines: np.ndarray, pending: list[tuple]) -> tuple[np.ndarray, list[tuple]]:
        """Start lines of a batch's rows, and ``(line, *invalid)`` for invalid rows among them.

        ``newlines`` counts the line breaks inside each row's values; ``pending`` holds the
        rows pyarrow rejected so far as ``(record number, text, expected, actual)``.
        """
        starts = np.empty(len(newlines), np.int64)
        found, done, at = [], 0, 0
        pending.sort(key=lambda row: row[0])
        for invalid in pending:
            between = max(invalid[0] - self.record, 0)
            if at + between > len(newlines):
                break
            self._advance(newlines, starts, at, at + between)
            at += between
            found.append((self.line, *invalid))
            self.line += 1 + invalid[1].count("\n")
            self.record += 1
            done += 1
        del pending[:done]
        self._advance(newlines, starts, at, len(newlines))
        return starts, found

    def _advance(self, newlines: np.ndarray, starts: np.ndarray, a: int, b: int) -> None:
        if b <= a:
            return
        steps = 1 + newlines[a:b]
        starts[a:b] = self.line + np.concatenate(([0], np.cumsum(steps[:-1])))
        self.line += int(steps.sum())
        self.record += b - a


class _CarefulCsv:
    """Reads a CSV file whose fast read failed, row by row in effect, but vectorised.

    Every column is read as raw bytes (so nothing fails in pyarrow but the record structure),
    rows pyarrow rejects are collected by the invalid-row handler, and each column is then
    checked and converted on its own. A quoted value that never closes is reported on the
    line it opens, and reading goes on from the next line.
    """

    def __init__(self, file: _CsvFile, schema: pa.Schema, bad_rows: BadRows, skip: int) -> None:
        self.file, self.schema, self.bad_rows, self.skip = file, schema, bad_rows, skip
        self.inferred = _inferred(schema)
        self._blank: np.ndarray | None = None
        self._restart: int | None = None

    def batches(self, offset: int, line: int, batch_size: int) -> Iterator[pa.RecordBatch]:
        restart: int | None = line
        while restart is not None:
            start = _offset_of_line(self.file.uri, restart, offset, line)
            if start is None or start >= self.file.size:
                return
            offset, line = start, restart
            restart = yield from self._segment(offset, line, batch_size)

    def _segment(
        self, offset: int, line: int, batch_size: int
    ) -> Generator[pa.RecordBatch, None, int | None]:
        """Read from ``offset`` (which starts ``line``); return the line to go on from, if any."""
        pending: list[tuple] = []

        def on_invalid(row: Any) -> str:
            pending.append((row.number, row.text, row.expected_columns, row.actual_columns))
            return "skip"

        header = offset == 0
        lines = _Lines(line + self.file.header_lines if header else line, 2 if header else 1)
        read_options = pcsv.ReadOptions(
            use_threads=False,
            block_size=self.file.window,
            column_names=None if header else self.file.names,
        )
        parse_options = pcsv.ParseOptions(
            newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_invalid
        )
        raw_types = {name: pa.binary() for name in self.file.names}
        self._restart = None
        held = None
        with fsx.open_file(self.file.uri, "rb") as handle:
            handle.seek(offset)

            def open_reader(source: _Throttle) -> Any:
                options = _convert_options(raw_types)
                return pcsv.open_csv(source, read_options, parse_options, options)

            try:
                for batch in _Throttle(handle).batches(open_reader):
                    if held is not None:
                        yield from _slices(self._process(held, lines, pending, False), batch_size)
                    held = batch
            except pa.ArrowInvalid as exc:
                if "straddl" not in str(exc):
                    raise BadInputError(f"Cannot read {self.file.uri}: {exc}") from exc
                if held is not None:
                    yield from _slices(self._process(held, lines, pending, False), batch_size)
                self._report(self._invalid_rows(lines.walk(np.zeros(0, np.int64), pending)[1]))
                self._report([self._open_quote(lines.line, too_long=True)])
                return lines.line + 1
        if held is None:
            held = pa.RecordBatch.from_arrays(
                [pa.array([], pa.binary())] * len(self.file.names), names=self.file.names
            )
        yield from _slices(self._process(held, lines, pending, True), batch_size)
        return self._restart

    def _process(
        self, batch: pa.RecordBatch, lines: _Lines, pending: list[tuple], final: bool
    ) -> pa.RecordBatch:
        """Report this batch's bad rows and return its good rows as the schema.

        Sets ``_restart`` when a quote never closes: reading goes on from the next line.
        """
        newlines = _newline_counts(batch)
        starts, invalid = lines.walk(newlines, pending)
        bad = self._invalid_rows(invalid)
        for row in bad:
            if row.reason.startswith("unterminated") and self._restart is None:
                self._restart = (row.line or 0) + 1
        keep = np.ones(batch.num_rows, bool)
        self._drop_blank_lines(batch, newlines, starts, keep)
        if self.skip:  # rows the fast path already delivered
            first = np.flatnonzero(keep)[: self.skip]
            keep[first] = False
            self.skip -= len(first)
        last = batch.num_rows - 1
        last_spans = final and last >= 0 and newlines[last] > 0
        if last_spans and self._last_is_open(int(starts[last]), bad):
            keep[last] = False
            bad.append(self._open_quote(int(starts[last])))
            self._restart = int(starts[last]) + 1
        rows = np.flatnonzero(keep)
        raw = batch.select(self.schema.names)
        raw = raw if len(rows) == batch.num_rows else raw.take(pa.array(rows))
        columns, failed, reasons = self._convert(raw, starts[rows], bad)
        value_bad = [  # with the whole row as written, not just the schema's columns
            BadRow(self.file.uri, int(starts[rows[i]]), why, _row_text(batch, int(rows[i])))
            for i, why in reasons
        ]
        self._report(bad + value_bad)
        out = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        return out.filter(pa.array(~failed)) if failed.any() else out

    def _invalid_rows(self, invalid: list[tuple]) -> list[BadRow]:
        rows = []
        for line, _, text, expected, actual in invalid:
            if _ends_inside_quotes(text):
                rows.append(self._open_quote(line, text=text))
                continue
            reason = f"wrong number of fields: expected {expected}, found {actual}"
            if "\n" in text:
                reason += f" (the row runs to line {line + text.count(chr(10))}: a stray quote?)"
            rows.append(BadRow(self.file.uri, line, reason, text))
        return rows

    def _open_quote(self, line: int, text: str | None = None, too_long: bool = False) -> BadRow:
        reason = (
            f"unterminated quote: a quoted value that starts on this line runs on past "
            f"{self.file.window} bytes"
            if too_long
            else "unterminated quote: a quoted value that starts on this line never ends"
        )
        first = text.split("\n", 1)[0] if text is not None else self._line_text(line)
        return BadRow(self.file.uri, line, reason, first)

    def _drop_blank_lines(
        self, batch: pa.RecordBatch, newlines: np.ndarray, starts: np.ndarray, keep: np.ndarray
    ) -> None:
        """Blank lines parse as all-empty rows here; the fast path skips them, so skip them."""
        empty = newlines == 0
        for column in batch.columns:
            empty &= pc.binary_length(column).to_numpy(zero_copy_only=False) == 0
        if empty.any():
            if self._blank is None:
                self._blank = _blank_lines(self.file.uri)
            keep &= ~(empty & np.isin(starts, self._blank))

    def _convert(
        self, raw: pa.RecordBatch, starts: np.ndarray, earlier: list[BadRow]
    ) -> tuple[list[pa.Array], np.ndarray, list[tuple[int, str]]]:
        """The schema's columns, which rows failed, and ``(row, reason)`` for each of them."""
        failed = np.zeros(raw.num_rows, bool)
        reasons: dict[int, list[str]] = {}
        columns = []
        for field in self.schema:
            values = raw.column(field.name)
            array, bad, describe = _convert_column(values, field)
            if bad.any():
                where = np.flatnonzero(bad)
                if field.name in self.inferred:
                    self._maybe_widen(field, values, where, starts, earlier)
                for i in where:
                    reasons.setdefault(int(i), []).append(describe(values[int(i)].as_py()))
                failed |= bad
            columns.append(array)
        return columns, failed, [(i, "; ".join(why)) for i, why in sorted(reasons.items())]

    def _maybe_widen(
        self,
        field: pa.Field,
        values: pa.Array,
        where: np.ndarray,
        starts: np.ndarray,
        earlier: list[BadRow],
    ) -> None:
        """Raise SchemaWidening when every failing value fits a wider type than the inferred one."""
        kinds = [_value_kind(values[int(i)].as_py()) for i in where]
        if any(kind is None for kind in kinds) or pa.types.is_nested(field.type):
            return
        new = field.type
        for kind in kinds:
            new = _widest(new, kind)
        if new == field.type:
            return
        line = int(starts[where[0]])
        self._report([row for row in earlier if row.line is not None and row.line < line])
        raise SchemaWidening(
            field.name,
            new,
            old_type=field.type,
            file=self.file.uri,
            line=line,
            value=values[int(where[0])].as_py().decode(),
        )

    def _report(self, rows: list[BadRow]) -> None:
        for row in sorted(rows, key=lambda r: r.line or 0):
            self.bad_rows.add(row)

    def _last_is_open(self, line: int, bad: list[BadRow]) -> bool:
        """Whether the record starting on ``line``, the file's last, ends inside quotes."""
        if any(row.line is not None and row.line > line for row in bad):
            return False  # a rejected row comes after it
        offset = _offset_of_line(self.file.uri, line, 0, 1)
        if offset is None:
            return False
        with fsx.open_file(self.file.uri, "rb") as handle:
            handle.seek(offset)
            tail = handle.read(2 * self.file.window + 1)
        return _ends_inside_quotes(tail.decode("utf-8", errors="replace"))

    def _line_text(self, line: int) -> str:
        offset = _offset_of_line(self.file.uri, line, 0, 1)
        if offset is None:
            return ""
        with fsx.open_file(self.file.uri, "rb") as handle:
            handle.seek(offset)
            text = handle.read(4096).split(b"\n", 1)[0]
        return text.decode("utf-8", errors="replace").rstrip("\r")


def _convert_column(
    values: pa.Array, field: pa.Field
) -> tuple[pa.Array, np.ndarray, Callable[[bytes], str]]:
    """Raw CSV bytes as ``field``'s type: the array, which rows failed, and how to say why."""
    base = _csv_read_type(field)
    what = f"invalid {base} value"
    if pa.types.is_string(base) or pa.types.is_large_string(base):
        array, bad = _as_text(values, base)
        what = "invalid UTF-8"
    elif pa.types.is_binary(base) or pa.types.is_large_binary(base):
        array, bad = values.cast(base), np.zeros(len(values), bool)
    elif pa.types.is_boolean(base):
        array, bad = _as_bool(values)
    else:
        array, bad = _as_value(values, base)

    def describe(value: bytes) -> str:
        return f"{what}: column '{field.name}' has {_show(value)}"

    return _as_type(array, field.type), bad, describe


def _as_text(values: pa.Array, base: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    try:
        return values.cast(base), np.zeros(len(values), bool)
    except pa.ArrowInvalid:
        ok = pc.match_substring_regex(values, _regex(_UTF8))
        return pc.if_else(ok, values, pa.scalar(None, pa.binary())).cast(base), ~_numpy(ok)


def _as_bool(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    nulls, trues, falses = _marker_arrays()
    is_true, is_false = pc.is_in(values, trues), pc.is_in(values, falses)
    array = pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))
    return array, ~_numpy(pc.or_(pc.or_(is_true, is_false), pc.is_in(values, nulls)))


def _as_value(values: pa.Array, base: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Numbers and other scalars: null markers are null, the rest must parse as ``base``.

    Like pyarrow's CSV converter, spaces and tabs around a number are fine. A plain cast
    settles a clean column; only a column that fails is searched for its bad values.
    """
    null = pc.is_in(values, _marker_arrays()[0])
    numeric = pa.types.is_integer(base) or pa.types.is_floating(base)
    try:
        text = pc.if_else(null, pa.scalar(None, pa.binary()), values).cast(pa.string())
        array = (pc.utf8_trim(text, " \t") if numeric else text).cast(base)
        return array, np.zeros(len(values), bool)
    except pa.ArrowInvalid:
        pass
    is_null = _numpy(null)
    pattern = _INT if pa.types.is_integer(base) else _FLOAT if numeric else None
    shaped = _numpy(pc.match_substring_regex(values, _regex(pattern))) if pattern else ~is_null
    text = pc.if_else(pa.array(shaped & ~is_null), values, pa.scalar(None, pa.binary()))
    text = text.cast(pa.string(), safe=pattern is not None)  # shaped numbers are ASCII
    array, failed = _cast_finding_failures(pc.utf8_trim(text, " \t") if pattern else text, base)
    return array, ~(shaped | is_null) | failed


@functools.cache
def _marker_arrays() -> tuple[pa.Array, pa.Array, pa.Array]:
    return tuple(pa.array(sorted(m), pa.binary()) for m in _markers())  # type: ignore[return-value]


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


@functools.cache
def _regex(pattern: bytes) -> str:
    # Regexes over binary arrays match bytes (Latin-1), so a byte pattern is spelled as Latin-1.
    return "^" + pattern.decode("latin-1") + "$"


@functools.cache
def _python_regex(pattern: bytes) -> re.Pattern[bytes]:
    return re.compile(pattern)


def _value_kind(value: bytes) -> pa.DataType | None:
    """The narrowest CSV type holding ``value``; None for bytes that are not UTF-8."""
    nulls, trues, falses = _markers()
    if value in nulls:
        return pa.null()
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _python_regex(_INT).fullmatch(value):
        return pa.int64()
    if _python_regex(_FLOAT).fullmatch(value):
        return pa.float64()
    if value in trues or value in falses:
        return pa.bool_()
    return pa.string()


def _numpy(mask: pa.Array) -> np.ndarray:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _show(value: bytes) -> str:
    short = value if len(value) <= 60 else value[:57] + b"..."
    try:
        return repr(short.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(short)


def _row_text(raw: pa.RecordBatch, row: int) -> str:
    values = [raw.column(i)[row].as_py() or b"" for i in range(raw.num_columns)]
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(
        v.decode("utf-8", errors="backslashreplace") for v in values
    )
    return out.getvalue()


def _newline_counts(batch: pa.RecordBatch) -> np.ndarray:
    counts = np.zeros(batch.num_rows, np.int64)
    for column in batch.columns:
        data = column.buffers()[2] if pa.types.is_binary(column.type) else None
        if data is not None and b"\n" not in data.to_pybytes():
            continue  # the usual case, at memchr speed
        counts += pc.count_substring(column, "\n").to_numpy(zero_copy_only=False)
    return counts


def _ends_inside_quotes(text: str) -> bool:
    """Whether CSV ``text`` ends inside a quoted value (pyarrow's rules: quotes open fields)."""
    at, inside = 0, False
    opening = re.compile(r'(?:^|(?<=[,\n\r]))"')
    while True:
        if not inside:
            found = opening.search(text, at)
            if found is None:
                return False
            inside, at = True, found.end()
            continue
        end = text.find('"', at)
        while end != -1 and text.startswith('""', end):
            end = text.find('"', end + 2)
        if end == -1:
            return True
        inside, at = False, end + 1


def _offset_of_line(uri: str, line: int, offset: int, at_line: int) -> int | None:
    """The byte offset where physical ``line`` starts, scanning from ``offset`` (``at_line``)."""
    if line <= at_line:
        return offset
    with fsx.open_file(uri, "rb") as handle:
        handle.seek(offset)
        while True:
            chunk = handle.read(16 * _MiB)
            if not chunk:
                return None
            need = line - at_line
            count = chunk.count(b"\n")
            if count >= need:
                found = np.flatnonzero(np.frombuffer(chunk, np.uint8) == ord("\n"))
                return offset + int(found[need - 1]) + 1
            at_line += count
            offset += len(chunk)


def _line_at(uri: str, offset: int) -> int:
    """The physical line that starts at byte ``offset``."""
    line = 1
    with fsx.open_file(uri, "rb") as handle:
        while offset > 0 and (chunk := handle.read(min(offset, 16 * _MiB))):
            line += chunk.count(b"\n")
            offset -= len(chunk)
    return line


def _blank_lines(uri: str) -> np.ndarray:
    """Numbers of the physically empty lines of a file (``\\r`` alone counts as empty)."""
    found, line, carried, carried_cr = [], 1, 0, False
    with fsx.open_file(uri, "rb") as handle:
        while chunk := handle.read(16 * _MiB):
            arr = np.frombuffer(chunk, np.uint8)
            ends = np.flatnonzero(arr == ord("\n"))
            if len(ends):
                begins = np.concatenate(([0], ends[:-1] + 1))
                lengths = ends - begins
                lengths[0] += carried
                first = np.where(begins < len(arr), arr[np.minimum(begins, len(arr) - 1)], 0)
                only_cr = (lengths == 1) & (first == ord("\r"))
                if carried:
                    only_cr[0] = carried == 1 and carried_cr and ends[0] == 0
                blank = np.flatnonzero((lengths == 0) | only_cr)
                found.append(line + blank)
                line += len(ends)
                tail = chunk[ends[-1] + 1 :]
                carried, carried_cr = len(tail), tail == b"\r"
            else:
                carried_cr = carried == 0 and chunk == b"\r"
                carried += len(chunk)
    return np.concatenate(found) if found else np.zeros(0, np.int64)


# ---------------------------------------------------------------------------- JSON lines
def _infer_jsonl(uris: list[str], fixed: dict[str, pa.DataType], sample_bytes: int) -> pa.Schema:
    names: list[str] = []
    types: dict[str, pa.DataType] = {}
    where: dict[str, str] = {}
    for uri in uris:
        data = _sample_lines(uri, sample_bytes)
        if not data.strip():
            raise BadInputError(f"{uri} is empty: a JSON lines file needs at least one row.")
        reader = _JsonLines(uri, None, BadRows("skip"))
        for table in reader.tables(data, 1):
            for field in table.schema:
                kind = _json_kind(field.type)
                if field.name not in types:
                    names.append(field.name)
                    types[field.name], where[field.name] = kind, uri
                    continue
                unified = _unify(types[field.name], kind)
                if unified is None and field.name not in fixed:
                    raise ConveyorError(
                        f"Column '{field.name}' is {types[field.name]} in "
                        f"{where[field.name]} but {kind} in {uri}; JSON lines cannot mix them "
                        "in one column. Fix the data."
                    )
                types[field.name] = unified or types[field.name]
    _check_fixed(fixed, names, ", ".join(uris))
    return _schema_of(names, types, fixed, mark=True)


def _json_kind(t: pa.DataType) -> pa.DataType:
    t = _normalized(t)
    return pa.string() if pa.types.is_temporal(t) else t  # dates stay as written


def _sample_lines(uri: str, sample_bytes: int) -> bytes:
    with fsx.open_file(uri, "rb") as handle:
        data = handle.read(sample_bytes + 1)
    if len(data) > sample_bytes:
        data = data[: data.rfind(b"\n", 0, sample_bytes) + 1] or data[:sample_bytes]
    return data


def _read_jsonl(
    uri: str, schema: pa.Schema, bad_rows: BadRows, batch_size: int
) -> Iterator[pa.RecordBatch]:
    reader = _JsonLines(uri, schema, bad_rows)
    line = 1
    for data in _whole_lines(uri):
        for table in reader.tables(data, line):
            for batch in table.to_batches(max_chunksize=batch_size):
                yield _conform(batch, schema, uri, bad_rows, None)
        line += data.count(b"\n")


def _whole_lines(uri: str) -> Iterator[bytes]:
    """The file in windows of whole lines (a window grows to hold a line longer than it)."""
    size = fsx.size(uri)
    window = int(min(64 * _MiB, max(4 * _MiB, min(4 * _MiB * pa.cpu_count(), size // 8))))
    with fsx.open_file(uri, "rb") as handle:
        data = b""
        while True:
            more = _read_full(handle, window)
            data += more
            if len(more) < window:
                if data:
                    yield data
                return
            end = data.rfind(b"\n") + 1
            if end:
                yield data[:end]
                data = data[end:]


class _JsonLines:
    """``read_json`` over whole lines; a chunk that fails is halved until the bad lines show."""

    def __init__(self, uri: str, schema: pa.Schema | None, bad_rows: BadRows) -> None:
        import pyarrow.json as pj

        self.uri, self.schema, self.bad_rows, self._pj = uri, schema, bad_rows, pj
        self.inferred = _inferred(schema) if schema is not None else set()
        self.options = pj.ParseOptions(
            explicit_schema=schema.remove_metadata() if schema is not None else None,
            unexpected_field_behavior="ignore" if schema is not None else "infer",
        )

    def tables(self, data: bytes, line: int) -> list[pa.Table]:
        if not data.strip():
            return []
        try:
            return [self._read(data, _MiB)]
        except pa.ArrowInvalid as exc:
            count = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            if count > 1:
                half = _nth_newline(data, count // 2)
                return self.tables(data[:half], line) + self.tables(data[half:], line + count // 2)
            if data.strip():
                try:
                    return [self._read(data, len(data) + 1)]  # a line longer than a block
                except pa.ArrowInvalid:
                    self._bad_line(data, line, exc)
            return []

    def _read(self, data: bytes, block_size: int) -> pa.Table:
        return self._pj.read_json(
            pa.BufferReader(data),
            read_options=self._pj.ReadOptions(block_size=block_size),
            parse_options=self.options,
        )

    def _bad_line(self, data: bytes, line: int, exc: Exception) -> None:
        text = data.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
        self._maybe_widen(text, line)
        detail = re.sub(r" in row \d+$", "", str(exc)).removeprefix("JSON parse error: ")
        self.bad_rows.add(BadRow(self.uri, line, f"invalid JSON line: {detail}", text))

    def _maybe_widen(self, text: str, line: int) -> None:
        """An inferred int64 column meeting a float widens to double (JSON can do no other)."""
        if self.schema is None:
            return
        try:
            row = json.loads(text)
        except ValueError:
            return
        if not isinstance(row, dict):
            return
        for name in self.inferred:
            value = row.get(name)
            if isinstance(value, float) and self.schema.field(name).type == pa.int64():
                widening = {"old_type": pa.int64(), "file": self.uri, "line": line}
                raise SchemaWidening(name, pa.float64(), value=repr(value), **widening)


def _nth_newline(data: bytes, n: int) -> int:
    found = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
    return int(found[n - 1]) + 1


# ---------------------------------------------------------------------------- Parquet, Avro
def _infer_typed(
    uris: list[str], fixed: dict[str, pa.DataType], described: Callable[[str], pa.Schema]
) -> pa.Schema:
    first: tuple[str, list[str]] | None = None
    types: dict[str, pa.DataType] = {}
    where: dict[str, str] = {}
    for uri in uris:
        schema = described(uri)
        names = _unique(schema.names, uri)
        if first is None:
            first = (uri, names)
        _same_columns(first, (uri, names))
        for field in schema:
            kind = _normalized(field.type)
            if field.name not in types:
                types[field.name], where[field.name] = kind, uri
                continue
            unified = _unify(types[field.name], kind)
            if unified is None and field.name not in fixed:
                raise ConveyorError(
                    f"Column '{field.name}' is {types[field.name]} in {where[field.name]} but "
                    f"{kind} in {uri}. Give a schema that fixes its type."
                )
            types[field.name] = unified or types[field.name]
    assert first is not None
    _check_fixed(fixed, first[1], first[0])
    return _schema_of(first[1], types, fixed, mark=False)


def _conform(
    batch: pa.RecordBatch, schema: pa.Schema, uri: str, bad_rows: BadRows, first_row: int | None
) -> pa.RecordBatch:
    """``batch`` as ``schema``; values that do not convert make their rows bad rows."""
    failed = np.zeros(batch.num_rows, bool)
    reasons: dict[int, list[str]] = {}
    columns = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        array = batch.column(index) if index >= 0 else pa.nulls(batch.num_rows, field.type)
        if array.type != field.type:
            original = array
            array, bad = _cast_finding_failures(_listed(array, field.type), field.type)
            for i in np.flatnonzero(bad):
                value = original[int(i)].as_py()
                reasons.setdefault(int(i), []).append(
                    f"invalid {field.type} value: column '{field.name}' has {value!r}"
                )
            failed |= bad
        columns.append(array)
    out = pa.RecordBatch.from_arrays(columns, schema=schema)
    if not failed.any():
        return out
    for i, why in sorted(reasons.items()):
        line = None if first_row is None else first_row + i
        text = json.dumps(batch.slice(i, 1).to_pylist()[0], default=str)
        bad_rows.add(BadRow(uri, line, "; ".join(why), text))
    return out.filter(pa.array(~failed))


def _parquet_schema(uri: str) -> pa.Schema:
    import pyarrow.parquet as pq

    fs, path = fsx.arrow_filesystem(uri)
    try:
        return pq.read_schema(path, filesystem=fs)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInputError(f"Cannot read {uri} as Parquet: {exc}") from exc


def _read_parquet(
    uri: str, schema: pa.Schema, bad_rows: BadRows, batch_size: int
) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    _check_fixed(schema.names, _parquet_schema(uri).names, uri)
    fs, path = fsx.arrow_filesystem(uri)
    row = 1
    with pq.ParquetFile(path, filesystem=fs) as parquet:
        for batch in parquet.iter_batches(batch_size=batch_size, columns=schema.names):
            out = _conform(batch, schema, uri, bad_rows, row)
            row += batch.num_rows
            if out.num_rows:
                yield out


_AVRO_PRIMITIVES = {
    "null": pa.null(),
    "boolean": pa.bool_(),
    "int": pa.int64(),
    "long": pa.int64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "bytes": pa.binary(),
    "string": pa.string(),
}
_AVRO_LOGICAL = {
    "date": pa.date32(),
    "time-millis": pa.time32("ms"),
    "time-micros": pa.time64("us"),
    "timestamp-millis": pa.timestamp("ms", tz="UTC"),
    "timestamp-micros": pa.timestamp("us", tz="UTC"),
    "local-timestamp-millis": pa.timestamp("ms"),
    "local-timestamp-micros": pa.timestamp("us"),
    "uuid": pa.string(),
}


def _avro_schema_of(uri: str) -> pa.Schema:
    import fastavro

    with fsx.open_file(uri, "rb") as handle:
        try:
            writer_schema = fastavro.reader(handle).writer_schema
        except (ValueError, EOFError) as exc:
            raise BadInputError(f"Cannot read {uri} as Avro: {exc}") from exc
    return _avro_schema(writer_schema, uri)


def _avro_schema(writer_schema: Any, uri: str) -> pa.Schema:
    if not isinstance(writer_schema, dict) or writer_schema.get("type") != "record":
        raise BadInputError(f"{uri} holds Avro values that are not records; cannot read rows.")
    named: dict[str, pa.DataType] = {}
    return pa.schema(
        [
            pa.field(f["name"], _avro_type(f["type"], f["name"], uri, named))
            for f in writer_schema["fields"]
        ]
    )


def _avro_type(node: Any, field: str, uri: str, named: dict[str, pa.DataType]) -> pa.DataType:
    if isinstance(node, list):  # a union: only "null or one type" has a column type
        others = [n for n in node if n != "null"]
        if len(others) == 1:
            return _avro_type(others[0], field, uri, named)
        return _unsupported(field, uri, f"a union of {', '.join(map(str, others))}")
    if isinstance(node, str):
        if node in _AVRO_PRIMITIVES:
            return _AVRO_PRIMITIVES[node]
        if node in named:
            return named[node]
        return _unsupported(field, uri, f"the type {node!r}")
    logical = node.get("logicalType")
    kind = node["type"]
    if logical == "decimal":
        return pa.decimal128(node["precision"], node.get("scale", 0))
    if logical in _AVRO_LOGICAL:
        return _AVRO_LOGICAL[logical]
    if kind == "record":
        fields = [
            pa.field(f["name"], _avro_type(f["type"], field, uri, named)) for f in node["fields"]
        ]
        named[node["name"]] = result = pa.struct(fields)
    elif kind in ("enum", "fixed"):
        named[node["name"]] = result = pa.string() if kind == "enum" else pa.binary()
    elif kind == "array":
        result = pa.list_(_avro_type(node["items"], field, uri, named))
    elif kind == "map":
        result = pa.map_(pa.string(), _avro_type(node["values"], field, uri, named))
    else:
        result = _avro_type(kind, field, uri, named)
    return result


def _unsupported(field: str, uri: str, what: str) -> pa.DataType:
    raise BadInputError(
        f"Field '{field}' of {uri} is {what}, which has no column type. Supported: null unions "
        "of boolean, int, long, float, double, string, bytes, enum, fixed, arrays, maps, "
        "records and the common logical types."
    )


def _read_avro(
    uri: str, schema: pa.Schema, bad_rows: BadRows, batch_size: int
) -> Iterator[pa.RecordBatch]:
    import fastavro

    with fsx.open_file(uri, "rb") as handle:
        reader = fastavro.reader(handle)
        own = _avro_schema(reader.writer_schema, uri)
        _check_fixed(schema.names, own.names, uri)
        uuids = [f["name"] for f in reader.writer_schema["fields"] if _is_uuid(f["type"])]
        rows: list[dict] = []
        row = 1
        for record in reader:
            for name in uuids:
                if record.get(name) is not None:
                    record[name] = str(record[name])
            rows.append(record)
            if len(rows) == batch_size:
                yield _conform(
                    pa.RecordBatch.from_pylist(rows, schema=own), schema, uri, bad_rows, row
                )
                row += len(rows)
                rows = []
        if rows:
            yield _conform(pa.RecordBatch.from_pylist(rows, schema=own), schema, uri, bad_rows, row)


def _is_uuid(node: Any) -> bool:
    if isinstance(node, list):
        return any(_is_uuid(n) for n in node)
    return isinstance(node, dict) and node.get("logicalType") == "uuid"


# ---------------------------------------------------------------------------- TFRecord
def _infer_tfrecord(uris: list[str], fixed: dict[str, pa.DataType]) -> pa.Schema:
    from conveyor.io.example_codec import infer_tfrecord_schema

    found = infer_tfrecord_schema(uris)
    _check_fixed(fixed, found.names, ", ".join(uris))
    return pa.schema([pa.field(f.name, fixed.get(f.name, f.type)) for f in found])


def _read_tfrecord(
    uri: str, schema: pa.Schema, bad_rows: BadRows, batch_size: int
) -> Iterator[pa.RecordBatch]:
    from conveyor.io.example_codec import read_tfrecord_batches

    for batch in read_tfrecord_batches(uri, schema, batch_size=batch_size):
        yield batch if batch.schema.equals(schema) else _conform(batch, schema, uri, bad_rows, None)
