"""Conveyor: framework-neutral ML pipelines.

Example::

    from conveyor import component, Input, Output, Param, Pipeline, LocalRunner
    from conveyor.types import Examples, Model

    @component
    def Trainer(examples: Input[Examples], model: Output[Model], epochs: Param[int] = 10):
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.dsl import (
    Importer,
    Input,
    LatestArtifact,
    LatestBlessedModel,
    LatestSpans,
    Output,
    Param,
    Pipeline,
    Resolver,
    component,
    container_component,
)
from conveyor.types import ConveyorError

if TYPE_CHECKING:
    from conveyor.frameworks.bundle import load_model
    from conveyor.orchestration import LocalRunner, RayRunner

__version__ = "0.1.0"

__all__ = [
    "ConveyorError",
    "Importer",
    "Input",
    "LatestArtifact",
    "LatestBlessedModel",
    "LatestSpans",
    "LocalRunner",
    "Output",
    "Param",
    "Pipeline",
    "RayRunner",
    "Resolver",
    "component",
    "container_component",
    "load_model",
]


def __getattr__(name: str) -> Any:
    # The runner pulls in SQLAlchemy; load it on first use so `import conveyor` stays fast.
    if name == "LocalRunner":
        from conveyor.orchestration import LocalRunner

        return LocalRunner
    if name == "RayRunner":  # Ray itself is imported only when a run starts
        from conveyor.orchestration import RayRunner

        return RayRunner
    if name == "load_model":  # bundles need NumPy and Arrow: load them only when used
        from conveyor.frameworks.bundle import load_model

        return load_model
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
