"""Lineage: which data, code and parameters made an artifact, and what was made from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.metadata.records import ExecutionRecord
from conveyor.metadata.store import MetadataStore
from conveyor.types import Artifact, MetadataError


@dataclass
class LineageGraph:
    """Artifacts and executions around one artifact, joined by input/output events.

    ``edges`` are ``(artifact_id, execution_id, "INPUT" | "OUTPUT", key)``.
    """

    artifact_id: int
    artifacts: dict[int, Artifact] = field(default_factory=dict)
    executions: dict[int, ExecutionRecord] = field(default_factory=dict)
    edges: list[tuple[int, int, str, str]] = field(default_factory=list)
    upstream: set[int] = field(default_factory=set)
    downstream: set[int] = field(default_factory=set)

    def producer(self, artifact_id: int) -> ExecutionRecord | None:
        """The execution that wrote the artifact (not a later cached reuse of it)."""
        ids = [e for a, e, kind, _ in self.edges if a == artifact_id and kind == "OUTPUT"]
        return self.executions.get(min(ids)) if ids else None


def lineage(store: MetadataStore, artifact_id: int, *, max_depth: int = 50) -> LineageGraph:
    """Walk upstream through producers and their inputs, and downstream through consumers
    and their outputs, starting at ``artifact_id``."""
    root = store.get_artifact(artifact_id)
    if root is None:
        raise MetadataError(
            f"No artifact {artifact_id} in the metadata store at {store.url}; list artifacts "
            "with `conveyor artifacts`."
        )
    graph = LineageGraph(artifact_id=artifact_id)
    edges: set[tuple[int, int, str, str]] = set()

    frontier, seen = {artifact_id}, {artifact_id}
    for _ in range(max_depth):
        touching = store.edges(artifact_ids=sorted(frontier))
        producers = _original_producers(touching, frontier)
        inputs = store.edges(execution_ids=sorted(producers))
        edges.update(e for e in touching if e[1] in producers)
        edges.update(e for e in inputs if e[2] == "INPUT")
        frontier = {a for a, _, kind, _ in inputs if kind == "INPUT"} - seen
        seen |= frontier
        graph.upstream |= frontier
        if not frontier:
            break

    frontier, seen = {artifact_id}, {artifact_id}
    for _ in range(max_depth):
        consumers = {e for a, e, kind, _ in store.edges(artifact_ids=sorted(frontier))
                     if kind == "INPUT" and a in frontier}  # fmt: skip
        around = store.edges(execution_ids=sorted(consumers))
        edges.update(around)
        frontier = {a for a, _, kind, _ in around if kind == "OUTPUT"} - seen
        seen |= frontier
        graph.downstream |= frontier
        if not frontier:
            break

    graph.edges = sorted(edges)
    artifact_ids = {root.id} | {a for a, *_ in edges}
    graph.artifacts = {a.id: a for a in store.artifacts(artifact_ids=sorted(artifact_ids))}
    execution_ids = sorted({e for _, e, *_ in edges})
    graph.executions = {e.execution_id: e for e in store.executions(execution_ids=execution_ids)}
    return graph


def _original_producers(edges: list[tuple[int, int, str, str]], artifact_ids: set[int]) -> set[int]:
    first: dict[int, int] = {}
    for artifact_id, execution_id, kind, _ in edges:
        if kind == "OUTPUT" and artifact_id in artifact_ids:
            first[artifact_id] = min(execution_id, first.get(artifact_id, execution_id))
    return set(first.values())
