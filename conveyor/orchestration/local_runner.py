"""The local runner: one ready-set loop that runs independent nodes in parallel processes.

Each execution runs in its own forked process, so a user function that crashes, leaks or
calls ``os._exit`` cannot take the runner down; ``max_workers`` bounds how many run at once.
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import os
import secrets
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.dsl import Node, Pipeline
from conveyor.metadata import MetadataStore
from conveyor.orchestration.display import Display, make_display
from conveyor.orchestration.launcher import Launcher
from conveyor.orchestration.processes import PRELOAD, ExecutionPool, ProcessPool, preload
from conveyor.orchestration.results import NodeResult, RunResult
from conveyor.orchestration.warm import WarmProcesses
from conveyor.orchestration.worker import signals_deferred
from conveyor.types import Artifact, ConveyorError, PipelineDefinitionError

logger = logging.getLogger(__name__)

# PRELOAD and preload live with the process pool; named here too for older imports.
__all__ = ["PRELOAD", "LocalRunner", "new_run_id", "preload", "select_nodes"]


def new_run_id() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def select_nodes(
    pipeline: Pipeline,
    *,
    from_node: str | None = None,
    to_node: str | None = None,
    only: str | None = None,
) -> list[Node]:
    """The nodes a partial run executes, in topological order."""
    if only is not None:
        if from_node or to_node:
            raise PipelineDefinitionError("Use --only alone, or --from/--to, not both.")
        wanted = {pipeline.node(only).id}
    else:
        wanted = {n.id for n in pipeline.nodes}
        if from_node is not None:
            wanted &= {from_node} | pipeline.downstream_of(from_node)
        if to_node is not None:
            wanted &= {to_node} | pipeline.upstream_of(to_node)
        if not wanted:
            raise PipelineDefinitionError(
                f"No node lies between --from {from_node} and --to {to_node}: {to_node} does "
                f"not depend on {from_node}."
            )
    return [n for n in pipeline.order if n.id in wanted]


class LocalRunner:
    """Runs a pipeline on this machine.

    Example::

        result = LocalRunner(max_workers=4).run(pipeline)
        print(result.run_id, result.status, result["Trainer"].state)
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        display: str = "auto",
        lease_seconds: float = 60.0,
        heartbeat_seconds: float = 5.0,
    ) -> None:
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ConveyorError(
                "The 'max_workers' parameter of LocalRunner must be an int >= 1. "
                f"Got {max_workers!r}."
            )
        self.max_workers = max_workers or os.cpu_count() or 1
        self.display = display
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._mp = multiprocessing.get_context(method)

    def run(
        self,
        pipeline: Pipeline,
        *,
        enable_cache: bool | None = None,
        from_node: str | None = None,
        to_node: str | None = None,
        only: str | None = None,
        resume: str | None = None,
        run_id: str | None = None,
        resume_hint: str | None = None,
    ) -> RunResult:
        """Run the pipeline (or part of it) and return its :class:`RunResult`.

        ``enable_cache=False`` re-executes every node; ``resume=RUN_ID`` continues a failed
        run, keeping the nodes that completed in it. ``run_id`` names a new run (by default
        a timestamp and a random suffix); ``resume_hint`` is the command printed for resuming.
        """
        if resume is not None and run_id is not None and run_id != resume:
            raise ConveyorError("Pass either resume=RUN_ID or run_id=..., not both.")
        selected = select_nodes(pipeline, from_node=from_node, to_node=to_node, only=only)
        store = MetadataStore(pipeline.metadata_url)
        try:
            abandoned = store.recover_abandoned(self.lease_seconds)
            if abandoned:
                logger.warning(
                    "Marked %d execution(s) of a stopped runner ABANDONED", len(abandoned)
                )
            run_id = resume or run_id or new_run_id()
            with self._pool(pipeline) as pool:
                state = _RunLoop(self, pipeline, store, run_id, selected, enable_cache, pool)
                state.prepare(resume)
                command = resume_hint or _resume_command(pipeline, run_id, self)
                return state.execute(command)
        finally:
            store.close()

    def cli_options(self) -> str:
        """The ``conveyor run`` options that choose this runner, for resume commands."""
        return ""

    @contextmanager
    def _pool(self, pipeline: Pipeline) -> Iterator[ExecutionPool]:
        """Where this run's executions go: forked processes here. Other runners place them
        elsewhere; everything else about a run is the same."""
        fork = self._mp.get_start_method() == "fork"
        pool = ProcessPool(self.max_workers, self._mp, WarmProcesses(pipeline) if fork else None)
        try:
            yield pool
        finally:
            pool.close()


