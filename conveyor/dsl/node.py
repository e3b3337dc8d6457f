"""Nodes (component instances in a pipeline) and the channels that wire them together."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from conveyor.types import Artifact, PipelineDefinitionError

if TYPE_CHECKING:
    from conveyor.dsl.component import Component

__all__ = ["Channel", "Node", "Outputs"]

_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    """Node ids and pipeline names become folder names: keep them to safe characters."""
    if not isinstance(name, str) or not _NODE_ID.match(name):
        raise PipelineDefinitionError(
            f"{kind} {name!r} is not a valid name: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit (at most 128 characters)."
        )
    return name


class Channel:
    """A typed stream of artifacts: one output of one node, or (with no producer) every
    artifact of a type in the pipeline's history, which a Resolver can read."""

    def __init__(
        self,
        artifact_type: type[Artifact],
        producer: Node | None = None,
        output_key: str | None = None,
    ) -> None:
        self.artifact_type = artifact_type
        self.producer = producer
        self.output_key = output_key

    def describe(self) -> str:
        if self.producer is None:
            return f"Channel({self.artifact_type.type_name_of()})"
        return f"{self.producer.id}.outputs['{self.output_key}']"

    def __repr__(self) -> str:
        return f"<{self.describe()}: {self.artifact_type.type_name_of()}>"


class Outputs(Mapping[str, Channel]):
    """A node's output channels by key; an unknown key names the ones that exist."""

    def __init__(self, node: Node, types: Mapping[str, type[Artifact]]) -> None:
        self._node = node
        self._channels = {key: Channel(t, node, key) for key, t in types.items()}

    def __getitem__(self, key: str) -> Channel:
        if key not in self._channels:
            known = ", ".join(sorted(self._channels)) or "none"
            raise PipelineDefinitionError(
                f"{self._node.id} has no output '{key}'. Its outputs are: {known}."
            )
        return self._channels[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)


class Node:
    """One instance of a component in a pipeline. Made by calling a component."""

    #: How the runner executes it: a component function, a resolver or an importer.
    kind = "component"

    def __init__(
        self,
        type_name: str,
        *,
        component: Component | None = None,
        inputs: Mapping[str, list[Channel] | None],
        params: Mapping[str, Any],
        output_types: Mapping[str, type[Artifact]],
    ) -> None:
        self.type_name = type_name
        self.id = check_name("Node id", type_name)
        self.component = component
        self.inputs = dict(inputs)
        self.params = dict(params)
        self.outputs = Outputs(self, output_types)
        self.enable_cache: bool | None = None
        self.retries = 0
        self.retry_backoff = 1.0
        self.resources: dict[str, float] = {}
        self._explicit_upstream: list[Node] = []

    def __repr__(self) -> str:
        return f"<Node {self.id} ({self.type_name})>"

    def with_id(self, node_id: str) -> Node:
        """Rename the node (the default id is the component's name)."""
        self.id = check_name("Node id", node_id)
        return self

    def with_options(
        self,
        *,
        enable_cache: bool | None = None,
        retries: int | None = None,
        retry_backoff: float | None = None,
        resources: Mapping[str, float] | None = None,
    ) -> Node:
        """Per-node caching and retries (``retries`` extra attempts, waiting
        ``retry_backoff * 2**attempt`` seconds between them), and what one execution
        requests from a cluster (``resources={"num_cpus": 4, "num_gpus": 1, "memory":
        8e9}``, memory in bytes; runners that place nodes on a cluster honour them)."""
        if resources is not None:
            self.resources = check_resources(f"The 'resources' option of {self.id}", resources)
        if enable_cache is not None:
            self.enable_cache = bool(enable_cache)
        if retries is not None:
            if not isinstance(retries, int) or retries < 0:
                raise PipelineDefinitionError(
                    f"The 'retries' option of {self.id} must be an int >= 0. Got {retries!r}."
                )
            self.retries = retries
        if retry_backoff is not None:
            if not isinstance(retry_backoff, int | float) or retry_backoff < 0:
                raise PipelineDefinitionError(
                    f"The 'retry_backoff' option of {self.id} must be seconds >= 0. "
                    f"Got {retry_backoff!r}."
                )
            self.retry_backoff = float(retry_backoff)
        return self

    def add_upstream(self, node: Node) -> Node:
        """Run after ``node`` even though no artifact flows between them."""
        if not isinstance(node, Node):
            raise PipelineDefinitionError(
                f"{self.id}.add_upstream() takes a node, got {type(node).__name__}."
            )
        self._explicit_upstream.append(node)
        return self

    @property
    def upstream_nodes(self) -> list[Node]:
        found: dict[int, Node] = {}
        for channels in self.inputs.values():
            for channel in channels or ():
                if channel.producer is not None:
                    found.setdefault(id(channel.producer), channel.producer)
        for node in self._explicit_upstream:
            found.setdefault(id(node), node)
        return list(found.values())


RESOURCE_NAMES = ("num_cpus", "num_gpus", "memory")


def check_resources(what: str, resources: Mapping[str, float]) -> dict[str, float]:
    """``resources`` as a plain dict, after checking its names and amounts."""
    if not isinstance(resources, Mapping):
        raise PipelineDefinitionError(
            f"{what} must be a dict such as {{'num_cpus': 2}}. Got {resources!r}."
        )
    for name, amount in resources.items():
        if name not in RESOURCE_NAMES:
            raise PipelineDefinitionError(
                f"{what} names {name!r}; use {', '.join(RESOURCE_NAMES)}."
            )
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise PipelineDefinitionError(f"{what}: {name} must be a number >= 0. Got {amount!r}.")
    return {name: float(amount) for name, amount in resources.items()}
