"""Fitting a traced graph: analyzers are accumulated over the data, one pass per phase.

Analyzers whose inputs need no unfitted analyzer run in the first pass; those that
analyze the output of another analyzer's op (for instance z-scores of vocabulary ids) wait
for a later pass. Within a pass, batches go to a few threads, each into its own
accumulators (a :class:`Partial`), which are merged at the end: the same merge that
combines partial results from other machines, when ``fit(..., run_pass=...)`` spreads the
passes over a cluster (Transform does under the Ray runner).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from conveyor.io.parallel import accumulate_in_threads, default_threads
from conveyor.transform.graph import Graph
from conveyor.transform.interpreter import evaluate
from conveyor.transform.registry import REGISTRY

logger = logging.getLogger(__name__)

Batches = Callable[[list[str]], Iterable[pa.RecordBatch]]  # columns -> a fresh pass


@dataclass
class Partial:
    """What one share of a pass found: the ready analyzers' accumulators by node id, and
    the null count of each read column. Picklable, so a share may come from another
    process or machine."""

    accs: dict[int, Any]
    nulls: dict[str, int]


RunPass = Callable[[Graph, list[int], list[str]], Partial]
"""One pass over the data: ``(graph, ready analyzer ids, columns)`` -> the merged partial."""


def new_partial(graph: Graph, ready: list[int], columns: list[str]) -> Partial:
    accs = {i: REGISTRY.get_analyzer(graph.node(i).op).create(graph.node(i).attrs) for i in ready}
    return Partial(accs, dict.fromkeys(columns, 0))


def add_batch(graph: Graph, ready: list[int], partial: Partial, batch: Any) -> None:
    """Add one record batch (or table) to ``partial``."""
    nodes = [graph.node(i) for i in ready]
    values = evaluate(graph, batch, sorted({i for node in nodes for i in node.inputs}))
    for node in nodes:
        columns = [values[i] for i in node.inputs]
        analyzer = REGISTRY.get_analyzer(node.op)
        partial.accs[node.id] = analyzer.add(partial.accs[node.id], columns, node.attrs)
    for name in partial.nulls:
        partial.nulls[name] += batch.column(name).null_count


def merge_partials(graph: Graph, ready: list[int], into: Partial, other: Partial) -> Partial:
    """Fold ``other`` into ``into`` with each analyzer's ``merge``; returns ``into``."""
    for node_id in ready:
        node = graph.node(node_id)
        analyzer = REGISTRY.get_analyzer(node.op)
        into.accs[node_id] = analyzer.merge(into.accs[node_id], other.accs[node_id], node.attrs)
    for name, count in other.nulls.items():
        into.nulls[name] += count
    return into


def threaded_pass(
    batches: Callable[[list[str]], Iterable[pa.RecordBatch]], threads: int
) -> RunPass:
    """A pass over ``batches(columns)`` on ``threads`` threads, each into its own partial,
    merged at the end."""

    def run(graph: Graph, ready: list[int], columns: list[str]) -> Partial:
        parts = [new_partial(graph, ready, columns) for _ in range(threads)]
        add = functools.partial(add_batch, graph, ready)
        accumulate_in_threads(batches(columns), parts, add, name="transform-fit")
        return functools.reduce(functools.partial(merge_partials, graph, ready), parts)

    return run


def fit_analyzers(graph: Graph, run_pass: RunPass, columns: list[str]) -> dict[str, int]:
    """Fit every analyzer of ``graph`` in place, one pass per phase; returns the null counts
    of ``columns`` (from the first pass; a graph without analyzers still gets one pass)."""
    nulls: dict[str, int] | None = None
    passes = 0
    while True:
        pending = [n for n in graph.analyzers if n.value is None]
        if not pending and nulls is not None:
            return nulls
        ready = [n.id for n in pending if not graph.unfitted_below(n.id)]
        partial = run_pass(graph, ready, columns)
        for node_id in ready:
            node = graph.node(node_id)
            node.value = REGISTRY.get_analyzer(node.op).extract(partial.accs[node_id], node.attrs)
        nulls = partial.nulls if nulls is None else nulls
        passes += 1
        if ready:
            logger.info("Fitted %d analyzer(s) in pass %d", len(ready), passes)


def fit(
    preprocessing_fn: Callable[[Any], Any],
    data: Any,
    *,
    schema: Any = None,
    split: str = "train",
    batch_size: int = 65536,
    threads: int | None = None,
    run_pass: RunPass | None = None,
) -> Any:
    """Trace ``preprocessing_fn`` against ``data``'s raw features and fit its analyzers over
    ``data``: a pyarrow Table, a pandas DataFrame, an Examples artifact or folder (its
    ``split``), or Parquet/CSV files. ``schema`` (a TFMD ``Schema`` or a ``schema.pbtxt``
    path) fixes the raw types and says which features may be missing at serving.

    ``run_pass`` replaces the threaded passes over ``data`` (e.g. with data-parallel ones
    over a cluster); ``data`` then only gives the raw schema.

    Returns a :class:`~conveyor.transform.fitted.FittedTransform`.
    """
    from conveyor.transform import dtypes
    from conveyor.transform.data import open_data
    from conveyor.transform.fitted import FittedTransform
    from conveyor.transform.tracing import trace

    source = open_data(data, split, batch_size)
    required = _required_features(schema)
    raw = pa.schema([pa.field(f.name, dtypes.normalize(f.type)) for f in source.schema])
    if schema is not None:
        raw = _with_schema_types(raw, schema)
    graph = trace(preprocessing_fn, raw)
    used = graph.used_inputs()
    run_pass = run_pass or threaded_pass(source.batches, threads or default_threads())
    nulls = fit_analyzers(graph, run_pass, used)
    graph.raw_schema = pa.schema(
        [
            pa.field(name, raw.field(name).type, nullable=_nullable(name, nulls, required))
            for name in used
        ]
    )
    return FittedTransform(graph)


def _nullable(name: str, nulls: dict[str, int], required: set[str] | None) -> bool:
    if required is not None:
        return name not in required
    return nulls[name] > 0


def _load_schema(schema: Any) -> Any:
    if isinstance(schema, str) or hasattr(schema, "__fspath__"):
        from conveyor.io.tfmd import load_schema

        return load_schema(str(schema))
    return schema


def _required_features(schema: Any) -> set[str] | None:
    """Features the schema says are always present (``presence.min_fraction`` 1)."""
    schema = _load_schema(schema)
    if schema is None:
        return None
    return {f.name for f in schema.feature if f.presence.min_fraction >= 1.0}


def _with_schema_types(raw: pa.Schema, schema: Any) -> pa.Schema:
    from conveyor.io.tfmd import arrow_schema
    from conveyor.transform import dtypes

    typed = arrow_schema(_load_schema(schema))
    fields = [
        pa.field(f.name, dtypes.normalize(typed.field(f.name).type)) if f.name in typed.names else f
        for f in raw
    ]
    return pa.schema(fields)
