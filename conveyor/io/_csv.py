"""CSV for :mod:`conveyor.io.sources`: schema inference and the fast reader.

A file is read fast first: windows of whole records, each parsed by pyarrow on all cores.
Only when that fails does :mod:`conveyor.io._csv_careful` read the file again, from the
window that failed.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from conveyor.io import filesystems as fsx
from conveyor.io.bad_rows import BadInputError, BadRows
from conveyor.io.prefetch import prefetch
from conveyor.io.sources import (
    _check_fixed,
    _listed,
    _MiB,
    _read_into,
    _same_columns,
    _schema_of,
    _unique,
    _widest,
    _window,
)
from conveyor.types import ConveyorError

# Named for the public module: these messages come from reading through ``sources``.
logger = logging.getLogger("conveyor.io.sources")


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


# ---------------------------------------------------------------------------- read
@dataclass(frozen=True)
class _CsvFile:
    uri: str
    names: list[str]
    header_lines: int
    size: int

    @property
    def window(self) -> int:
        return _window(self.size)


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
    fast = _FastCsv(file, schema, batch_size)
    try:
        for batch in fast.batches():
            yield from _slices(_as_schema(batch, schema), batch_size)
    except (pa.ArrowInvalid, _NeedsCare) as exc:
        # Imported only here: it builds on this module, and most files never need it.
        from conveyor.io._csv_careful import _CarefulCsv, _line_at

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
    """The common case: windows of whole records, each parsed by ``read_csv`` on all cores
    while a thread reads and cuts the next window.

    A window is cut at its last newline and kept if each of its lines parsed as one record.
    Once a quoted value spans lines, windows are cut at the last newline outside quotes,
    followed by parity, which matches pyarrow's parse when the quoting is regular (a quote
    opens a field or closes one, or is doubled inside it); on anything else the rest of the
    file goes through pyarrow's streaming reader. ``offset`` and ``delivered`` say where a
    careful read must resume: the window (or stream) that failed starts at ``offset``, and
    ``delivered`` of its rows went out already.
    """

    def __init__(self, file: _CsvFile, schema: pa.Schema, batch_size: int) -> None:
        self.file, self.schema, self.batch_size = file, schema, batch_size
        # Blocks that share a window among the cores: fewer and larger than pyarrow's 1 MiB,
        # so a window's rows come out in batches large enough to split and write as they are.
        self.block_size = max(_MiB, file.window // pa.cpu_count())
        self.offset, self.delivered, self.rows = 0, 0, 0
        self.types = {f.name: _csv_read_type(f) for f in schema}

    def batches(self) -> Iterator[pa.RecordBatch]:
        with fsx.open_file(self.file.uri, "rb") as handle:
            # A thread reads, cuts and parses the next window while this one's batches are
            # split and written.
            windows = prefetch(self._parsed(handle), depth=1)
            try:
                for size, parsed in windows:
                    if size is None:
                        windows.close()  # joins the thread: the handle is ours again
                        handle.seek(self.offset)
                        yield from self._streamed(handle)
                        return
                    if isinstance(parsed, pa.ArrowInvalid):
                        raise parsed
                    for batch in self._batches(parsed):
                        yield self._delivering(batch)
                    self.offset += size
                    self.delivered = 0
            finally:
                windows.close()

    def _parsed(
        self, handle: IO[bytes]
    ) -> Iterator[tuple[int | None, pa.Table | pa.ArrowInvalid | None]]:
        """Each window's size and its parsed table (or the error that stops the fast read);
        ``(None, None)`` where it is unsure where records end, and nothing after.

        A window is first cut at its last newline and parsed as if no quoted value spanned
        lines, which needs no look at its quotes. The parse is kept if it holds one row per
        line and its last row does not run past the cut; otherwise that window and the rest
        of the file are cut by quote parity (:func:`_cut`).
        """
        leftover, first, by_parity = b"", True, False
        while True:
            buffer = bytearray(self.file.window)  # fresh each time: the table may point into it
            buffer[: len(leftover)] = leftover
            size = len(leftover) + _read_into(handle, memoryview(buffer)[len(leftover) :])
            if not size:
                return
            eof = size < self.file.window
            parsed = None if by_parity else self._by_lines(buffer, size, eof, first)
            if parsed is None:
                by_parity = True
                cut = _cut(buffer, size, eof)
                if cut is None:
                    yield None, None
                    return
                end, quoted = cut
                parsed = end, self._parse(memoryview(buffer)[:end], quoted, first)
            end, table = parsed
            del parsed  # held no longer than the consumer needs it
            yield end, table
            if isinstance(table, pa.ArrowInvalid):
                return
            del table
            first, leftover = False, bytes(buffer[end:size])
            if eof and not leftover:
                return

    def _by_lines(
        self, buffer: bytearray, size: int, eof: bool, first: bool
    ) -> tuple[int, pa.Table | pa.ArrowInvalid] | None:
        """The window up to its last newline, parsed, if each line in it is one record."""
        end = _lines_end(buffer, size, eof)
        if not end:
            return None
        table = self._parse(memoryview(buffer)[:end], False, first)
        if buffer.find(b'"', 0, end) < 0:  # memchr: without quotes, a line is a record
            return end, table
        if isinstance(table, pa.ArrowInvalid):
            return None  # perhaps a quoted newline where pyarrow split the window
        data = np.frombuffer(buffer, np.uint8, count=end)
        lines = int(np.count_nonzero(data == ord("\n"))) + int(data[-1] != ord("\n"))
        records = lines - (self.file.header_lines if first else 0)
        if table.num_rows != records or (records and _spans_lines(table, records - 1)):
            return None  # a quoted newline, a blank line or a record cut short at the end
        return end, table

    def _parse(self, data: memoryview, quoted: bool, first: bool) -> pa.Table | pa.ArrowInvalid:
        try:
            return pcsv.read_csv(
                pa.BufferReader(pa.py_buffer(data)),
                read_options=pcsv.ReadOptions(
                    block_size=self.block_size, column_names=None if first else self.file.names
                ),
                parse_options=pcsv.ParseOptions(newlines_in_values=quoted),
                convert_options=_convert_options(self.types, self.schema.names),
            )
        except pa.ArrowInvalid as exc:
            return exc

    def _batches(self, table: pa.Table) -> list[pa.RecordBatch]:
        """A window's rows as batches: its blocks, or one batch if blocks are small."""
        if table.num_rows < table.column(0).num_chunks * self.batch_size // 8:
            table = table.combine_chunks()  # a copy, but small batches cost more downstream
        return table.to_batches()

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
                yield self._delivering(held)
            held = batch
        if held is None or held.num_rows == 0:
            return
        if _spans_lines(held, held.num_rows - 1):  # a last record may hide an open quote
            raise _NeedsCare("the last record spans lines")
        yield self._delivering(held)

    def _delivering(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        self.delivered += batch.num_rows
        self.rows += batch.num_rows
        return batch


def _lines_end(buffer: bytearray, size: int, eof: bool) -> int:
    """Where the window's last whole line ends (0: no newline in it)."""
    return size if eof else buffer.rfind(b"\n", 0, size) + 1


def _cut(buffer: bytearray, size: int, eof: bool) -> tuple[int, bool] | None:
    """Where the window's last whole record ends and whether a quoted value in it spans
    lines; None if unsure."""
    if buffer.find(b'"', 0, size) < 0:  # memchr: the common case costs next to nothing
        end = _lines_end(buffer, size, eof)
        return (end, False) if end else None
    arr = np.frombuffer(buffer, np.uint8, count=size)
    quotes = np.flatnonzero(arr == ord('"'))
    newlines = np.flatnonzero(arr == ord("\n"))
    inside = np.searchsorted(quotes, newlines) % 2 == 1  # newlines within quoted values
    if eof:
        end = size
        if len(quotes) % 2:
            raise _NeedsCare("the file ends inside a quoted value")
    else:
        outside = newlines[~inside]
        if not len(outside):
            return None
        end = int(outside[-1]) + 1
    quotes = quotes[quotes < end]
    # Without a newline inside quotes, pyarrow may split the window at any line: faster.
    multiline = bool(inside[newlines < end].any())
    return (end, multiline) if _regular_quotes(arr[:end], quotes) else None


_EDGES = np.zeros(256, bool)
_EDGES[[ord(","), ord("\n"), ord("\r"), ord('"')]] = True


def _regular_quotes(arr: np.ndarray, quotes: np.ndarray) -> bool:
    """Every opening quote starts a field and every closing one ends it (or is doubled)."""
    opening, closing = quotes[0::2], quotes[1::2]
    if len(opening) and opening[0] == 0:
        opening = opening[1:]  # the window starts a field
    if len(closing) and closing[-1] + 1 == len(arr):
        closing = closing[:-1]  # the window ends one
    return bool(_EDGES[arr[opening - 1]].all() and _EDGES[arr[closing + 1]].all())


def _spans_lines(batch: pa.RecordBatch | pa.Table, row: int) -> bool:
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
