"""One exception tree for everything Conveyor raises on purpose."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base of every error Conveyor raises on purpose.

    Messages say what was expected, what was found, where, and what to do next.
    """


class PipelineDefinitionError(ConveyorError):
    """A component, node or pipeline is defined or wired wrongly (found before anything runs)."""


class MetadataError(ConveyorError):
    """The metadata store cannot be opened, read or upgraded."""


class ExecutionError(ConveyorError):
    """A node's execution failed while the pipeline ran."""


class ResolutionError(ConveyorError):
    """A node's inputs could not be resolved from the metadata store."""
