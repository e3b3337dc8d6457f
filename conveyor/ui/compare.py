"""Two runs, or two artifacts (two models, say), side by side, with what differs marked."""

from __future__ import annotations

import json
from typing import Any

from conveyor.metadata import MetadataStore
from conveyor.ui.artifacts import require_artifact
from conveyor.ui.runs import node_row, require_run, run_row


def compare_runs(store: MetadataStore, left: str, right: str) -> dict[str, Any]:
    """Per node: state, duration and parameters in each run; then each run's evaluations."""
    runs = [require_run(store, r) for r in (left, right)]
    nodes: list[dict[str, dict[str, Any]]] = [{}, {}]
    for side, run in enumerate(runs):
        for execution in store.executions(run_id=run.run_id):
            nodes[side][execution.node_id] = node_row(execution)
    order = list(dict.fromkeys([*nodes[0], *nodes[1]]))
    rows = []
    for node_id in order:
        pair = [nodes[0].get(node_id), nodes[1].get(node_id)]
        params = [_canonical(n["params"]) if n else None for n in pair]
        rows.append({"node_id": node_id, "pair": pair, "params_differ": params[0] != params[1]})
    return {
        "runs": [run_row(r) for r in runs],
        "nodes": rows,
        "metrics": _metric_rows([_evaluation_metrics(store, r.run_id) for r in runs]),
    }


def compare_artifacts(store: MetadataStore, left: int, right: int) -> dict[str, Any]:
    """Properties side by side; for two models, the metrics of their evaluations too."""
    artifacts = [require_artifact(store, i) for i in (left, right)]
    keys = list(dict.fromkeys([*artifacts[0].properties, *artifacts[1].properties]))
    rows = []
    for key in keys:
        values = [_canonical(a.properties.get(key)) for a in artifacts]
        rows.append({"key": key, "values": values, "differ": values[0] != values[1]})
    metrics = None
    if all(a.type_name == "Model" for a in artifacts):
        evaluations = store.artifacts(type_name="ModelEvaluation", states=["LIVE"])
        metrics = _metric_rows([_overall_of(evaluations, a.id) for a in artifacts])
    elif all(a.type_name == "ModelEvaluation" for a in artifacts):
        metrics = _metric_rows([a.properties.get("overall", {}) for a in artifacts])
    return {"artifacts": artifacts, "properties": rows, "metrics": metrics}


def _evaluation_metrics(store: MetadataStore, run_id: str) -> dict[str, Any]:
    """Overall metrics of the evaluations a run produced or reused (the newest one)."""
    found = store.artifacts(type_name="ModelEvaluation", run_id=run_id, newest_first=True)
    return dict(found[0].properties.get("overall", {})) if found else {}


def _overall_of(evaluations: list[Any], model_id: int) -> dict[str, Any]:
    for evaluation in reversed(evaluations):
        if evaluation.properties.get("model_id") == model_id:
            return dict(evaluation.properties.get("overall", {}))
    return {}


def _metric_rows(sides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = list(dict.fromkeys([*sides[0], *sides[1]]))
    return [{"name": n, "values": [s.get(n) for s in sides]} for n in names]


def _canonical(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)