class _RunLoop:
    """The state of one run: what is pending, running, available and finished."""

    def __init__(
        self,
        runner: LocalRunner,
        pipeline: Pipeline,
        store: MetadataStore,
        run_id: str,
        selected: list[Node],
        enable_cache: bool | None,
        pool: ExecutionPool,
    ) -> None:
        self.runner = runner
        self.pool = pool
        self.pipeline = pipeline
        self.store = store
        self.run_id = run_id
        self.launcher = Launcher(store, pipeline, run_id, enable_cache=enable_cache)
        self.order = {n.id: i for i, n in enumerate(pipeline.order)}
        self.pending: list[Node] = list(selected)
        self.selected = [n.id for n in selected]
        self.available: dict[str, dict[str, list[Artifact]]] = {}
        self.results: dict[str, NodeResult] = {}
        self.retry_at: dict[str, float] = {}
        self.display: Display = make_display(runner.display)
        self.last_heartbeat = time.time()

    # ------------------------------------------------------------------ set-up
    def prepare(self, resume: str | None) -> None:
        """Fill in outputs that come from earlier runs: upstream nodes outside a partial run,
        and the completed nodes of the run being resumed."""
        selected = set(self.selected)
        for node in self.pending:
            for up in node.upstream_nodes:
                if up.id in selected or up.id in self.available:
                    continue
                outputs = self.store.latest_outputs(self.pipeline.name, up.id)
                if outputs is None:
                    raise ConveyorError(
                        f"{node.id} needs the outputs of {up.id}, which has never completed in "
                        f"pipeline {self.pipeline.name}. Include {up.id} in the run (drop "
                        "--only/--from), or run it first."
                    )
                self.available[up.id] = outputs
        if resume is None:
            self.store.create_run(self.pipeline.name, self.run_id, {"trigger": _trigger()})
            return
        run = self.store.get_run(resume)
        if run is None or run.pipeline != self.pipeline.name:
            raise ConveyorError(
                f"No run {resume!r} of pipeline {self.pipeline.name} in the metadata store at "
                f"{self.store.url}. List runs with `conveyor runs`."
            )
        self._reuse_completed(resume)
        self.store.update_run(
            resume, status="RUNNING", ended_at=None, pid=os.getpid(),
            host=socket.gethostname(), heartbeat_at=time.time(), resumed_at=time.time(),
        )  # fmt: skip

    def _reuse_completed(self, run_id: str) -> None:
        done = self.store.executions(run_id=run_id, states=["COMPLETE", "CACHED"])
        latest = {e.node_id: e for e in done}  # executions come oldest first
        ids = sorted({a for e in latest.values() for ids in e.outputs.values() for a in ids})
        artifacts = {a.id: a for a in self.store.artifacts(artifact_ids=ids)}
        for node in list(self.pending):
            record = latest.get(node.id)
            if record is None:
                continue
            outputs = {k: [artifacts[i] for i in v] for k, v in record.outputs.items()}
            if any(a.state != "LIVE" for arts in outputs.values() for a in arts):
                continue
            self.pending.remove(node)
            self.available[node.id] = outputs
            self.results[node.id] = NodeResult(
                node.id, record.state, record.execution_id, outputs,
                started_at=record.started_at, ended_at=record.ended_at, resumed=True,
            )  # fmt: skip

    # ------------------------------------------------------------------ the loop
    def execute(self, resume_command: str) -> RunResult:
        self.display.start(self.pipeline.name, self.run_id, self.selected)
        for result in self.results.values():
            self.display.finished(result)
        try:
            while self.pending or self.pool.running():
                self._schedule()
                self._wait()
                self._heartbeat()
        except BaseException as exc:
            self._stop_running("The run was interrupted before this execution finished.")
            self.store.update_run(self.run_id, status="FAILED", ended_at=time.time())
            what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped by {exc!r}"
            print(
                f"Pipeline {self.pipeline.name}, run {self.run_id} {what}.\n"
                f"  Resume with: {resume_command}",
                file=sys.stderr,
                flush=True,
            )
            raise
        finally:
            self.display.close()
        return self._finish(resume_command)

    def _schedule(self) -> None:
        now = time.time()
        for node in list(self.pending):
            ups = [u.id for u in node.upstream_nodes]
            if any(self._failed(u) for u in ups):
                self.pending.remove(node)
                self._record(NodeResult(node.id, "SKIPPED", error="an upstream node failed"))
                continue
            if any(u not in self.available for u in ups) or self.retry_at.get(node.id, 0) > now:
                continue
            if self.pool.full():
                return
            self.pending.remove(node)
            self._launch(node)

    def _failed(self, node_id: str) -> bool:
        result = self.results.get(node_id)
        return result is not None and not result.ok and node_id not in self.retry_at

    def _launch(self, node: Node) -> None:
        with signals_deferred():  # recorded RUNNING and known to the loop, or neither
            self._launch_now(node)

    def _launch_now(self, node: Node) -> None:
        attempt = self.results[node.id].attempts + 1 if node.id in self.results else 1
        try:
            outcome = self.launcher.launch(node, self.available, attempt=attempt)
        except ConveyorError as exc:
            self._record(NodeResult(node.id, "FAILED", error=str(exc), attempts=attempt))
            return
        if isinstance(outcome, NodeResult):
            self._record(outcome)
            return
        try:
            self.pool.submit(outcome)
        except ConveyorError as exc:
            self._record(self.launcher.fail(outcome, str(exc)))
            return
        self.display.running(node.id)

    def _wait(self) -> None:
        if not self.pool.running():
            if self.pending:  # only nodes waiting for a retry are left
                time.sleep(max(0.0, min(self.retry_at.values(), default=0) - time.time()) + 0.001)
            return
        timeout = min(self.runner.heartbeat_seconds, 0.25)
        if self.retry_at:
            timeout = max(0.0, min(timeout, min(self.retry_at.values()) - time.time()))
        for ended in self.pool.wait(timeout):
            if ended.lost is not None:
                self._record(self.launcher.fail(ended.prepared, ended.lost))
            else:
                self._record(self.launcher.finish(ended.prepared, ended.exitcode))
        self.display.tick()

    def _record(self, result: NodeResult) -> None:
        node = self.pipeline.node(result.node_id)
        self.results[node.id] = result
        self.retry_at.pop(node.id, None)
        if result.ok:
            self.available[node.id] = result.outputs
        elif result.state == "FAILED" and result.attempts and result.attempts <= node.retries:
            delay = node.retry_backoff * 2 ** (result.attempts - 1)
            self.retry_at[node.id] = time.time() + delay
            self.pending.append(node)
            self.pending.sort(key=lambda n: self.order[n.id])
            logger.warning(
                "%s failed (attempt %d); retrying in %.1f s", node.id, result.attempts, delay
            )
        self.display.finished(result)

    def _heartbeat(self) -> None:
        if time.time() - self.last_heartbeat >= self.runner.heartbeat_seconds:
            ids = [prepared.execution_id for prepared in self.pool.running()]
            self.store.heartbeat(ids, self.run_id)
            self.last_heartbeat = time.time()

    def _stop_running(self, reason: str) -> None:
        for prepared in self.pool.stop():
            self.results[prepared.node.id] = self.launcher.fail(prepared, reason)

    def _finish(self, resume_command: str) -> RunResult:
        failed = [r for r in self.results.values() if r.state == "FAILED"]
        status = "FAILED" if failed else "COMPLETE"
        self.store.update_run(self.run_id, status=status, ended_at=time.time())
        message = None
        if failed:
            lines = [f"Pipeline {self.pipeline.name}, run {self.run_id} FAILED."]
            for r in failed:
                lines.append(f"  {r.node_id} failed: {r.error}")
                if r.log_path:
                    lines.append(f"    log: {r.log_path}")
            lines.append(f"  Resume with: {resume_command}")
            message = "\n".join(lines)
            print(message, file=sys.stderr, flush=True)
        return RunResult(self.run_id, self.pipeline.name, status, dict(self.results),
                         resume_command if failed else None, message)  # fmt: skip


def _resume_command(pipeline: Pipeline, run_id: str, runner: LocalRunner) -> str:
    if pipeline.source_file:
        command = f"conveyor run {shlex.quote(pipeline.source_file)} --resume {run_id}"
        return command + runner.cli_options()
    return f"{type(runner).__name__}().run(pipeline, resume={run_id!r})"


def _trigger() -> str:
    return " ".join(shlex.quote(a) for a in sys.argv) or "python"
