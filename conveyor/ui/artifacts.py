"""What the artifact pages show: an artifact with its producer, consumers, files and key
figures, and the lineage graph around it."""

from __future__ import annotations

import os
from typing import Any

from conveyor.metadata import MetadataStore, lineage
from conveyor.types import Artifact, ConveyorError
from conveyor.ui import files
from conveyor.ui.layout import Box, layout
from conveyor.ui.runs import found, node_row

#: Past this many artifacts and executions, a lineage graph keeps the nearest ones.
MAX_LINEAGE_BOXES = 120


def require_artifact(store: MetadataStore, artifact_id: int) -> Artifact:
    return found(store.get_artifact(artifact_id), f"artifact {artifact_id}", store)


def artifact_detail(store: MetadataStore, artifact_id: int) -> dict[str, Any]:
    """The artifact, the execution that made it, those that read it, and its files."""
    from conveyor import reports

    artifact = require_artifact(store, artifact_id)
    edges = store.edges(artifact_ids=[artifact_id])
    writers = sorted({e for _, e, kind, _ in edges if kind == "OUTPUT"})
    readers = sorted({e for _, e, kind, _ in edges if kind == "INPUT"})
    executions = {e.execution_id: e for e in store.executions(execution_ids=[*writers, *readers])}
    listing = files.list_files(artifact.uri)
    return {
        "artifact": artifact,
        "producer": node_row(executions[writers[0]]) if writers else None,
        "producer_runs": executions[writers[0]].run_ids if writers else [],
        "reused_by": writers[1:],
        "consumers": [node_row(executions[e]) for e in readers if e in executions],
        "files": listing,
        "has_report": reports.has_report(artifact.type_name) and listing["exists"] is not False,
        "figures": key_figures(artifact),
    }


def key_figures(artifact: Artifact) -> dict[str, Any] | None:
    """The headline numbers of an evaluation (overall metrics and verdict), read from its
    files; None for other types or when the files cannot be read."""
    if artifact.type_name != "ModelEvaluation":
        return None
    from conveyor.evaluation import load_evaluation

    try:
        result = load_evaluation(artifact)
        return {"metrics": result.metrics(), "blessed": result.blessed}
    except (ConveyorError, OSError) as exc:
        return {"error": str(exc)}


def lineage_detail(store: MetadataStore, artifact_id: int) -> dict[str, Any]:
    """The lineage graph drawn, and the code and parameters of every upstream execution."""
    graph = lineage(store, artifact_id)
    keep = _nearest(graph, MAX_LINEAGE_BOXES)
    boxes = [
        _artifact_box(a, a.id == artifact_id)
        for i, a in sorted(graph.artifacts.items())
        if ("a", i) in keep
    ]
    boxes += [_execution_box(e) for i, e in sorted(graph.executions.items()) if ("e", i) in keep]
    arrows = []
    for a, e, kind, key in graph.edges:
        if ("a", a) in keep and ("e", e) in keep:
            arrows.append((f"a{a}", f"e{e}", key) if kind == "INPUT" else (f"e{e}", f"a{a}", key))
    upstream_executions = sorted(
        {
            e
            for a, e, kind, _ in graph.edges
            if kind == "OUTPUT" and (a in graph.upstream or a == artifact_id)
        }
    )
    return {
        "artifact": graph.artifacts[artifact_id],
        "drawing": layout(boxes, arrows),
        "hidden": len(graph.artifacts) + len(graph.executions) - len(keep),
        "upstream": [
            _code_row(graph.executions[e]) for e in upstream_executions if e in graph.executions
        ],
        "downstream": [
            graph.artifacts[i] for i in sorted(graph.downstream) if i in graph.artifacts
        ][:MAX_LINEAGE_BOXES],
    }


def _nearest(graph: Any, limit: int) -> set[tuple[str, int]]:
    """Boxes within the fewest hops of the root, ``limit`` at most (breadth first)."""
    around: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for a, e, _, _ in graph.edges:
        around.setdefault(("a", a), []).append(("e", e))
        around.setdefault(("e", e), []).append(("a", a))
    seen = [("a", graph.artifact_id)]
    found = set(seen)
    for box in seen:
        if len(seen) >= limit:
            break
        for nxt in around.get(box, []):
            if nxt not in found and len(seen) < limit:
                found.add(nxt)
                seen.append(nxt)
    return found


def _artifact_box(artifact: Artifact, is_root: bool) -> Box:
    return Box(
        f"a{artifact.id}",
        f"#{artifact.id} {artifact.type_name}",
        artifact.name,
        "root" if is_root else artifact.state.lower(),
        f"/artifacts/{artifact.id}",
        kind="artifact",
    )


def _execution_box(execution: Any) -> Box:
    fingerprint = execution.properties.get("code_fingerprint")
    detail = f"code {fingerprint[:10]}" if fingerprint else execution.state.lower()
    return Box(
        f"e{execution.execution_id}",
        execution.node_id,
        detail,
        execution.state.lower(),
        f"/executions/{execution.execution_id}",
        kind="execution",
    )


def _code_row(execution: Any) -> dict[str, Any]:
    params = execution.properties.get("params", {}) or {}
    module = params.get("module_file")
    return {
        **node_row(execution),
        "code_fingerprint": execution.properties.get("code_fingerprint"),
        "module_file": os.path.basename(module) if isinstance(module, str) else None,
        "module_path": module,
    }
