"""ExampleGen's conversion on a Ray cluster, with Ray Data (see :mod:`conveyor.io.distributed`).

The component settles the column types in its own process, as always (so they are decided
once, across all files). Then each input file becomes one Ray Data task that reads it with
that schema, hashes its rows into splits as the local path does, and writes each split's rows
with the local path's own writer into a hidden folder of the output. Back in the component's
process the tasks' files are renamed, split by split and in input order, into the usual
``Split-{name}/part-NNNNN.parquet`` (or ``data_tfrecord-NNNNN.gz``) layout, and their
counts, bad rows and quarantined rows are merged in input order.

What is identical to the local path: the rows of every split, in the same order (reading a
split's files in order gives the same table), the schema, the properties (row counts per
split, bad-row counts and reasons; ``engine`` and ``ray_data_splits`` are added, as by the
other components) and the quarantine file. What is not: where the files break, as each input
file starts new files (a split holds at least one file per input file that has rows for it,
and files still roll every ``rows_per_file`` rows). An error found in a task (a bad row in
``error`` mode, a value that needs a wider type) is raised here as the same error the local
path raises, the first in input order; a wider type restarts the whole conversion, as
locally.

When: only under the Ray runner, for at least two input files (a file is a task, never cut
into byte ranges, as a CSV's quoted values may hold newlines: one file has nothing to
spread) that every node reaches, as does the output, and an input of at least
``CONVEYOR_RAY_DATA_MIN_ROWS`` rows. Parquet files count their rows from their footers; the
others are estimated from their size: CSV and JSON lines from the lines in the first MiB of
the first file, Avro and TFRecord at one row per :data:`BYTES_PER_ROW` bytes.

Example::

    if use_ray_data(uris, examples.uri, "csv"):
        convert_on_cluster(examples, tasks, convert, Plan(splits, schema, "parquet", ...))
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import pyarrow as pa

from conveyor.io import distributed
from conveyor.io import filesystems as fsx
from conveyor.io._blocks import Block, run_blocks
from conveyor.io.bad_rows import BadRows
from conveyor.io.writers import ExamplesWriter, examples_properties, file_name, split_dir
from conveyor.types import ConveyorError, Examples

__all__ = [
    "BYTES_PER_ROW",
    "Converted",
    "Plan",
    "convert_on_cluster",
    "estimate_rows",
    "quarantine_properties",
    "use_ray_data",
    "write_files",
]

logger = logging.getLogger(__name__)

BYTES_PER_ROW = 100
STAGING = ".ray-data-example-gen"
QUARANTINE = "bad_rows.jsonl"
_SAMPLE = 1 << 20

# A task converts one input file: (split, or ALL when rows are hash-split; the file's URI).
Task = tuple[str, str]
# ``convert(writer, bad_rows, split, uri)``: what the local path does with one input file.
Convert = Callable[[ExamplesWriter, BadRows, str, str], None]


def use_ray_data(inputs: Sequence[str], output_uri: str, fmt: str) -> bool:
    """Whether to convert ``inputs`` (files of ``fmt``) into ``output_uri`` with Ray Data;
    see the module docstring. Logs the decision."""
    address = os.environ.get(distributed.ADDRESS_ENV)
    if not address:
        return False  # the local runner: nothing to decide, nothing to say
    label = f"ExampleGen, {len(inputs)} {fmt} file(s)"
    if len(inputs) < 2:
        logger.info("%s: in this process (one file is one task: nothing to spread)", label)
        return False
    unreachable = [u for u in (output_uri, *inputs) if not distributed.reachable(u)]
    if unreachable:
        logger.info("%s: in this process (%s is not on storage every Ray node mounts)",
                    label, unreachable[0])  # fmt: skip
        return False
    threshold = distributed.min_rows()
    rows = estimate_rows(inputs, fmt) if threshold else 0
    if threshold is None or rows < threshold:
        limit = "off" if threshold is None else f"below {threshold}"
        logger.info("%s: about %d rows in this process (%s=%s)", label, rows,
                    distributed.MIN_ROWS_ENV, limit)  # fmt: skip
        return False
    logger.info("%s: about %d rows with Ray Data on the cluster at %s", label, rows, address)
    return True


def estimate_rows(inputs: Sequence[str], fmt: str) -> int:
    """The rows of ``inputs``: exact for Parquet, estimated from the size for the others."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        rows = 0
        for uri in inputs:
            filesystem, path = fsx.arrow_filesystem(uri)
            with filesystem.open_input_file(path) as handle:
                rows += pq.ParquetFile(handle).metadata.num_rows
        return rows
    total = sum(fsx.size(uri) for uri in inputs)
    if fmt not in ("csv", "jsonl"):
        return total // BYTES_PER_ROW
    with fsx.open_file(inputs[0], "rb") as handle:
        sample = handle.read(_SAMPLE)
    return total * max(1, sample.count(b"\n")) // max(1, len(sample))


@dataclass(frozen=True)
class Plan:
    """What every task writes: the splits, the settled schema, the output format, the
    rows per file and the bad-row policy."""

    splits: list[str]
    schema: pa.Schema
    output_format: str
    rows_per_file: int
    on_bad_rows: str


