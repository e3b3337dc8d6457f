"""Writing an Examples artifact: ``{uri}/Split-{name}/part-*.parquet`` or gzip TFRecord files
of tf.Example in TFX's layout (``data_tfrecord-*.gz``), rolling to a new file every
``rows_per_file`` rows so no file grows without bound."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from conveyor.io import filesystems as fsx
from conveyor.types import ConveyorError

PAYLOAD_FORMATS = {"parquet": "parquet", "tfrecord": "tfrecord_example"}


def split_dir(uri: str, split: str) -> str:
    return fsx.join(uri, f"Split-{split}")


def file_name(output_format: str, index: int) -> str:
    """A split's ``index``-th file: ``part-00000.parquet``, ``data_tfrecord-00000.gz``."""
    if output_format == "parquet":
        return f"part-{index:05d}.parquet"
    return f"data_tfrecord-{index:05d}.gz"


class _SplitFile:
    """The file currently being written for one split."""

    def __init__(self, writer: Any, handle: Any) -> None:
        self.writer = writer
        self.handle = handle
        self.rows = 0


class ExamplesWriter:
    """Writes record batches into the splits of an Examples artifact.

    Rows are gathered per split into row groups of ``row_group_rows`` and encoded on a
    background thread per split, so parsing the next input overlaps with writing the last
    and the splits are written side by side; at most two row groups wait at a time, which
    bounds memory.

    Example::

        with ExamplesWriter(examples.uri, ["train", "eval"], schema) as writer:
            writer.write("train", batch)
        examples.properties.update(writer.properties())
    """

    def __init__(
        self,
        uri: str,
        split_names: Sequence[str],
        schema: pa.Schema,
        *,
        output_format: str = "parquet",
        rows_per_file: int = 1_000_000,
        row_group_rows: int = 262_144,
    ) -> None:
        if output_format not in PAYLOAD_FORMATS:
            raise ConveyorError(
                f"The 'output_format' parameter must be one of {', '.join(PAYLOAD_FORMATS)}. "
                f"Got {output_format!r} instead."
            )
        self.uri = uri
        self.schema = schema
        self.output_format = output_format
        self.rows_per_file = rows_per_file
        self.row_group_rows = min(row_group_rows, rows_per_file)
        self.counts = {name: 0 for name in split_names}
        self.files: dict[str, int] = {name: 0 for name in split_names}
        self._open: dict[str, _SplitFile] = {}
        self._pending: dict[str, list[pa.RecordBatch]] = {name: [] for name in split_names}
        self._pending_rows = dict.fromkeys(split_names, 0)
        # One thread per split: each split's files are written in order.
        self._executors = {
            name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"examples-writer-{name}")
            for name in split_names
        }
        self._queued: deque[Future[None]] = deque()
        self._leaves: list[Any] | None = None
        for name in split_names:
            fsx.makedirs(split_dir(uri, name))

    def __enter__(self) -> ExamplesWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def write(self, split: str, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._pending[split].append(batch)
        self._pending_rows[split] += batch.num_rows
        self.counts[split] += batch.num_rows
        if self._pending_rows[split] >= self.row_group_rows:
            self._flush(split)

    def _flush(self, split: str) -> None:
        if not self._pending[split]:
            return
        table = pa.Table.from_batches(self._pending[split], schema=self.schema)
        self._pending[split], self._pending_rows[split] = [], 0
        while len(self._queued) >= 2:
            self._queued.popleft().result()
        self._queued.append(self._executors[split].submit(self._write_rows, split, table))

    def _write_rows(self, split: str, table: pa.Table) -> None:
        offset = 0
        while offset < table.num_rows:
            current = self._current(split, table)
            take = min(table.num_rows - offset, self.rows_per_file - current.rows)
            self._write_to(current, table.slice(offset, take))
            current.rows += take
            offset += take
            if current.rows >= self.rows_per_file:
                self._close_file(split)

    def _current(self, split: str, table: pa.Table | None = None) -> _SplitFile:
        if split not in self._open:
            index = self.files[split]
            self.files[split] += 1
            folder = split_dir(self.uri, split)
            if self.output_format == "parquet":
                import pyarrow.parquet as pq

                fs, path = fsx.arrow_filesystem(fsx.join(folder, file_name("parquet", index)))
                writer = pq.ParquetWriter(
                    path,
                    self.schema,
                    filesystem=fs,
                    compression="snappy",
                    use_dictionary=self._dictionary_columns(table),
                )
                self._open[split] = _SplitFile(writer, None)
            else:
                from conveyor.io.tfrecord import TFRecordWriter

                writer = TFRecordWriter(fsx.join(folder, file_name("tfrecord", index)), "GZIP")
                self._open[split] = _SplitFile(writer, writer.__enter__())
        return self._open[split]

    def _dictionary_columns(self, table: pa.Table | None) -> list[str]:
        """The leaf columns of a new file worth a dictionary: not floating point ones, nor
        those mostly distinct in the file's first rows. Such values rarely repeat, so the
        writer would build a dictionary only to give it up: half the writing time for taxi
        data."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if self._leaves is None:  # the Parquet leaf columns, as the writer names them
            sink = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_batches([], schema=self.schema), sink)
            leaves = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
            self._leaves = [leaves.column(i) for i in range(len(leaves))]
        sample = (
            table.slice(0, 16_384)
            if table is not None
            else pa.Table.from_batches([], schema=self.schema)
        )
        distinct = {
            field.name
            for field in sample.schema
            if pa.types.is_primitive(field.type) or pa.types.is_string(field.type)
            if pc.count_distinct(sample.column(field.name)).as_py() > sample.num_rows // 2
        }
        return [
            leaf.path
            for leaf in self._leaves
            if leaf.physical_type not in ("FLOAT", "DOUBLE") and leaf.path not in distinct
        ]

    def _write_to(self, current: _SplitFile, table: pa.Table) -> None:
        if self.output_format == "parquet":
            current.writer.write_table(table, row_group_size=table.num_rows)
            return
        from conveyor.io.example_codec import encode

        for record in encode(table):
            current.handle.write(record)

    def _close_file(self, split: str) -> None:
        current = self._open.pop(split, None)
        if current is None:
            return
        if self.output_format == "parquet":
            current.writer.close()
        else:
            current.writer.__exit__(None, None, None)

    def close(self) -> None:
        """Write what is pending, wait for the background thread, close every file."""
        for split in self._pending:
            self._flush(split)
        try:
            while self._queued:
                self._queued.popleft().result()
        finally:
            self._shutdown()
        for split in list(self._open):
            self._close_file(split)
        if self.output_format == "parquet":  # every split has at least one (maybe empty) file
            for split, files in self.files.items():
                if files == 0:
                    self._current(split)
                    self._close_file(split)

    def _abort(self) -> None:
        for future in self._queued:
            future.cancel()
        self._shutdown()
        for split in list(self._open):
            self._close_file(split)

    def _shutdown(self) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=True)

    def properties(self) -> dict[str, Any]:
        """What the Examples artifact records about what was written."""
        return examples_properties(self.counts, self.output_format)


def examples_properties(counts: dict[str, int], output_format: str = "parquet") -> dict[str, Any]:
    """What an Examples artifact records about its splits: names, payload format, rows."""
    return {
        "split_names": list(counts),
        "payload_format": PAYLOAD_FORMATS[output_format],
        "num_examples": dict(counts),
        **{f"{name}_num_examples": n for name, n in counts.items()},
    }
