"""The heavy components' data-parallel passes on a Ray cluster (see
:mod:`conveyor.io.distributed`): statistics, Transform's analysis and apply, predictions.

Each gives what the component's local pass gives, from partial results made per Ray Data
block and merged here with the local pass's own merge. What runs on the workers are the
small picklable callables below.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from tensorflow_metadata.proto.v0 import statistics_pb2

from conveyor.io.distributed import ENGINE, map_reduce, map_write, use_ray_data
from conveyor.io.examples import ExamplesSource
from conveyor.types import Artifact
from conveyor.validation.statistics import (
    StatisticsAccumulator,
    StatsOptions,
    statistics_of_examples,
)

__all__ = [
    "ENGINE",
    "SplitWritten",
    "cluster_pass",
    "record_engine",
    "split_statistics",
    "transform_on_cluster",
    "use_ray_data",
]


def record_engine(artifact: Artifact, splits: Sequence[str]) -> None:
    """Say in ``artifact``'s properties which splits were processed with Ray Data."""
    if splits:
        artifact.properties.update(engine=ENGINE, ray_data_splits=list(splits))


# ---------------------------------------------------------------------- statistics
def statistics_on_cluster(
    source: ExamplesSource, split: str, options: StatsOptions
) -> statistics_pb2.DatasetFeatureStatistics:
    """What :func:`statistics_of_examples` gives, from per-block partial statistics."""
    where = f"split {split!r} of the Examples at {source.uri}"
    create = functools.partial(StatisticsAccumulator, options, where=where)
    add, merge = StatisticsAccumulator.add, StatisticsAccumulator.merge
    merged = map_reduce(source, split, create, add, merge)
    merged.add(_empty(source.schema(split)))  # every column is a feature, even without rows
    return merged.result()


def split_statistics(
    source: ExamplesSource, split: str, options: StatsOptions, what: str, engines: list[str]
) -> statistics_pb2.DatasetFeatureStatistics:
    """Statistics of one split, on the cluster when it pays (``split`` then joins
    ``engines``), else in this process."""
    if use_ray_data(source, split, what):
        engines.append(split)
        return statistics_on_cluster(source, split, options)
    return statistics_of_examples(source, split, options)


# ---------------------------------------------------------------------- Transform
def cluster_pass(source: ExamplesSource, splits: Sequence[str]) -> Any:
    """A ``run_pass`` for :func:`conveyor.transform.fit`: each pass a map-reduce of the
    analyzers' accumulators over the blocks of ``splits``."""
    from conveyor.transform.fitting import add_batch, merge_partials, new_partial

    def run(graph: Any, ready: list[int], columns: list[str]) -> Any:
        create = functools.partial(new_partial, graph, ready, columns)
        add = functools.partial(add_batch, graph, ready)
        merge = functools.partial(merge_partials, graph, ready)
        return map_reduce(source, splits, create, add, merge, columns=columns)

    return run


@dataclass
class SplitWritten:
    """One transformed split: rows, null counts by output, statistics (None when not
    asked for)."""

    rows: int
    nulls: dict[str, int]
    raw: statistics_pb2.DatasetFeatureStatistics | None
    post: statistics_pb2.DatasetFeatureStatistics | None


@dataclass
class _Extras:
    """Per block on a worker: the raw and transformed statistics and the outputs' nulls."""

    raw: StatsOptions | None
    post: StatsOptions | None
    where: str
    names: list[str]

    def create(self) -> tuple:
        raw = StatisticsAccumulator(self.raw, where=self.where) if self.raw else None
        where = f"transformed {self.where}"
        post = StatisticsAccumulator(self.post, where=where) if self.post else None
        return raw, post, dict.fromkeys(self.names, 0)

    def add(self, acc: tuple, batch: pa.RecordBatch, transformed: pa.Table) -> None:
        raw, post, nulls = acc
        if raw is not None:
            raw.add(batch)
        if post is not None:
            post.add(transformed)
        for name in self.names:
            nulls[name] += transformed.column(name).null_count


def transform_on_cluster(
    fitted: Any,
    source: ExamplesSource,
    split: str,
    uri: str,
    raw: StatsOptions | None,
    post: StatsOptions | None,
) -> SplitWritten:
    """Transform ``split`` into ``{uri}/Split-{split}`` block by block on the cluster."""
    where = f"split {split!r} of the Examples at {source.uri}"
    columns = None if raw is not None else list(fitted.raw_schema.names)
    schema = fitted.transformed_schema
    extras = _Extras(raw, post, where, schema.names)
    written = map_write(source, split, fitted.transform_batch, uri, schema,
                        columns=columns, extras=extras)  # fmt: skip
    raw_parts = [StatisticsAccumulator(raw, where=where)] if raw else []
    post_parts = [StatisticsAccumulator(post, where=f"transformed {where}")] if post else []
    if raw_parts:
        raw_parts[0].add(_empty(source.schema(split)))
    if post_parts:
        post_parts[0].add(_empty(schema))
    nulls = dict.fromkeys(schema.names, 0)
    for block_raw, block_post, block_nulls in written.extras:
        raw_parts += [block_raw] if block_raw is not None else []
        post_parts += [block_post] if block_post is not None else []
        for name, count in block_nulls.items():
            nulls[name] += count
    return SplitWritten(written.rows, nulls, _result(raw_parts), _result(post_parts))


def _result(parts: list[StatisticsAccumulator]) -> statistics_pb2.DatasetFeatureStatistics | None:
    if not parts:
        return None
    return functools.reduce(StatisticsAccumulator.merge, parts).result()


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
