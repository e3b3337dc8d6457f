"""Writing an Examples artifact: ``{uri}/Split-{name}/part-*.parquet`` or gzip TFRecord files
of tf.Example in TFX's layout (``data_tfrecord-*.gz``), rolling to a new file every
``rows_per_file`` rows so no file grows without bound."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from conveyor.io import filesystems as fsx
from conveyor.types import ConveyorError

PAYLOAD_FORMATS = {"parquet": "parquet", "tfrecord": "tfrecord_example"}


def split_dir(uri: str, split: str) -> str:
    return fsx.join(uri, f"Split-{split}")


class _SplitFile:
    """The file currently being written for one split."""

    def __init__(self, writer: Any, handle: Any) -> None:
        self.writer = writer
        self.handle = handle
        self.rows = 0


class ExamplesWriter:
    """Writes record batches into the splits of an Examples artifact.

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
        self.counts = {name: 0 for name in split_names}
        self.files: dict[str, int] = {name: 0 for name in split_names}
        self._open: dict[str, _SplitFile] = {}
        for name in split_names:
            fsx.makedirs(split_dir(uri, name))

    def __enter__(self) -> ExamplesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, split: str, batch: pa.RecordBatch | pa.Table) -> None:
        offset = 0
        while offset < batch.num_rows:
            current = self._current(split)
            take = min(batch.num_rows - offset, self.rows_per_file - current.rows)
            self._write_to(current, batch.slice(offset, take))
            current.rows += take
            self.counts[split] += take
            offset += take
            if current.rows >= self.rows_per_file:
                self._close_file(split)

    def _current(self, split: str) -> _SplitFile:
        if split not in self._open:
            index = self.files[split]
            self.files[split] += 1
            folder = split_dir(self.uri, split)
            if self.output_format == "parquet":
                import pyarrow.parquet as pq

                fs, path = fsx.arrow_filesystem(fsx.join(folder, f"part-{index:05d}.parquet"))
                writer = pq.ParquetWriter(path, self.schema, filesystem=fs, compression="snappy")
                self._open[split] = _SplitFile(writer, None)
            else:
                from conveyor.io.tfrecord import TFRecordWriter

                writer = TFRecordWriter(fsx.join(folder, f"data_tfrecord-{index:05d}.gz"), "GZIP")
                self._open[split] = _SplitFile(writer, writer.__enter__())
        return self._open[split]

    def _write_to(self, current: _SplitFile, batch: pa.RecordBatch | pa.Table) -> None:
        if self.output_format == "parquet":
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            current.writer.write_table(table)
            return
        from conveyor.io.example_codec import encode

        for record in encode(batch):
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
        for split in list(self._open):
            self._close_file(split)
        if self.output_format == "parquet":  # every split has at least one (maybe empty) file
            for split, files in self.files.items():
                if files == 0:
                    self._current(split)
                    self._close_file(split)

    def properties(self) -> dict[str, Any]:
        """What the Examples artifact records about what was written."""
        return {
            "split_names": list(self.counts),
            "payload_format": PAYLOAD_FORMATS[self.output_format],
            "num_examples": dict(self.counts),
            **{f"{name}_num_examples": n for name, n in self.counts.items()},
        }
