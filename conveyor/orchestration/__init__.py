"""Running pipelines: the local runner, the launcher it shares with other runners, caching."""

from conveyor.orchestration.gc import GcReport, collect_garbage
from conveyor.orchestration.launcher import Launcher
from conveyor.orchestration.local_runner import LocalRunner, select_nodes
from conveyor.orchestration.results import NODE_STATES, NodeResult, RunResult

__all__ = [
    "NODE_STATES",
    "GcReport",
    "Launcher",
    "LocalRunner",
    "NodeResult",
    "RunResult",
    "collect_garbage",
    "select_nodes",
]