@dataclass
class Converted:
    """What one task wrote into its folder (or the error that stopped it)."""

    folder: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    bad_rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    error: ConveyorError | None = None


def write_files(folder: str, tasks: list[Task], convert: Convert, plan: Plan) -> Converted:
    """Convert the input files of ``tasks`` into the Examples layout under ``folder``, in
    order: the whole conversion in the component's process, one file's on a worker."""
    with ExitStack() as stack:
        quarantine = None
        if plan.on_bad_rows == "quarantine":
            quarantine = stack.enter_context(fsx.open_file(fsx.join(folder, QUARANTINE), "w"))
        bad_rows = BadRows(plan.on_bad_rows, quarantine)
        writer = ExamplesWriter(folder, plan.splits, plan.schema,
                                output_format=plan.output_format,
                                rows_per_file=plan.rows_per_file)  # fmt: skip
        with writer:
            for split, uri in tasks:
                convert(writer, bad_rows, split, uri)
    return Converted(folder, dict(writer.counts), dict(writer.files), bad_rows.count,
                     dict(bad_rows.reasons))  # fmt: skip


def quarantine_properties(uri: str, converted: Sequence[Converted], plan: Plan) -> dict:
    """The bad rows' counts (and where they were set aside) for the Examples at ``uri``."""
    reasons: Counter[str] = Counter()
    for one in converted:
        reasons.update(one.reasons)
    found = {"bad_rows": sum(one.bad_rows for one in converted), "bad_row_reasons": dict(reasons)}
    if plan.on_bad_rows == "quarantine":
        found["bad_rows_file"] = fsx.join(uri, QUARANTINE)
    return found


@dataclass(frozen=True)
class _ConvertTask:
    """Converts the input file a block stands for (its one "row group" is the task's
    index) into a fresh folder under ``staging``: runs on a worker."""

    staging: str
    tasks: list[Task]
    convert: Convert
    plan: Plan

    def __call__(self, block: Block) -> Converted:
        index = block.row_groups[0]
        split, uri = self.tasks[index]
        folder = fsx.join(self.staging, f"{index:05d}-{uuid.uuid4().hex}")
        try:
            return write_files(folder, [(split, fsx.origin(uri) or uri)], self.convert, self.plan)
        except ConveyorError as error:  # raised by the component, as the local path does
            return Converted(error=error)


def convert_on_cluster(examples: Examples, tasks: list[Task], convert: Convert, plan: Plan) -> None:
    """Convert every input file of ``tasks`` on the cluster and publish the result into
    ``examples`` with the properties the local path records."""
    uri = examples.uri
    if fsx.origin(uri) is not None:  # a staged output: the workers write its object store
        fsx.note_written_at_origin(uri)
        uri = fsx.origin(uri) or uri
    staging = fsx.join(uri, STAGING)
    fsx.makedirs(staging)
    blocks = [Block(source, (index,)) for index, (_, source) in enumerate(tasks)]
    try:
        done = distributed.run_on_cluster(
            run_blocks, blocks, _ConvertTask(staging, tasks, convert, plan)
        )
        for converted in done:
            if converted.error is not None:
                raise converted.error
        counts = {split: _publish(uri, split, done, plan.output_format) for split in plan.splits}
        if plan.on_bad_rows == "quarantine":
            _merge_quarantine(uri, done)
    finally:
        fs, path = fsx.split_uri(staging)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    examples.properties.update(examples_properties(counts, plan.output_format))
    examples.properties.update(quarantine_properties(examples.uri, done, plan))
    examples.properties.update(engine=distributed.ENGINE, ray_data_splits=list(plan.splits))
    logger.info("Converted %d file(s) on the cluster: %s rows", len(tasks), counts)


def _publish(uri: str, split: str, done: list[Converted], output_format: str) -> int:
    """Move the tasks' files of ``split`` into ``{uri}/Split-{split}``, renumbered in input
    order; a split without rows keeps one empty Parquet file, as the local writer leaves.
    Returns the split's rows."""
    with_rows = [c for c in done if c.counts[split]]
    moves = [(c, i) for c in with_rows for i in range(c.files[split])]
    if not moves and output_format == "parquet":
        moves = [(done[0], 0)]
    fs, _ = fsx.split_uri(uri)
    folder = split_dir(uri, split)
    fsx.makedirs(folder)
    for index, (converted, i) in enumerate(moves):
        old = fsx.join(split_dir(converted.folder, split), file_name(output_format, i))
        new = fsx.join(folder, file_name(output_format, index))
        fs.mv(fsx.split_uri(old)[1], fsx.split_uri(new)[1])
    return sum(c.counts[split] for c in with_rows)


def _merge_quarantine(uri: str, done: list[Converted]) -> None:
    """The tasks' quarantined rows, in input order, in ``{uri}/bad_rows.jsonl``."""
    with fsx.open_file(fsx.join(uri, QUARANTINE), "wb") as merged:
        for converted in done:
            with fsx.open_file(fsx.join(converted.folder, QUARANTINE), "rb") as part:
                while chunk := part.read(1 << 20):
                    merged.write(chunk)
