"""The lineage the UI draws: like :func:`conveyor.metadata.lineage`, but without the cached
reuses, so an artifact read by a thousand cached re-runs draws one consumer, not a thousand.

A cache hit (a CACHED execution) records a new execution whose outputs are the artifacts an
earlier execution wrote; it adds no data, only noise, and a failed one made nothing.
Downstream, a complete (or running) execution is kept when it first wrote at least one of
its outputs, or, when it wrote nothing, when it is the first to read that input under that
key (a resolver re-run each time). The walk stops once ``limit`` executions are kept.

Example::

    graph = walk(store, artifact_id=7)
    graph.executions, graph.edges
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from conveyor.metadata import ExecutionRecord, MetadataStore
from conveyor.types import Artifact

__all__ = ["ProducerCache", "Walk", "walk"]

Edge = tuple[int, int, str, str]  # (artifact_id, execution_id, INPUT | OUTPUT, key)
_MADE_SOMETHING = ("RUNNING", "COMPLETE")


@dataclass
class Walk:
    artifact_id: int
    artifacts: dict[int, Artifact] = field(default_factory=dict)
    executions: dict[int, ExecutionRecord] = field(default_factory=dict)
    edges: set[Edge] = field(default_factory=set)
    upstream: set[int] = field(default_factory=set)
    downstream: set[int] = field(default_factory=set)
    cut: bool = False


def walk(
    store: MetadataStore,
    artifact_id: int,
    *,
    limit: int = 60,
    producers: ProducerCache | None = None,
) -> Walk:
    """Upstream through original producers, downstream through original consumers.

    ``producers`` remembers who made each artifact between calls (that never changes once
    recorded), so a second look at the same neighbourhood reads only what is downstream."""
    graph = Walk(artifact_id)
    cache = producers if producers is not None else ProducerCache()
    frontier = {artifact_id}
    while frontier:
        made = cache.lookup(store, frontier)
        for edges in made.values():
            graph.edges.update(edges)
        frontier = {e[0] for edges in made.values() for e in edges if e[2] == "INPUT"}
        frontier -= graph.upstream | {artifact_id}
        graph.upstream |= frontier
    _downstream(store, graph, limit)
    ids = sorted({artifact_id} | {e[0] for e in graph.edges})
    graph.artifacts = {a.id: a for a in store.artifacts(artifact_ids=ids)}
    missing = sorted({e[1] for e in graph.edges} - set(graph.executions))
    graph.executions.update((e.execution_id, e) for e in store.executions(execution_ids=missing))
    return graph


class ProducerCache:
    """Artifact id → the edges that made it: its first writer's OUTPUT edge to it and that
    writer's INPUT edges (none for an artifact nobody wrote). Bounded: cleared when full."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._made: dict[int, tuple[Edge, ...]] = {}
        self._lock = threading.Lock()

    def lookup(self, store: MetadataStore, artifact_ids: set[int]) -> dict[int, tuple[Edge, ...]]:
        with self._lock:
            found = {a: self._made[a] for a in artifact_ids if a in self._made}
        unknown = sorted(artifact_ids - set(found))
        if not unknown:
            return found
        first: dict[int, Edge] = {}
        for edge in store.edges(artifact_ids=unknown):
            if edge[2] == "OUTPUT" and (edge[0] not in first or edge[1] < first[edge[0]][1]):
                first[edge[0]] = edge
        writers = sorted({e[1] for e in first.values()})
        inputs = [e for e in store.edges(execution_ids=writers) if e[2] == "INPUT"]
        for artifact in unknown:
            made_by = first.get(artifact)
            read = tuple(e for e in inputs if made_by and e[1] == made_by[1])
            found[artifact] = (made_by, *read) if made_by else ()
        with self._lock:
            if len(self._made) + len(unknown) > self.size:
                self._made.clear()
            self._made.update((a, found[a]) for a in unknown)
        return found


def _downstream(store: MetadataStore, graph: Walk, limit: int) -> None:
    """Follow the complete and running readers (the store filters out cache hits and
    failures), keeping the first writer of each output."""
    frontier = {graph.artifact_id}
    while frontier and not graph.cut:
        reads = [
            e
            for e in store.edges(artifact_ids=sorted(frontier))
            if e[2] == "INPUT" and e[0] in frontier
        ]
        records = {
            r.execution_id: r
            for r in store.readers(sorted(frontier), states=_MADE_SOMETHING)
            if r.execution_id not in graph.executions
        }
        around = [edge for r in records.values() for edge in _edges_of(r)]
        originals = _originals([e for e in reads if e[1] in records], around)
        if len(graph.executions) + len(originals) > limit:
            room = max(0, limit - len(graph.executions))
            originals, graph.cut = set(sorted(originals)[:room]), True
        graph.executions.update((i, records[i]) for i in originals)
        graph.edges.update(e for e in around if e[1] in originals)
        frontier = {e[0] for e in around if e[1] in originals and e[2] == "OUTPUT"}
        frontier -= graph.downstream | {graph.artifact_id}
        graph.downstream |= frontier


def _edges_of(record: ExecutionRecord) -> list[Edge]:
    return [
        (a, record.execution_id, kind, key)
        for kind, links in (("INPUT", record.inputs), ("OUTPUT", record.outputs))
        for key, ids in links.items()
        for a in ids
    ]


def _first_writers(edges: Iterable[Edge]) -> set[int]:
    first: dict[int, int] = {}
    for artifact, execution, kind, _ in edges:
        if kind == "OUTPUT":
            first[artifact] = min(execution, first.get(artifact, execution))
    return set(first.values())


def _originals(reads: list[Edge], around: list[Edge]) -> set[int]:
    """Of the executions that read, those that first wrote an output, and of those that wrote
    nothing, the first to read each (artifact, key)."""
    writers = {e[1] for e in around if e[2] == "OUTPUT"}
    keep = _first_writers(around) & {e[1] for e in reads}
    first_reader: dict[tuple[int, str], int] = {}
    for artifact, execution, _, key in reads:
        if execution not in writers:
            slot = (artifact, key)
            first_reader[slot] = min(execution, first_reader.get(slot, execution))
    return keep | set(first_reader.values())
