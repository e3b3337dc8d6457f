"""Transform: fit a ``preprocessing_fn`` on the analysis splits, then transform every split,
as TFX's Transform does, with a portable graph that every framework can apply.

Outputs:

- ``transform_graph``: the fitted graph (read it with ``conveyor.transform.load(uri)``) and
  tf.Transform's metadata files (see :class:`~conveyor.types.TransformGraph`);
- ``transformed_examples``: the transformed splits, Parquet, ``Split-{name}`` folders;
- ``pre_transform_stats`` / ``post_transform_stats``: statistics of the raw analysis splits
  and of the transformed splits, ``Split-{name}/FeatureStats.pb`` as StatisticsGen writes.

Each split is streamed: batches are read, transformed, written and added to the statistics,
a few at a time on threads, in order; no split is ever held in memory.

Example::

    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        module_file="penguin_transform.py",  # defines preprocessing_fn(inputs)
    )
    trainer = Trainer(examples=transform.outputs["transformed_examples"], ...)
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from conveyor.components._ray_data import (
    SplitWritten,
    cluster_pass,
    record_engine,
    split_statistics,
    transform_on_cluster,
    use_ray_data,
)
from conveyor.dsl import Input, Output, Param, component
from conveyor.io import filesystems as fsx
from conveyor.io import tfmd
from conveyor.io.examples import ExamplesSource, open_examples, record_batches
from conveyor.io.writers import ExamplesWriter, examples_properties
from conveyor.types import ConveyorError, Examples, ExampleStatistics, Schema, TransformGraph
from conveyor.validation import files
from conveyor.validation.statistics import StatisticsAccumulator, StatsOptions

__all__ = ["Transform"]

logger = logging.getLogger(__name__)

TRANSFORMED_METADATA_DIR = "transformed_metadata"
RAW_METADATA_DIR = "metadata"
BATCH_SIZE = 65536


@component(file_params=("module_file",))
def Transform(
    examples: Input[Examples],
    transform_graph: Output[TransformGraph],
    transformed_examples: Output[Examples],
    pre_transform_stats: Output[ExampleStatistics],
    post_transform_stats: Output[ExampleStatistics],
    schema: Input[Schema] | None = None,
    module_file: Param[str | None] = None,
    preprocessing_fn: Param[str | None] = None,
    splits_config: Param[dict | None] = None,
    disable_statistics: Param[bool] = False,
    custom_config: Param[dict | None] = None,
):
    """Fit ``preprocessing_fn`` on the ``analyze`` splits, transform the ``transform`` splits
    (``splits_config``; by default analyze ``train`` and transform every split).

    ``module_file`` is a Python file defining ``preprocessing_fn(inputs)`` (or the function
    ``preprocessing_fn="name"`` names in it); alternatively ``preprocessing_fn`` is a dotted
    path, ``"package.module.function"`` (its code is not part of the cache key: run with
    ``enable_cache=False`` after editing it). A ``preprocessing_fn`` with a ``custom_config``
    parameter receives ``custom_config``. ``schema`` fixes the raw types and says which
    features are always present. ``disable_statistics`` leaves both statistics outputs empty
    (property ``statistics_disabled``).
    """
    fn = load_preprocessing_fn(module_file, preprocessing_fn, custom_config)
    source = open_examples(examples)
    analyze, transform = resolve_splits(splits_config, source)
    raw_schema = tfmd.load_schema(schema.uri) if schema is not None else None
    fitted = fit_transform_graph(fn, examples, analyze, raw_schema, transform_graph)
    pre_options = None if disable_statistics else StatsOptions(schema=raw_schema)
    pre_stats, post_stats, required = write_transformed(
        fitted, source, transform, transformed_examples, pre_options, stats_splits=analyze
    )
    save_metadata(fitted, transform_graph.uri, raw_schema, required)
    for key in ("span", "version"):
        if key in examples.properties:
            transformed_examples.properties[key] = examples.properties[key]
    if disable_statistics:
        for artifact in (pre_transform_stats, post_transform_stats):
            artifact.properties.update(split_names=[], num_examples={}, statistics_disabled=True)
        return
    engines: list[str] = []
    for split in analyze:  # analysis splits that were not transformed (not read again above)
        if split not in pre_stats:
            pre_stats[split] = split_statistics(source, split, pre_options, "Transform", engines)
    save_statistics(pre_transform_stats, {s: pre_stats[s] for s in analyze})
    record_engine(pre_transform_stats, engines)
    save_statistics(post_transform_stats, post_stats)


# ---------------------------------------------------------------------- the user's function
def load_preprocessing_fn(
    module_file: str | None, preprocessing_fn: str | None, custom_config: dict | None
) -> Callable[..., Any]:
    """The ``preprocessing_fn`` the parameters name, with ``custom_config`` bound when it takes
    one (as TFX does)."""
    from conveyor.transform.module_file import user_function

    fn = user_function(module_file, preprocessing_fn, default="preprocessing_fn", owner="Transform")
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn
    if "custom_config" not in parameters:
        return fn
    bound = functools.update_wrapper(functools.partial(fn, custom_config=custom_config), fn)
    bound.__code__ = fn.__code__  # type: ignore[attr-defined]  # tracing names the user's file
    return bound


def resolve_splits(config: dict | None, source: ExamplesSource) -> tuple[list[str], list[str]]:
    """``(analyze, transform)`` split names from ``splits_config``, checked against the data."""
    config = dict(config or {})
    unknown = sorted(set(config) - {"analyze", "transform"})
    if unknown:
        raise ConveyorError(
            f"The 'splits_config' parameter of Transform has keys 'analyze' and 'transform'. "
            f"Got {', '.join(map(repr, unknown))} instead."
        )
    available = list(source.split_names)
    analyze = _split_list(config, "analyze", ["train"] if "train" in available else None)
    transform = _split_list(config, "transform", available)
    if not analyze:
        raise ConveyorError(
            f"Transform needs at least one split to analyze; the Examples at {source.uri} have "
            f"{', '.join(available)} and no 'train'. Give splits_config={{'analyze': [...]}}."
        )
    for key, names in (("analyze", analyze), ("transform", transform)):
        missing = [name for name in names if name not in available]
        if missing:
            raise ConveyorError(
                f"splits_config[{key!r}] names {', '.join(map(repr, missing))}, which the "
                f"Examples at {source.uri} do not have. Their splits: {', '.join(available)}."
            )
    return analyze, transform


def _split_list(config: dict, key: str, default: list[str] | None) -> list[str]:
    value = config.get(key, default)
    if value is None:
        return []
    if isinstance(value, str) or not all(isinstance(name, str) for name in value):
        raise ConveyorError(
            f"splits_config[{key!r}] must be a list of split names. Got {value!r} instead."
        )
    return list(dict.fromkeys(value))


# ---------------------------------------------------------------------- fitting and files
def fit_transform_graph(
    fn: Callable[..., Any],
    examples: Examples,
    analyze: list[str],
    raw_schema: schema_pb2.Schema | None,
    transform_graph: TransformGraph,
) -> Any:
    """Fit ``fn`` on the ``analyze`` splits and save it under ``transform_graph.uri``."""
    import conveyor.transform as tft
    from conveyor.transform import dtypes

    source = open_examples(examples)
    on_cluster = use_ray_data(source, analyze, "Transform's analysis")
    run_pass = cluster_pass(source, analyze) if on_cluster else None
    fitted = tft.fit(
        fn, examples, schema=raw_schema, split=analyze, batch_size=BATCH_SIZE, run_pass=run_pass
    )
    fitted.save(transform_graph.uri)
    outputs = fitted.transformed_schema
    transform_graph.properties.update(
        output_features={f.name: dtypes.describe(f.type) for f in outputs},
        num_output_features=len(outputs),
        raw_features=list(fitted.raw_schema.names),
        num_analyzers=len(fitted.graph.analyzers),
        analyze_splits=analyze,
    )
    record_engine(transform_graph, analyze if on_cluster else [])
    logger.info("Fitted %d analyzer(s) on split(s) %s; %d output features",
                len(fitted.graph.analyzers), ", ".join(analyze), len(outputs))  # fmt: skip
    return fitted


def save_metadata(
    fitted: Any, uri: str, raw_schema: schema_pb2.Schema | None, required: set[str]
) -> None:
    """tf.Transform's metadata beside the graph: ``transformed_metadata/schema.pbtxt`` (the
    outputs; those never null in the transformed data are dense) and ``metadata/schema.pbtxt``
    (the raw schema given, else the raw features the transform reads)."""
    outputs = pa.schema(
        [f.with_nullable(f.name not in required) for f in fitted.transformed_schema]
    )
    transformed = tfmd.from_arrow(outputs)
    tfmd.save_schema(transformed, fsx.join(uri, TRANSFORMED_METADATA_DIR, tfmd.SCHEMA_FILE))
    raw = raw_schema if raw_schema is not None else tfmd.from_arrow(fitted.raw_schema)
    tfmd.save_schema(raw, fsx.join(uri, RAW_METADATA_DIR, tfmd.SCHEMA_FILE))


def save_statistics(
    artifact: ExampleStatistics, by_split: dict[str, statistics_pb2.DatasetFeatureStatistics]
) -> None:
    for split, stats in by_split.items():
        files.save_statistics(
            statistics_pb2.DatasetFeatureStatisticsList(datasets=[stats]),
            files.split_uri(artifact.uri, split),
        )
    artifact.properties.update(
        split_names=list(by_split),
        num_examples={split: stats.num_examples for split, stats in by_split.items()},
    )


# ---------------------------------------------------------------------- the transform pass
def write_transformed(
    fitted: Any,
    source: ExamplesSource,
    splits: list[str],
    output: Examples,
    stats_options: StatsOptions | None,
    *,
    stats_splits: Iterable[str] = (),
    threads: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """Transform ``splits`` into ``output``, one streamed pass each (a Ray Data pass for
    big splits under the Ray runner). With ``stats_options``, also the statistics of the
    transformed splits and of the raw ones in ``stats_splits``. Returns ``(raw statistics,
    transformed statistics, outputs never null)`` by split."""
    threads = threads or min(4, os.cpu_count() or 1)
    schema = fitted.transformed_schema
    stats_splits = set(stats_splits)
    on_cluster = [s for s in splits if use_ray_data(source, s, "Transform")]
    done: dict[str, SplitWritten] = {}
    local = [s for s in splits if s not in on_cluster]
    with ExamplesWriter(output.uri, local, schema) as writer:
        for split in splits:
            raw = stats_options if split in stats_splits else None
            post = StatsOptions() if stats_options is not None else None
            if split in on_cluster:
                done[split] = transform_on_cluster(fitted, source, split, output.uri, raw, post)
            else:
                done[split] = _transform_here(fitted, source, split, writer, (raw, post), threads)
            logger.info("Transformed split %r: %d rows", split, done[split].rows)
    output.properties.update(examples_properties({s: done[s].rows for s in splits}))
    record_engine(output, on_cluster)
    rows = sum(d.rows for d in done.values())
    never_null = {n for n in schema.names if all(d.nulls[n] == 0 for d in done.values())}
    raw_stats = {s: d.raw for s, d in done.items() if d.raw is not None}
    post_stats = {s: d.post for s, d in done.items() if d.post is not None}
    return raw_stats, post_stats, never_null if rows else set()


def _transform_here(
    fitted: Any,
    source: ExamplesSource,
    split: str,
    writer: ExamplesWriter,
    options: tuple[StatsOptions | None, StatsOptions | None],
    threads: int,
) -> SplitWritten:
    """One split streamed through this process's threads into ``writer``."""
    names = fitted.transformed_schema.names
    nulls = dict.fromkeys(names, 0)
    raw, post = options
    pass_ = _SplitPass(fitted, source, split, raw, post, threads)
    for batch in pass_.run():
        writer.write(split, batch)
        for name, column in zip(names, batch.columns, strict=True):
            nulls[name] += column.null_count
    raw_stats = pass_.raw_result() if raw is not None else None
    post_stats = pass_.post_result() if post is not None else None
    return SplitWritten(writer.counts[split], nulls, raw_stats, post_stats)


