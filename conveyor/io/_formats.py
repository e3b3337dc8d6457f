"""JSON lines, Parquet, Avro and TFRecord for :mod:`conveyor.io.sources`.

JSON lines are sampled and typed like CSV; Parquet, Avro and TFRecord bring their own types.
Every reader hands its batches to :func:`_conform`, which makes them exactly the schema.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.io import filesystems as fsx
from conveyor.io.bad_rows import BadInputError, BadRow, BadRows
from conveyor.io.sources import (
    SchemaWidening,
    _cast_finding_failures,
    _check_fixed,
    _inferred,
    _listed,
    _MiB,
    _normalized,
    _read_full,
    _same_columns,
    _schema_of,
    _unify_columns,
    _unique,
    _window,
)


# ---------------------------------------------------------------------------- JSON lines
def _infer_jsonl(uris: list[str], fixed: dict[str, pa.DataType], sample_bytes: int) -> pa.Schema:
    types: dict[str, pa.DataType] = {}
    where: dict[str, str] = {}
    for uri in uris:
        data = _sample_lines(uri, sample_bytes)
        if not data.strip():
            raise BadInputError(f"{uri} is empty: a JSON lines file needs at least one row.")
        reader = _JsonLines(uri, None, BadRows("skip"))
        for table in reader.tables(data, 1):
            found = [(field.name, _json_kind(field.type)) for field in table.schema]
            advice = "; JSON lines cannot mix them in one column. Fix the data."
            _unify_columns(types, where, found, uri, fixed, advice)
    names = list(types)  # in the order the columns were first found
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
    window = _window(fsx.size(uri))
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
        found = [(field.name, _normalized(field.type)) for field in schema]
        _unify_columns(types, where, found, uri, fixed, ". Give a schema that fixes its type.")
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
        records = (_uuids_as_text(record, uuids) for record in reader)
        row = 1
        while rows := list(itertools.islice(records, batch_size)):
            yield _conform(pa.RecordBatch.from_pylist(rows, schema=own), schema, uri, bad_rows, row)
            row += len(rows)


def _uuids_as_text(record: dict, uuids: list[str]) -> dict:
    for name in uuids:
        if record.get(name) is not None:
            record[name] = str(record[name])
    return record


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
