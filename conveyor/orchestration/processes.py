"""*Where* the local runner's executions run: one forked process each, on this machine.

A runner's loop hands prepared executions to a pool and collects them when they end; the
pool is the only part that differs between runners (see
:class:`~conveyor.orchestration.ray_runner.RayRunner` for the Ray pool).
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_processes
from typing import Any, Protocol

from conveyor.frameworks.preload import modules_for_execution
from conveyor.orchestration.launcher import PreparedExecution
from conveyor.orchestration.warm import WarmProcesses
from conveyor.orchestration.worker import child_main
from conveyor.serving.forking import ForkedProcess
from conveyor.types import Artifact

logger = logging.getLogger(__name__)

# Imported once in the runner before its first fork, so that every forked execution finds
# them loaded instead of paying for them again (a tenth of a second each for fsspec and
# pyarrow.parquet). Executions add the framework modules they are about to import
# (conveyor.frameworks.preload). A run whose nodes all come from the cache forks nothing and
# imports none of them.
PRELOAD = ("numpy", "pyarrow", "pyarrow.compute", "pyarrow.parquet", "fsspec")


def preload(modules: Iterable[str] = PRELOAD) -> None:
    """Import ``modules`` here; one that fails is left to the execution that needs it."""
    for name in modules:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional library, or a broken one the execution reports
            logger.debug("not preloading %s: %s", name, exc)


def start_execution(
    context: Any,
    fn: Any,
    kwargs: Mapping[str, Any],
    outputs: Mapping[str, Artifact],
    log_path: str,
    result_path: str,
    *,
    name: str = "conveyor-execution",
) -> Any:
    """Start ``fn(**kwargs)`` in a new process of ``context`` (see :func:`child_main`)."""
    sys.stdout.flush()
    sys.stderr.flush()
    process = context.Process(
        target=child_main, args=(fn, kwargs, outputs, log_path, result_path), name=name
    )
    process.start()
    return process


@dataclass
class Ended:
    """An execution whose process (or task) is over: its exit code, or why it was lost."""

    prepared: PreparedExecution
    exitcode: int | None
    lost: str | None = None  # the task vanished with its worker: the error to record


class ExecutionPool(Protocol):
    """Where a runner's executions run. ``submit`` starts one; ``wait`` returns those that
    ended within ``timeout`` seconds; ``stop`` kills the rest and returns them."""

    def full(self) -> bool: ...
    def submit(self, prepared: PreparedExecution) -> None: ...
    def wait(self, timeout: float) -> list[Ended]: ...
    def running(self) -> list[PreparedExecution]: ...
    def stop(self) -> list[PreparedExecution]: ...


class ProcessPool:
    """Forked processes on this machine, at most ``max_workers`` at once. With ``warm``,
    executions that import heavy frameworks are forked from a warm copy of the runner
    (:mod:`conveyor.orchestration.warm`)."""

    def __init__(self, max_workers: int, context: Any, warm: WarmProcesses | None = None) -> None:
        self.max_workers = max_workers
        self.context = context
        self.warm = warm
        self.processes: dict[Any, tuple[Any, PreparedExecution]] = {}

    def full(self) -> bool:
        return len(self.processes) >= self.max_workers

    def submit(self, prepared: PreparedExecution) -> None:
        process = None
        if self.context.get_start_method() == "fork":
            preload(PRELOAD)
            modules = modules_for_execution(prepared.kwargs)
            if self.warm is not None:
                self.warm.before(prepared.node.id)
                process = self.warm.fork(prepared, modules) if modules else None
            if process is None:
                preload(modules)
        if process is None:
            process = start_execution(
                self.context, prepared.node.component.fn, prepared.kwargs, prepared.outputs,
                prepared.log_path, prepared.result_path, name=f"conveyor-{prepared.node.id}",
            )  # fmt: skip
        self.processes[process.sentinel] = (process, prepared)

    def wait(self, timeout: float) -> list[Ended]:
        ended = []
        for sentinel in wait_for_processes(list(self.processes), timeout=timeout):
            process, prepared = self.processes[sentinel]
            if isinstance(process, ForkedProcess) and process.poll() is None:
                continue  # news of its start, not of its end
            del self.processes[sentinel]
            process.join()
            ended.append(Ended(prepared, process.exitcode))
        return ended

    def running(self) -> list[PreparedExecution]:
        return [prepared for _, prepared in self.processes.values()]

    def stop(self) -> list[PreparedExecution]:
        stopped = []
        for process, prepared in self.processes.values():
            process.kill()
            process.join()
            stopped.append(prepared)
        self.processes.clear()
        return stopped

    def close(self) -> None:
        """End the warm processes, once the run is over."""
        if self.warm is not None:
            self.warm.close()
