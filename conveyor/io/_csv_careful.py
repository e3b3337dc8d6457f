"""CSV for :mod:`conveyor.io.sources`: the careful reader, for a file whose fast read failed.

Every column is read as raw bytes, bad rows are found column by column with vectorised
checks, and physical line numbers are counted through multi-line quoted values.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from conveyor.io import filesystems as fsx
from conveyor.io._csv import _convert_options, _CsvFile, _slices, _Throttle
from conveyor.io._csv_values import _convert_column, _value_kind
from conveyor.io.bad_rows import BadInputError, BadRow, BadRows
from conveyor.io.sources import SchemaWidening, _inferred, _MiB, _widest


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
        tail = self._read_from_line(line, 2 * self.file.window + 1)
        return _ends_inside_quotes(tail.decode("utf-8", errors="replace"))

    def _line_text(self, line: int) -> str:
        text = self._read_from_line(line, 4096).split(b"\n", 1)[0]
        return text.decode("utf-8", errors="replace").rstrip("\r")

    def _read_from_line(self, line: int, size: int) -> bytes:
        """Up to ``size`` bytes from the start of physical ``line``; none past the file's end."""
        offset = _offset_of_line(self.file.uri, line, 0, 1)
        if offset is None:
            return b""
        with fsx.open_file(self.file.uri, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)


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
