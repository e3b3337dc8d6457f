"""One node of one run, executed on its own: what each Kubeflow Pipelines step (and any
runner that places nodes on other machines) does.

The node's inputs are the outputs its upstream nodes recorded in the same run, read back
from the metadata store; the :class:`~conveyor.orchestration.launcher.Launcher` then decides
*what* happens (cache hit, resolver, importer, or a fresh execution) exactly as it does for
the local runner, and the execution runs in a forked process that publishes its outputs
atomically.

Example::

    result = run_step(pipeline, "Trainer", run_id="20240601-120000-a1b2c3")
    result.state  # "COMPLETE", "CACHED" or "FAILED"
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from multiprocessing.connection import wait as wait_for_processes
from typing import TextIO

from conveyor.dsl import Node, Pipeline
from conveyor.metadata import MetadataStore
from conveyor.orchestration.launcher import Available, Launcher, PreparedExecution
from conveyor.orchestration.results import NodeResult
from conveyor.orchestration.worker import child_main, signals_deferred
from conveyor.types import ConveyorError, ExecutionError

__all__ = ["run_prepared", "run_step", "upstream_outputs"]

logger = logging.getLogger(__name__)

FINISHED = ("COMPLETE", "CACHED")


def run_step(
    pipeline: Pipeline,
    node_id: str,
    run_id: str,
    *,
    enable_cache: bool | None = None,
    heartbeat_seconds: float = 5.0,
    log_to: TextIO | None = None,
) -> NodeResult:
    """Execute ``node_id`` of ``pipeline`` as part of run ``run_id`` and record it.

    The run is created by the first step that gets here; it is marked COMPLETE when every
    node of the pipeline has finished in it, FAILED as soon as one step fails. ``log_to``
    (e.g. ``sys.stdout``) receives the execution's log as it is written.
    """
    node = pipeline.node(node_id)
    store = MetadataStore(pipeline.metadata_url)
    try:
        store.create_run(pipeline.name, run_id, {"trigger": "conveyor.entrypoint"})
        launcher = Launcher(store, pipeline, run_id, enable_cache=enable_cache)
        try:
            outcome = launcher.launch(node, upstream_outputs(store, pipeline, run_id, node))
        except ConveyorError as exc:
            result = NodeResult(node.id, "FAILED", error=str(exc), attempts=1)
        else:
            if isinstance(outcome, PreparedExecution):
                exitcode = run_prepared(
                    outcome, store=store, heartbeat_seconds=heartbeat_seconds, log_to=log_to
                )
                result = launcher.finish(outcome, exitcode)
            else:
                result = outcome
        _update_run(store, pipeline, run_id, result)
        return result
    finally:
        store.close()


def upstream_outputs(
    store: MetadataStore, pipeline: Pipeline, run_id: str, node: Node
) -> Available:
    """The outputs of ``node``'s upstream nodes, as recorded in run ``run_id``."""
    wanted = {up.id for up in node.upstream_nodes}
    if not wanted:
        return {}
    latest = {e.node_id: e for e in store.executions(run_id=run_id, states=list(FINISHED))}
    missing = sorted(wanted - set(latest))
    if missing:
        raise ExecutionError(
            f"{node.id} needs the outputs of {', '.join(missing)}, which have not completed in "
            f"run {run_id} of pipeline {pipeline.name} (metadata store {store.url}). Run "
            "those steps first, with the same --run-id and --metadata-url."
        )
    ids = sorted({i for n in wanted for ids in latest[n].outputs.values() for i in ids})
    artifacts = {a.id: a for a in store.artifacts(artifact_ids=ids)}
    return {
        n: {key: [artifacts[i] for i in ids] for key, ids in latest[n].outputs.items()}
        for n in wanted
    }


def run_prepared(
    prepared: PreparedExecution,
    *,
    store: MetadataStore | None = None,
    heartbeat_seconds: float = 5.0,
    log_to: TextIO | None = None,
) -> int | None:
    """Run a prepared execution in a forked process (spawned where fork is missing) and
    wait for it, beating the execution's heartbeat in ``store`` and copying its log to
    ``log_to`` as it grows; return its exit code. (One execution per process here, so
    nothing is preloaded for it.)"""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    sys.stdout.flush()
    sys.stderr.flush()
    with signals_deferred():
        process = context.Process(
            target=child_main,
            args=(prepared.node.component.fn, prepared.kwargs, prepared.outputs,
                  prepared.log_path, prepared.result_path),
            name=f"conveyor-{prepared.node.id}",
        )  # fmt: skip
        process.start()
    follow = _LogFollower(prepared.log_path, log_to)
    beat = time.monotonic()
    try:
        while not wait_for_processes([process.sentinel], timeout=0.5 if log_to else 5.0):
            follow()
            if store is not None and time.monotonic() - beat >= heartbeat_seconds:
                store.heartbeat([prepared.execution_id])
                beat = time.monotonic()
    except BaseException:
        process.kill()
        raise
    finally:
        process.join()
        follow()
    return process.exitcode


class _LogFollower:
    """Copies what was appended to a log file since the last call to a stream."""

    def __init__(self, path: str, stream: TextIO | None) -> None:
        self.path, self.stream, self.offset = path, stream, 0

    def __call__(self) -> None:
        if self.stream is None or not os.path.exists(self.path):
            return
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        if data:
            self.stream.write(data.decode(errors="replace"))
            self.stream.flush()


def _update_run(store: MetadataStore, pipeline: Pipeline, run_id: str, result: NodeResult) -> None:
    if not result.ok:
        store.update_run(run_id, status="FAILED", ended_at=time.time())
        return
    done = {e.node_id for e in store.executions(run_id=run_id, states=list(FINISHED))}
    if all(n.id in done for n in pipeline.nodes):
        store.update_run(run_id, status="COMPLETE", ended_at=time.time())
    else:
        store.heartbeat([], run_id)
