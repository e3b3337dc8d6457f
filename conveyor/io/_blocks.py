"""Blocks of an Examples split and what Ray Data does with them, for
:mod:`conveyor.io.distributed`: a block is some consecutive row groups of one Parquet file,
read on a worker a row group at a time; the jobs below run in the Ray Data driver process,
one Ray Data task per block, results in row order.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from conveyor.io import filesystems as fsx
from conveyor.io.examples import ExamplesSource
from conveyor.types import ConveyorError

logger = logging.getLogger(__name__)

ROW_GROUP_ROWS = 262_144  # as conveyor.io.writers.ExamplesWriter
BLOCK_ROWS = 1_000_000  # a block: consecutive row groups of one file, about this many rows


@dataclass(frozen=True)
class Block:
    """A share of a split: some consecutive row groups of one of its Parquet files."""

    file: str
    row_groups: tuple[int, ...]


def blocks_of(source: ExamplesSource, splits: str | Sequence[str]) -> list[Block]:
    """The splits' files cut into blocks of whole row groups, about :data:`BLOCK_ROWS`
    rows each, in row order (read from the files' footers)."""
    import pyarrow.parquet as pq

    names = [splits] if isinstance(splits, str) else list(splits)
    blocks = []
    for file in (file for name in names for file in source.files(name)):
        file = fsx.origin(file) or file  # workers read a staged copy's object store
        filesystem, path = fsx.arrow_filesystem(file)
        with filesystem.open_input_file(path) as handle:
            metadata = pq.ParquetFile(handle).metadata
        groups: list[int] = []
        rows = 0
        for index in range(metadata.num_row_groups):
            groups.append(index)
            rows += metadata.row_group(index).num_rows
            if rows >= BLOCK_ROWS:
                blocks.append(Block(file, tuple(groups)))
                groups, rows = [], 0
        if groups or metadata.num_row_groups == 0:
            blocks.append(Block(file, tuple(groups)))
    return blocks


@dataclass(frozen=True)
class FileReader:
    """Reads a block's batches on a worker, a row group at a time, as the local statistics
    pass does (no read-ahead), so a worker's memory stays flat."""

    columns: list[str] | None
    batch_size: int

    def batches(self, block: Block) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        filesystem, path = fsx.arrow_filesystem(block.file)
        with filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            yield from parquet.iter_batches(
                batch_size=self.batch_size, row_groups=list(block.row_groups), columns=self.columns
            )


class BlockWriter:
    """Maps one block's batches and writes them to a hidden file of ``folder``: runs on a
    worker."""

    def __init__(self, fn: Callable, folder: str, schema: pa.Schema, extras: Any) -> None:
        self.fn, self.folder, self.schema, self.extras = fn, folder, schema, extras

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> dict[str, Any]:
        import pyarrow.parquet as pq

        name = f".block-{uuid.uuid4().hex}.parquet"
        filesystem, path = fsx.arrow_filesystem(fsx.join(self.folder, name))
        extra = self.extras.create() if self.extras is not None else None
        rows, out = 0, None
        try:
            for batch in batches:
                mapped = self.fn(batch)
                parts = mapped.to_batches() if isinstance(mapped, pa.Table) else [mapped]
                table = pa.Table.from_batches(parts, schema=self.schema)
                if extra is not None:
                    self.extras.add(extra, batch, table)
                if table.num_rows:
                    out = out or pq.ParquetWriter(path, self.schema, filesystem=filesystem)
                    out.write_table(table, row_group_size=ROW_GROUP_ROWS)
                    rows += table.num_rows
        finally:
            if out is not None:
                out.close()
        return {"file": name if rows else "", "rows": rows, "extra": extra}


# ---------------------------------------------------------------------- in the driver process
def run_blocks(blocks: list[Block], one: Callable[[Block], Any]) -> list[Any]:
    """``one(block)`` for every block, as Ray Data tasks on the cluster, results in order.
    The first error stops the pass and is raised with its own words (Ray's wrapping of
    an error in a task keeps only its traceback's text)."""
    from ray import cloudpickle
    from ray import data as ray_data

    def task(row: dict[str, Any]) -> dict[str, Any]:
        block = Block(row["file"], tuple(int(i) for i in row["row_groups"]))
        try:
            return {"error": "", "result": cloudpickle.dumps(one(block))}
        except Exception as exc:
            kind = "" if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: "
            return {"error": f"{kind}{exc} (in {block})", "result": b""}

    warn_without_cpu()
    rows = [{"file": b.file, "row_groups": list(b.row_groups)} for b in blocks]
    items = ray_data.from_items(rows, override_num_blocks=len(blocks))
    results = []
    for row in items.map(task).iter_rows():
        if row["error"]:
            raise ConveyorError(row["error"])
        results.append(cloudpickle.loads(row["result"]))
    return results


def warn_without_cpu() -> None:
    import ray

    if ray.available_resources().get("CPU", 0) < 1:
        logger.warning(
            "No CPU of the Ray cluster is free for Ray Data tasks (%g in all); they wait for "
            "one. If this execution holds them all (resources_per_node, with_options), lower "
            "its request, or set CONVEYOR_RAY_DATA_MIN_ROWS=off.",
            ray.cluster_resources().get("CPU", 0),
        )  # fmt: skip


def reduce_job(blocks: list[Block], reader: FileReader, create: Callable, add: Callable) -> list:
    def one(block: Block) -> Any:
        acc = create()
        for batch in reader.batches(block):
            add(acc, batch)
        return acc

    return run_blocks(blocks, one)


def write_job(blocks: list[Block], reader: FileReader, writer: BlockWriter) -> list:
    return run_blocks(blocks, lambda block: writer(reader.batches(block)))
