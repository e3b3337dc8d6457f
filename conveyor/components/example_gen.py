"""The ExampleGen family: bring data in as an ``Examples`` artifact, split and typed once.

``FileExampleGen`` is the general form (CSV, Parquet, JSON lines, Avro, TFRecord of
tf.Example); ``CsvExampleGen`` and ``ImportExampleGen`` are the names TFX users know. Under
the Ray runner, large inputs of several files are converted a file per Ray Data task, into
the same rows in the same order (see :mod:`conveyor.components._ray_data_example_gen`).

Example::

    example_gen = CsvExampleGen(input_base="data/penguins")
    trainer = Trainer(examples=example_gen.outputs["examples"], ...)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.dsl import Input, Output, Param, component
from conveyor.io import filesystems as fsx
from conveyor.io.arrays import row_numbers
from conveyor.io.bad_rows import BadRows
from conveyor.io.input_patterns import ALL, RangeConfig, ResolvedInputs, resolve_inputs
from conveyor.io.prefetch import prefetch
from conveyor.io.splits import assign_splits, check_output_config
from conveyor.io.writers import ExamplesWriter, examples_properties
from conveyor.types import ConveyorError, Examples, Schema

__all__ = ["CsvExampleGen", "FileExampleGen", "ImportExampleGen", "RangeConfig"]

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT_CONFIG = {"train": 2, "eval": 1}
_MAX_WIDENINGS = 20


def generate_examples(
    examples: Examples,
    *,
    input_base: str,
    format: str = "auto",
    input_config: Mapping[str, str] | None = None,
    output_config: Mapping[str, int] | None = None,
    partition_feature: str | None = None,
    range_config: RangeConfig | None = None,
    schema_uri: str | None = None,
    output_format: str = "parquet",
    on_bad_rows: str = "error",
    batch_size: int = 65536,
    rows_per_file: int = 1_000_000,
) -> None:
    """Everything the ExampleGen components do; they differ only in their defaults."""
    from conveyor.io import sources

    inputs = resolve_inputs(input_base, input_config, range_config)
    pre_split = ALL not in inputs.files
    config = output_config or DEFAULT_OUTPUT_CONFIG
    splits = list(inputs.files) if pre_split else list(check_output_config(config))
    if pre_split and output_config:
        raise ConveyorError(
            "output_config splits rows by hash, but the input is already split "
            f"({', '.join(inputs.files)}); drop output_config or input_config."
        )
    uris = [uri for files in inputs.files.values() for uri in files]
    fmt = _format_of(uris, format)
    fixed = _schema_from_file(schema_uri) if schema_uri else None
    schema = sources.infer_schema(uris, fmt, schema=fixed)
    if partition_feature is not None and partition_feature not in schema.names:
        raise ConveyorError(
            f"partition_feature '{partition_feature}' is not a column of the input under "
            f"{input_base}. Columns: {', '.join(schema.names)}."
        )
    for _ in range(_MAX_WIDENINGS):
        try:
            _write_all(examples, inputs, splits, output_config, partition_feature, fmt, schema,
                       output_format, on_bad_rows, batch_size, rows_per_file)  # fmt: skip
            break
        except sources.SchemaWidening as widening:
            logger.info("Restarting with a wider type: %s", widening)
            schema = sources.widen(schema, widening)
    else:
        raise ConveyorError(f"Column types under {input_base} kept changing; give a schema.")
    examples.properties.update(
        span=inputs.span,
        spans=inputs.spans,
        version=inputs.version,
        input_format=fmt,
        input_files=len(uris),
    )
    rows = examples.properties["num_examples"]
    logger.info("Wrote %s rows from %d file(s) under %s", rows, len(uris), input_base)


def _write_all(
    examples: Examples,
    inputs: ResolvedInputs,
    splits: list[str],
    output_config: Mapping[str, int] | None,
    partition_feature: str | None,
    fmt: str,
    schema: pa.Schema,
    output_format: str,
    on_bad_rows: str,
    batch_size: int,
    rows_per_file: int,
) -> None:
    from conveyor.components import _ray_data_example_gen as conversion

    config = dict(output_config or DEFAULT_OUTPUT_CONFIG)
    convert = functools.partial(
        convert_file, fmt=fmt, schema=schema, batch_size=batch_size, splits=splits,
        config=config, partition_feature=partition_feature,
    )  # fmt: skip
    tasks = [(split, uri) for split, uris in inputs.files.items() for uri in uris]
    plan = conversion.Plan(splits, schema, output_format, rows_per_file, on_bad_rows)
    _clear(examples.uri)
    if conversion.use_ray_data([uri for _, uri in tasks], examples.uri, fmt):
        conversion.convert_on_cluster(examples, tasks, convert, plan)
        return
    converted = conversion.write_files(examples.uri, tasks, convert, plan)
    examples.properties.update(examples_properties(converted.counts, output_format))
    examples.properties.update(conversion.quarantine_properties(examples.uri, [converted], plan))


def convert_file(
    writer: ExamplesWriter,
    bad_rows: BadRows,
    split: str,
    uri: str,
    *,
    fmt: str,
    schema: pa.Schema,
    batch_size: int,
    splits: list[str],
    config: Mapping[str, int],
    partition_feature: str | None,
) -> None:
    """Read one input file of ``split`` (``ALL`` when rows are hash-split) with the settled
    ``schema`` and write its rows to their splits, in order: the same in this process and on
    a Ray worker."""
    from conveyor.io import sources

    batches = prefetch(
        sources.read_batches(uri, fmt, schema=schema, bad_rows=bad_rows, batch_size=batch_size)
    )
    for target, part in _route(batches, split, splits, config, partition_feature):
        writer.write(target, part)


def _route(
    batches: Iterator[pa.RecordBatch],
    split: str,
    splits: list[str],
    config: Mapping[str, int],
    partition_feature: str | None,
) -> Iterator[tuple[str, pa.RecordBatch]]:
    for batch in batches:
        if split != ALL:
            yield split, batch
            continue
        assigned = assign_splits(batch, config, partition_feature)
        for index, name in enumerate(splits):
            rows = np.flatnonzero(assigned == index)
            if len(rows) == batch.num_rows:
                yield name, batch
            elif len(rows):
                # A take of the row numbers: about 3x faster than a filter by a mask.
                yield name, batch.take(row_numbers(rows))


def _clear(uri: str) -> None:
    """Empty the output folder (a restart after widening the schema starts from nothing)."""
    fs, path = fsx.split_uri(uri)
    if not fs.exists(path):  # object stores have no empty folders
        return
    for child in fs.ls(path, detail=False):
        fs.rm(child, recursive=True)


def _format_of(uris: list[str], format: str) -> str:
    from conveyor.io import sources

    if format != "auto":
        if format not in sources.FORMATS:
            raise ConveyorError(
                f"The 'format' parameter must be one of auto, {', '.join(sources.FORMATS)}. "
                f"Got {format!r} instead."
            )
        return format
    found = {sources.format_for(uri) for uri in uris}
    if len(found) > 1:
        raise ConveyorError(
            f"The input files mix formats ({', '.join(sorted(found))}); pass format=... or "
            "point input_base/input_config at files of one format."
        )
    return found.pop()


def _schema_from_file(uri: str) -> pa.Schema:
    from conveyor.io import tfmd

    return tfmd.arrow_schema(tfmd.load_schema(uri))


def _schema_uri(schema: Schema | None, schema_file: str | None) -> str | None:
    if schema is not None and schema_file is not None:
        raise ConveyorError("Give either the schema input or schema_file, not both.")
    if schema is not None:
        return fsx.join(schema.uri, "schema.pbtxt") if fsx.isdir(schema.uri) else schema.uri
    return schema_file


def _generate(arguments: dict[str, Any], **fixed: Any) -> None:
    """Call :func:`generate_examples` with a component's own arguments (its ``locals()``)."""
    options = {**arguments, **fixed}
    examples = options.pop("examples")
    options["schema_uri"] = _schema_uri(options.pop("schema"), options.pop("schema_file"))
    generate_examples(examples, **options)


