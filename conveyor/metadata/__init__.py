"""The metadata store (ML Metadata's data model on SQLAlchemy) and lineage queries."""

from conveyor.metadata.lineage import LineageGraph, lineage
from conveyor.metadata.records import EXECUTION_STATES, ExecutionRecord, RunRecord
from conveyor.metadata.store import MetadataStore, normalize_url

__all__ = [
    "EXECUTION_STATES",
    "ExecutionRecord",
    "LineageGraph",
    "MetadataStore",
    "RunRecord",
    "lineage",
    "normalize_url",
]