class _SplitPass:
    """One split read, transformed and added to statistics by ``threads`` workers, each with
    its own accumulators (merged at the end); batches come out in the order they were read."""

    def __init__(
        self,
        fitted: Any,
        source: ExamplesSource,
        split: str,
        raw: StatsOptions | None,
        post: StatsOptions | None,
        threads: int,
    ) -> None:
        self.fitted, self.source, self.split, self.threads = fitted, source, split, threads
        where = f"split {split!r} of the Examples at {source.uri}"
        self.parts = [
            (_accumulator(raw, where), _accumulator(post, f"transformed {where}"))
            for _ in range(threads)
        ]
        # Every column is a feature of the statistics, even in an empty split.
        first_raw, first_post = self.parts[0]
        if first_raw is not None:
            first_raw.add(_empty_batch(source.schema(split)))
        if first_post is not None:
            first_post.add(_empty_batch(fitted.transformed_schema))
        self.columns = None if raw is not None else list(fitted.raw_schema.names)

    def run(self) -> Iterator[pa.RecordBatch]:
        free: queue.SimpleQueue = queue.SimpleQueue()
        for part in self.parts:
            free.put(part)

        def work(batch: pa.RecordBatch) -> pa.RecordBatch:
            raw, post = part = free.get()
            try:
                transformed = self.fitted.transform_batch(batch)
                if raw is not None:
                    raw.add(batch)
                if post is not None:
                    post.add(transformed)
                return transformed
            finally:
                free.put(part)

        batches = record_batches(
            self.source, self.split, batch_size=BATCH_SIZE, columns=self.columns
        )
        return _ordered_map(work, batches, self.threads)

    def raw_result(self) -> statistics_pb2.DatasetFeatureStatistics:
        return _merged([raw for raw, _ in self.parts])

    def post_result(self) -> statistics_pb2.DatasetFeatureStatistics:
        return _merged([post for _, post in self.parts])


def _accumulator(options: StatsOptions | None, where: str) -> StatisticsAccumulator | None:
    return StatisticsAccumulator(options, where=where) if options is not None else None


def _merged(parts: list[StatisticsAccumulator | None]) -> statistics_pb2.DatasetFeatureStatistics:
    first, *rest = parts
    assert first is not None
    for part in rest:
        first.merge(part)  # type: ignore[arg-type]
    return first.result()


def _ordered_map(
    fn: Callable[[pa.RecordBatch], pa.RecordBatch], items: Iterable[pa.RecordBatch], threads: int
) -> Iterator[pa.RecordBatch]:
    """``map(fn, items)`` on ``threads`` threads, in order, reading at most ``threads + 1``
    items ahead of the consumer (so memory stays bounded)."""
    if threads == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="transform") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
