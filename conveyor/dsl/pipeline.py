"""``Pipeline``: a named DAG of nodes, checked when it is defined."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

from conveyor.dsl.node import Node, check_name
from conveyor.settings import default_metadata_url, default_pipeline_root
from conveyor.types import PipelineDefinitionError

__all__ = ["Pipeline"]


class Pipeline:
    """A pipeline: its nodes, where its artifacts go (``root``) and its metadata store.

    Example::

        pipeline = Pipeline("penguin", [example_gen, statistics_gen, trainer])
        LocalRunner().run(pipeline)
    """

    def __init__(
        self,
        name: str,
        components: Sequence[Node],
        root: str | Path | None = None,
        metadata_url: str | None = None,
        enable_cache: bool = True,
    ) -> None:
        self.name = check_name("Pipeline name", name)
        self.nodes = _check_nodes(name, components)
        self.root = _absolute(root) if root is not None else str(default_pipeline_root(name))
        self.metadata_url = metadata_url or default_metadata_url()
        self.enable_cache = bool(enable_cache)
        self.order = _topological_order(self.nodes)
        self.source_file = _caller_file()
        self._by_id = {node.id: node for node in self.nodes}

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}: {', '.join(n.id for n in self.order)}>"

    def node(self, node_id: str) -> Node:
        if node_id not in self._by_id:
            raise PipelineDefinitionError(
                f"Pipeline {self.name} has no node '{node_id}'. Its nodes are: "
                f"{', '.join(n.id for n in self.order)}."
            )
        return self._by_id[node_id]

    def upstream_of(self, node_id: str) -> set[str]:
        """Every node ``node_id`` depends on, transitively (not itself)."""
        return _closure(self.node(node_id), lambda n: n.upstream_nodes)

    def downstream_of(self, node_id: str) -> set[str]:
        """Every node that depends on ``node_id``, transitively (not itself)."""
        children: dict[str, list[Node]] = {n.id: [] for n in self.nodes}
        for node in self.nodes:
            for up in node.upstream_nodes:
                children[up.id].append(node)
        return _closure(self.node(node_id), lambda n: children[n.id])


def _check_nodes(name: str, components: Sequence[Node]) -> list[Node]:
    nodes = list(components)
    for item in nodes:
        if not isinstance(item, Node):
            hint = " (call the component to make a node)" if callable(item) else ""
            raise PipelineDefinitionError(
                f"Pipeline {name}: components must be nodes{hint}; got {item!r}."
            )
    seen: dict[str, Node] = {}
    for node in nodes:
        if node.id in seen:
            if seen[node.id] is node:
                raise PipelineDefinitionError(
                    f"Pipeline {name} lists node {node.id} twice; list each node once."
                )
            raise PipelineDefinitionError(
                f"Pipeline {name} has two nodes with id '{node.id}' ({seen[node.id].type_name} "
                f"and {node.type_name}). Give one a unique id with .with_id('...')."
            )
        seen[node.id] = node
    members = {id(n) for n in nodes}
    for node in nodes:
        for up in node.upstream_nodes:
            if id(up) not in members:
                raise PipelineDefinitionError(
                    f"Pipeline {name}: {node.id} takes input from {up.id} ({up.type_name}), "
                    f"which is not in the pipeline's components. Add {up.id} to the list."
                )
    return nodes


def _topological_order(nodes: list[Node]) -> list[Node]:
    """Kahn's algorithm, keeping the user's order among ready nodes; names a cycle if any."""
    remaining = {n.id: {u.id for u in n.upstream_nodes} for n in nodes}
    order: list[Node] = []
    while remaining:
        ready = [n for n in nodes if n.id in remaining and not remaining[n.id]]
        if not ready:
            cycle = _find_cycle({k: v for k, v in remaining.items()})
            raise PipelineDefinitionError(
                f"The pipeline has a cycle: {' -> '.join(cycle)}. Remove one of these "
                "dependencies (an input or an add_upstream call)."
            )
        for node in ready:
            order.append(node)
            del remaining[node.id]
        for deps in remaining.values():
            deps.difference_update(n.id for n in ready)
    return order


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    start = next(iter(graph))
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = next(iter(sorted(graph[node])))
    return [*path[path.index(node) :], node]


def _closure(start: Node, step) -> set[str]:
    found: set[str] = set()
    stack = list(step(start))
    while stack:
        node = stack.pop()
        if node.id not in found:
            found.add(node.id)
            stack.extend(step(node))
    return found


def _absolute(root: str | Path) -> str:
    text = str(root)
    return text if "://" in text else str(Path(text).expanduser().resolve())


def _caller_file() -> str | None:
    for frame in inspect.stack(context=0)[2:]:
        if not frame.filename.startswith("<") and "conveyor/dsl" not in frame.filename:
            return frame.filename
    return None