@component(file_params=("input_base",))
def FileExampleGen(
    examples: Output[Examples],
    input_base: Param[str],
    format: Param[str] = "auto",
    schema: Input[Schema] | None = None,
    schema_file: Param[str | None] = None,
    input_config: Param[dict | None] = None,
    output_config: Param[dict | None] = None,
    partition_feature: Param[str | None] = None,
    range_config: Param[RangeConfig | None] = None,
    output_format: Param[str] = "parquet",
    on_bad_rows: Param[str] = "error",
    batch_size: Param[int] = 65536,
    rows_per_file: Param[int] = 1_000_000,
):
    """Read CSV, Parquet, JSON lines, Avro or TFRecord (tf.Example) files into Examples.

    ``input_config`` maps split names to file patterns under ``input_base`` (pre-split
    input); otherwise rows are hash-split by ``output_config`` (default 2:1 train/eval).
    """
    _generate(locals())


@component(file_params=("input_base",))
def CsvExampleGen(
    examples: Output[Examples],
    input_base: Param[str],
    schema: Input[Schema] | None = None,
    schema_file: Param[str | None] = None,
    input_config: Param[dict | None] = None,
    output_config: Param[dict | None] = None,
    partition_feature: Param[str | None] = None,
    range_config: Param[RangeConfig | None] = None,
    output_format: Param[str] = "parquet",
    on_bad_rows: Param[str] = "error",
    batch_size: Param[int] = 65536,
    rows_per_file: Param[int] = 1_000_000,
):
    """Read CSV files (with a header row) into Examples; see :func:`FileExampleGen`."""
    _generate(locals(), format="csv")


@component(file_params=("input_base",))
def ImportExampleGen(
    examples: Output[Examples],
    input_base: Param[str],
    format: Param[str] = "tfrecord",
    schema: Input[Schema] | None = None,
    schema_file: Param[str | None] = None,
    input_config: Param[dict | None] = None,
    output_config: Param[dict | None] = None,
    partition_feature: Param[str | None] = None,
    range_config: Param[RangeConfig | None] = None,
    output_format: Param[str] = "parquet",
    on_bad_rows: Param[str] = "error",
    batch_size: Param[int] = 65536,
    rows_per_file: Param[int] = 1_000_000,
):
    """Import TFRecord files of tf.Example (plain or gzip) or Parquet files as Examples.

    TFX's own ExampleGen output (``Split-*`` folders) keeps its splits.
    """
    if format not in ("tfrecord", "parquet"):
        raise ConveyorError(
            f"ImportExampleGen reads 'tfrecord' or 'parquet'; got format={format!r}. Use "
            "FileExampleGen for other formats."
        )
    _generate(locals())
