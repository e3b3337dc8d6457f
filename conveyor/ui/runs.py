"""What the run pages show: runs with their status, a run's DAG and nodes, one execution.

Each function reads the store and returns plain dicts (and a :class:`~conveyor.ui.layout.Drawing`)
for a template; nothing here knows about HTTP.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, TypeVar

from conveyor.metadata import ExecutionRecord, MetadataStore, RunRecord
from conveyor.types import MetadataError
from conveyor.ui import files
from conveyor.ui.layout import Box, layout

T = TypeVar("T")

RUN_STATUSES = ("RUNNING", "COMPLETE", "FAILED", "ABANDONED")
PAGE_SIZE = 100
_CLI_NAMES = ("conveyor", "main.py", "conveyor.cli.main")


def runs_list(
    store: MetadataStore, *, pipeline: str | None, status: str | None, page: int = 0
) -> dict[str, Any]:
    """One page of runs, newest first, filtered by pipeline and status."""
    shown = store.runs(pipeline or None, status=status or None, limit=(page + 1) * PAGE_SIZE + 1)
    runs = shown[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    return {
        "runs": [run_row(r) for r in runs],
        "pipelines": store.pipelines(),
        "statuses": RUN_STATUSES,
        "pipeline": pipeline or "",
        "status": status or "",
        "page": page,
        "has_next": len(shown) > (page + 1) * PAGE_SIZE,
    }


def run_row(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "status": run.status,
        "started_at": run.started_at,
        "duration": _duration(run.started_at, run.ended_at),
        "trigger": run.properties.get("trigger", ""),
    }


def found(value: T | None, what: str, store: MetadataStore) -> T:
    """``value``, or a MetadataError (a 404 page) saying which ``what`` the store lacks."""
    if value is None:
        raise MetadataError(f"No {what} in the metadata store at {store.url}.")
    return value


def require_run(store: MetadataStore, run_id: str) -> RunRecord:
    return found(store.get_run(run_id), f"run {run_id!r}", store)


def run_detail(store: MetadataStore, run_id: str) -> dict[str, Any]:
    """The run, its nodes (latest execution of each) and its DAG."""
    run = require_run(store, run_id)
    latest: dict[str, ExecutionRecord] = {}
    for execution in store.executions(run_id=run_id):
        latest[execution.node_id] = execution
    nodes = [node_row(e) for e in latest.values()]
    known = _nodes_of_last_complete_run(store, run)
    missing = [e for node_id, e in known.items() if node_id not in latest]
    unrun = "SKIPPED" if run.status in ("FAILED", "ABANDONED") else "NOT RUN"
    nodes += [
        {
            **node_row(e),
            "state": unrun,
            "execution_id": None,
            "duration": None,
            "error": None,
            "cached_from": None,
        }
        for e in missing
    ]
    # The newest complete run knows the whole pipeline's wiring, even where this run stopped.
    edges = sorted(set(_data_edges(list(latest.values()))) | set(_data_edges(list(known.values()))))
    boxes = [_node_box(n) for n in nodes]
    return {
        "run": run_row(run),
        "properties": run.properties,
        "nodes": nodes,
        "drawing": layout(boxes, edges),
        "resume_command": resume_command(run) if run.status in ("FAILED", "ABANDONED") else None,
    }


def node_row(execution: ExecutionRecord) -> dict[str, Any]:
    return {
        "node_id": execution.node_id,
        "execution_id": execution.execution_id,
        "component": execution.type_name,
        "state": execution.state,
        "duration": _duration(execution.started_at, execution.ended_at),
        "started_at": execution.started_at,
        "cached_from": execution.properties.get("cached_from"),
        "params": execution.properties.get("params", {}),
        "error": execution.error,
    }


def execution_detail(store: MetadataStore, execution_id: int) -> dict[str, Any]:
    """One execution: its parameters, code, input and output artifacts, and log tail."""
    execution = found(store.get_execution(execution_id), f"execution {execution_id}", store)
    ids = sorted({i for m in (execution.inputs, execution.outputs) for v in m.values() for i in v})
    artifacts = {a.id: a for a in store.artifacts(artifact_ids=ids)}

    def linked(mapping: dict[str, list[int]]) -> list[tuple[str, Any]]:
        return [(key, artifacts[i]) for key, v in mapping.items() for i in v if i in artifacts]

    props = execution.properties
    return {
        "node": node_row(execution),
        "pipeline": execution.pipeline,
        "run_ids": execution.run_ids,
        "ended_at": execution.ended_at,
        "code_fingerprint": props.get("code_fingerprint"),
        "attempt": props.get("attempt"),
        "inputs": linked(execution.inputs),
        "outputs": linked(execution.outputs),
        "log_uri": execution.log_uri,
        "log_tail": files.tail(execution.log_uri),
        "host": execution.host,
        "pid": execution.pid,
    }


def resume_command(run: RunRecord) -> str:
    """The command that continues ``run``, rebuilt from the command line that started it."""
    words = shlex.split(run.properties.get("trigger", "") or "")
    at = words.index("run") if "run" in words else 0
    started_by_cli = 0 < at < len(words) - 1 and os.path.basename(words[at - 1]) in _CLI_NAMES
    if started_by_cli:
        command = ["conveyor", "run", words[at + 1], "--resume", run.run_id]
        for flag in ("--metadata-url", "--root"):
            if flag in words[at:-1]:
                command += [flag, words[words.index(flag, at) + 1]]
        return " ".join(shlex.quote(w) for w in command)
    return f"LocalRunner().run(pipeline, resume={run.run_id!r})"


def _nodes_of_last_complete_run(store: MetadataStore, run: RunRecord) -> dict[str, ExecutionRecord]:
    """The nodes of the pipeline as its newest complete run had them (to show what a failed
    or partial run did not reach)."""
    found = store.runs(run.pipeline, status="COMPLETE", limit=1)
    if not found or found[0].run_id == run.run_id:
        return {}
    return {e.node_id: e for e in store.executions(run_id=found[0].run_id)}


def _data_edges(executions: list[ExecutionRecord]) -> list[tuple[str, str]]:
    producer = {}
    for e in executions:
        for ids in e.outputs.values():
            producer.update({i: e.node_id for i in ids})
    edges = set()
    for e in executions:
        for ids in e.inputs.values():
            edges.update((producer[i], e.node_id) for i in ids if i in producer)
    return sorted(edges)


def _node_box(node: dict[str, Any]) -> Box:
    duration = node["duration"]
    detail = node["state"].lower()
    if duration is not None and node["state"] != "CACHED":
        detail += f" · {duration:.1f} s"
    href = f"/executions/{node['execution_id']}" if node["execution_id"] is not None else None
    return Box(
        node["node_id"], node["node_id"], detail, node["state"].lower().replace(" ", "-"), href
    )


def _duration(started: float | None, ended: float | None) -> float | None:
    if started is None or ended is None:
        return None
    return max(0.0, ended - started)
