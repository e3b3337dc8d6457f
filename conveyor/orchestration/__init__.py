"""Running pipelines: the local runner, the launcher it shares with other runners, caching,
one node on its own (each Kubeflow step) and the Kubeflow compiler."""

from conveyor.orchestration.gc import GcReport, collect_garbage
from conveyor.orchestration.kubeflow import compile_kfp
from conveyor.orchestration.launcher import Launcher
from conveyor.orchestration.local_runner import LocalRunner, select_nodes
from conveyor.orchestration.ray_runner import RayRunner
from conveyor.orchestration.results import NODE_STATES, NodeResult, RunResult
from conveyor.orchestration.step import run_step

__all__ = [
    "NODE_STATES",
    "GcReport",
    "Launcher",
    "LocalRunner",
    "NodeResult",
    "RayRunner",
    "RunResult",
    "collect_garbage",
    "compile_kfp",
    "run_step",
    "select_nodes",
]
