"""Writing pipelines: components, nodes, channels, resolvers and importers."""

from conveyor.dsl.component import Component, ComponentSpec, Input, Output, Param, component
from conveyor.dsl.container import ContainerComponent, container_component
from conveyor.dsl.node import Channel, Node
from conveyor.dsl.pipeline import Pipeline
from conveyor.dsl.resolver import (
    Importer,
    LatestArtifact,
    LatestBlessedModel,
    LatestSpans,
    Resolver,
    ResolverStrategy,
)

__all__ = [
    "Channel",
    "Component",
    "ComponentSpec",
    "ContainerComponent",
    "Importer",
    "Input",
    "LatestArtifact",
    "LatestBlessedModel",
    "LatestSpans",
    "Node",
    "Output",
    "Param",
    "Pipeline",
    "Resolver",
    "ResolverStrategy",
    "component",
    "container_component",
]
