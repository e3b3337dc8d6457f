"""Resolver and Importer nodes: artifacts that come from the store's history or from outside.

Example::

    latest = Resolver(LatestBlessedModel, model=Model, model_blessing=ModelBlessing)
    evaluator = Evaluator(..., baseline_model=latest.with_id("baseline").outputs["model"])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from conveyor.dsl.node import Channel, Node
from conveyor.types import Artifact, Model, ModelBlessing, PipelineDefinitionError

__all__ = [
    "Importer",
    "LatestArtifact",
    "LatestBlessedModel",
    "LatestSpans",
    "Resolver",
    "ResolverStrategy",
]


class ArtifactQueries(Protocol):
    """The part of the metadata store a strategy reads (kept abstract so dsl stays below it)."""

    def artifacts(self, **filters: Any) -> list[Artifact]: ...


class ResolverStrategy:
    """Chooses artifacts for a Resolver from the pipeline's history.

    Subclass it and implement :meth:`resolve`; :meth:`check` validates the channels when
    the pipeline is defined.
    """

    def check(self, node_id: str, channels: Mapping[str, Channel]) -> None:
        return None

    def resolve(
        self, store: ArtifactQueries, *, pipeline: str, channels: Mapping[str, Channel]
    ) -> dict[str, list[Artifact]]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"strategy": type(self).__name__, **vars(self)}


def candidates(store: ArtifactQueries, pipeline: str, channel: Channel) -> list[Artifact]:
    """LIVE artifacts a channel has carried in this pipeline, newest first."""
    if channel.producer is None:
        return store.artifacts(
            type_name=channel.artifact_type.type_name_of(),
            pipeline=pipeline,
            states=["LIVE"],
            newest_first=True,
        )
    return store.artifacts(
        pipeline=pipeline,
        node_id=channel.producer.id,
        output_key=channel.output_key,
        states=["LIVE"],
        newest_first=True,
    )


def _count(n: int, strategy: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PipelineDefinitionError(
            f"The 'n' parameter of {strategy} must be an int >= 1. Got {n!r}."
        )
    return n


class LatestArtifact(ResolverStrategy):
    """The newest ``n`` LIVE artifacts of each channel."""

    def __init__(self, n: int = 1) -> None:
        self.n = _count(n, "LatestArtifact")

    def resolve(
        self, store: ArtifactQueries, *, pipeline: str, channels: Mapping[str, Channel]
    ) -> dict[str, list[Artifact]]:
        return {key: candidates(store, pipeline, ch)[: self.n] for key, ch in channels.items()}


class LatestSpans(ResolverStrategy):
    """A rolling window: for each channel, the artifacts of the ``n`` latest spans (the
    latest version of each, then the newest artifact), newest span first.

    Made for ``Examples`` from an ExampleGen with ``{SPAN}`` patterns: train on the last
    ``n`` days with ``Resolver(LatestSpans(7), examples=example_gen.outputs["examples"])``.
    """

    def __init__(self, n: int = 1) -> None:
        self.n = _count(n, "LatestSpans")

    def resolve(
        self, store: ArtifactQueries, *, pipeline: str, channels: Mapping[str, Channel]
    ) -> dict[str, list[Artifact]]:
        chosen: dict[str, list[Artifact]] = {}
        for key, channel in channels.items():
            best: dict[int, Artifact] = {}
            for artifact in candidates(store, pipeline, channel):  # newest first
                span = artifact.properties.get("span")
                if not isinstance(span, int):
                    continue
                current = best.get(span)
                if current is None or _version(artifact) > _version(current):
                    best[span] = artifact
            chosen[key] = [best[s] for s in sorted(best, reverse=True)[: self.n]]
        return chosen


def _version(artifact: Artifact) -> int:
    version = artifact.properties.get("version")
    return version if isinstance(version, int) else -1


class LatestBlessedModel(ResolverStrategy):
    """The newest model whose ``ModelBlessing`` says ``blessed``, and that blessing.

    Channels: ``model`` (Model) and ``model_blessing`` (ModelBlessing). Both come back empty
    when no model has been blessed yet.
    """

    def check(self, node_id: str, channels: Mapping[str, Channel]) -> None:
        for key, expected in (("model", Model), ("model_blessing", ModelBlessing)):
            channel = channels.get(key)
            if channel is None or not issubclass(channel.artifact_type, expected):
                raise PipelineDefinitionError(
                    f"Resolver {node_id} with LatestBlessedModel needs {key}={expected.__name__} "
                    f"(or a channel of {expected.__name__}); got {channel!r}."
                )

    def resolve(
        self, store: ArtifactQueries, *, pipeline: str, channels: Mapping[str, Channel]
    ) -> dict[str, list[Artifact]]:
        models = {m.id: m for m in candidates(store, pipeline, channels["model"])}
        for blessing in candidates(store, pipeline, channels["model_blessing"]):
            model = models.get(blessing.properties.get("model_id"))
            if blessing.properties.get("blessed") and model is not None:
                return {"model": [model], "model_blessing": [blessing]}
        return {"model": [], "model_blessing": []}


class Resolver(Node):
    """A node whose outputs are artifacts chosen from history by a strategy.

    Each keyword is a channel (``trainer.outputs["model"]``, which also makes the resolver
    wait for that node) or an artifact type (``model=Model``: any artifact of that type in
    this pipeline's history, with no dependency).
    """

    kind = "resolver"

    def __init__(self, strategy: type[ResolverStrategy] | ResolverStrategy | None = None,
                 **channels: Channel | type[Artifact]) -> None:  # fmt: skip
        strategy = strategy or LatestArtifact
        if isinstance(strategy, type) and issubclass(strategy, ResolverStrategy):
            strategy = strategy()
        if not isinstance(strategy, ResolverStrategy):
            raise PipelineDefinitionError(
                f"Resolver's strategy must be a ResolverStrategy such as LatestArtifact or "
                f"LatestBlessedModel. Got {strategy!r}."
            )
        if not channels:
            raise PipelineDefinitionError("Resolver needs at least one channel, e.g. model=Model.")
        self.strategy = strategy
        self.channels: dict[str, Channel] = {}
        for key, value in channels.items():
            if isinstance(value, type) and issubclass(value, Artifact):
                value = Channel(value)
            if not isinstance(value, Channel):
                raise PipelineDefinitionError(
                    f"Resolver's '{key}' must be a channel or an artifact type. Got {value!r}."
                )
            self.channels[key] = value
        strategy.check("Resolver", self.channels)
        bound = {k: [c] for k, c in self.channels.items() if c.producer is not None}
        types = {k: c.artifact_type for k, c in self.channels.items()}
        super().__init__("Resolver", inputs=bound, params=strategy.describe(), output_types=types)


class Importer(Node):
    """Brings an existing file or folder in as an artifact (output key ``result``).

    The same ``source_uri`` and type are registered once and reused, unless ``reimport``.
    """

    kind = "importer"

    def __init__(
        self,
        source_uri: str,
        artifact_type: type[Artifact],
        *,
        properties: Mapping[str, Any] | None = None,
        reimport: bool = False,
    ) -> None:
        if not isinstance(source_uri, str) or not source_uri:
            raise PipelineDefinitionError(
                f"Importer needs a source_uri string. Got {source_uri!r}."
            )
        if not (isinstance(artifact_type, type) and issubclass(artifact_type, Artifact)):
            raise PipelineDefinitionError(
                "Importer's artifact_type must be an Artifact type such as Schema. "
                f"Got {artifact_type!r}."
            )
        self.source_uri = source_uri
        self.artifact_type = artifact_type
        params = {"source_uri": source_uri, "artifact_type": artifact_type.type_name_of(),
                  "properties": dict(properties or {}), "reimport": bool(reimport)}  # fmt: skip
        super().__init__(
            "Importer", inputs={}, params=params, output_types={"result": artifact_type}
        )
