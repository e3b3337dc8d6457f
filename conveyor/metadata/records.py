"""Plain records the store hands back: what ran, when, and with which artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: RUNNING while its process works; COMPLETE or FAILED when it ends; CACHED when an earlier
#: execution's outputs were reused; ABANDONED when its runner died before it ended.
EXECUTION_STATES = ("RUNNING", "COMPLETE", "CACHED", "FAILED", "ABANDONED")


@dataclass
class RunRecord:
    run_id: str
    pipeline: str
    status: str
    started_at: float | None
    ended_at: float | None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExecutionRecord:
    execution_id: int
    pipeline: str
    node_id: str
    type_name: str
    state: str
    started_at: float
    ended_at: float | None
    cache_key: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    log_uri: str | None = None
    error: str | None = None
    pid: int | None = None
    host: str | None = None
    run_ids: list[str] = field(default_factory=list)
    inputs: dict[str, list[int]] = field(default_factory=dict)
    outputs: dict[str, list[int]] = field(default_factory=dict)
