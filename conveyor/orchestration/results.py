"""What a run reports: its status and each node's state, execution, outputs and log."""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.types import Artifact, ExecutionError

#: States a node ends a run in. SKIPPED: not run because something it depends on failed.
NODE_STATES = ("COMPLETE", "CACHED", "FAILED", "SKIPPED", "ABANDONED")


@dataclass
class NodeResult:
    node_id: str
    state: str
    execution_id: int | None = None
    outputs: dict[str, list[Artifact]] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    log_path: str | None = None
    attempts: int = 0
    resumed: bool = False

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    @property
    def ok(self) -> bool:
        return self.state in ("COMPLETE", "CACHED")


@dataclass
class RunResult:
    """The outcome of ``LocalRunner.run``: ``status`` is COMPLETE or FAILED."""

    run_id: str
    pipeline: str
    status: str
    nodes: dict[str, NodeResult]
    resume_command: str | None = None
    message: str | None = None

    def __getitem__(self, node_id: str) -> NodeResult:
        return self.nodes[node_id]

    @property
    def ok(self) -> bool:
        return self.status == "COMPLETE"

    def raise_for_status(self) -> RunResult:
        if not self.ok:
            raise ExecutionError(self.message or f"Run {self.run_id} {self.status}.")
        return self
