"""What the artifact pages show: an artifact with its producer, consumers, files and key
figures, and the lineage graph around it."""

from __future__ import annotations

import os
from typing import Any

from conveyor.metadata import MetadataStore
from conveyor.types import Artifact, ConveyorError
from conveyor.ui import files
from conveyor.ui.layout import Box, layout
from conveyor.ui.previews import preview
from conveyor.ui.runs import found, node_row
from conveyor.ui.walk import ProducerCache, walk

#: Past this many executions downstream, a lineage graph stops growing.
MAX_LINEAGE_EXECUTIONS = 60
#: Types whose page offers to compare with another of its kind, and how many to offer.
COMPARABLE_TYPES = ("Model", "ModelEvaluation")
MAX_COMPARABLE = 10
#: Consumers listed on an artifact's page (the oldest first: cached reuses come later).
MAX_CONSUMERS = 50


def require_artifact(store: MetadataStore, artifact_id: int) -> Artifact:
    return found(store.get_artifact(artifact_id), f"artifact {artifact_id}", store)


def artifact_detail(store: MetadataStore, artifact_id: int) -> dict[str, Any]:
    """The artifact, the execution that made it, those that read it, and its files."""
    from conveyor import reports

    artifact = require_artifact(store, artifact_id)
    edges = store.edges(artifact_ids=[artifact_id])
    writers = sorted({e for _, e, kind, _ in edges if kind == "OUTPUT"})
    readers = sorted({e for _, e, kind, _ in edges if kind == "INPUT"})
    shown_readers = readers[:MAX_CONSUMERS]
    executions = {
        e.execution_id: e for e in store.executions(execution_ids=[*writers[:1], *shown_readers])
    }
    listing = files.list_files(artifact.uri)
    has_report = reports.has_report(artifact.type_name) and listing["exists"] is not False
    return {
        "artifact": artifact,
        "producer": node_row(executions[writers[0]]) if writers else None,
        "producer_runs": executions[writers[0]].run_ids if writers else [],
        "reused_by": writers[1:],
        "consumers": [node_row(executions[e]) for e in shown_readers if e in executions],
        "more_consumers": len(readers) - len(shown_readers),
        "files": listing,
        "has_report": has_report,
        "preview": None if has_report else preview(artifact),
        "figures": key_figures(artifact),
        "compare_with": _comparable(store, artifact),
    }


def _comparable(store: MetadataStore, artifact: Artifact) -> list[Artifact]:
    """Other live models (or evaluations) to compare this one with, the newest first."""
    if artifact.type_name not in COMPARABLE_TYPES:
        return []
    others = store.artifacts(type_name=artifact.type_name, states=["LIVE"], newest_first=True)
    return [a for a in others if a.id != artifact.id][:MAX_COMPARABLE]


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


def lineage_detail(
    store: MetadataStore, artifact_id: int, producers: ProducerCache | None = None
) -> dict[str, Any]:
    """The lineage graph drawn, and the code and parameters of every upstream execution."""
    require_artifact(store, artifact_id)
    graph = walk(store, artifact_id, limit=MAX_LINEAGE_EXECUTIONS, producers=producers)
    boxes = [_artifact_box(a, a.id == artifact_id) for a in graph.artifacts.values()]
    boxes += [_execution_box(e) for e in graph.executions.values()]
    arrows = [
        (f"a{a}", f"e{e}", key) if kind == "INPUT" else (f"e{e}", f"a{a}", key)
        for a, e, kind, key in sorted(graph.edges)
    ]
    made_upstream = {a for a in graph.upstream} | {artifact_id}
    producers = sorted(
        {e for a, e, kind, _ in graph.edges if kind == "OUTPUT" and a in made_upstream}
    )
    return {
        "artifact": graph.artifacts[artifact_id],
        "drawing": layout(boxes, arrows, direction="down"),
        "cut": graph.cut,
        "upstream": [_code_row(graph.executions[e]) for e in producers if e in graph.executions],
        "downstream": [
            graph.artifacts[i] for i in sorted(graph.downstream) if i in graph.artifacts
        ],
    }


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
