"""A look inside artifacts that have no report: a model bundle's manifest, the first rows of
examples and inference results, a push record and the versions beside it, a transform graph.

Each preview reads a few files (never a whole data set) and returns plain data for the
artifact page; one that cannot read its files says why instead of failing the page.

Example::

    preview(model_artifact)  # {"title": "Model bundle", "fields": {...}, "document": {...}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from conveyor.types import Artifact, ConveyorError

__all__ = ["PREVIEW_ROWS", "preview"]

PREVIEW_ROWS = 20
_MANIFEST_FIELDS = (
    "format",
    "framework",
    "framework_version",
    "task",
    "label",
    "class_names",
    "features",
)


def preview(artifact: Artifact) -> dict[str, Any] | None:
    """What the artifact page shows in place of a report, or None when there is nothing."""
    make = _PREVIEWS.get(artifact.type_name)
    if make is None or "://" in artifact.uri or not os.path.isdir(artifact.uri):
        return None
    try:
        return make(artifact)
    except (ConveyorError, OSError, ValueError) as exc:
        return {"title": "Preview", "error": f"Cannot read {artifact.uri}: {exc}"}


def _model(artifact: Artifact) -> dict[str, Any]:
    manifest = _json(os.path.join(artifact.uri, "manifest.json"))
    inputs = manifest.get("signature", {}).get("inputs", [])
    return {
        "title": "Model bundle",
        "fields": {k: manifest[k] for k in _MANIFEST_FIELDS if k in manifest},
        "table": {
            "caption": "Signature: the raw features a request carries",
            "columns": ["name", "type", "required"],
            "rows": [[i.get("name"), i.get("type"), i.get("required")] for i in inputs],
        },
        "document": manifest,
    }


def _rows(artifact: Artifact) -> dict[str, Any]:
    from conveyor.io import record_batches

    splits = artifact.properties.get("split_names") or []
    tables = []
    for split in splits[:4]:
        first = next(iter(record_batches(artifact, split, batch_size=PREVIEW_ROWS)), None)
        if first is None:
            continue
        columns = first.schema.names
        rows = [[row.get(c) for c in columns] for row in first.slice(0, PREVIEW_ROWS).to_pylist()]
        tables.append(
            {"caption": f"Split {split}: first {len(rows)} rows", "columns": columns, "rows": rows}
        )
    return {"title": "First rows", "tables": tables}


def _pushed(artifact: Artifact) -> dict[str, Any]:
    record = _json(os.path.join(artifact.uri, "push.json"))
    destination = artifact.properties.get("pushed_destination")
    versions = []
    if destination and "://" not in destination and os.path.isdir(os.path.dirname(destination)):
        base = os.path.dirname(destination)
        versions = sorted((int(n) for n in os.listdir(base) if n.isdigit()), reverse=True)
    return {
        "title": "Push",
        "fields": {"destination": destination, "versions there": versions},
        "document": record,
    }


def _transform_graph(artifact: Artifact) -> dict[str, Any]:
    graph = _json(os.path.join(artifact.uri, "transform_fn", "graph.json"))
    fitted = graph.get("values", {})
    outputs = {v: k for k, v in graph.get("outputs", {}).items()}
    rows = []
    for node in graph.get("nodes", []):
        what = node.get("op") or node.get("attrs", {}).get("name", "")
        value = fitted.get(str(node.get("id")))
        rows.append(
            [
                node.get("id"),
                node.get("kind"),
                what,
                node.get("inputs", []),
                _short(value) if value is not None else "",
                outputs.get(node.get("id"), ""),
                os.path.basename(node.get("where", "")),
            ]
        )
    return {
        "title": "Transform graph",
        "fields": {"format": graph.get("format"), "outputs": sorted(graph.get("outputs", {}))},
        "table": {
            "caption": "Ops, analyzers and their fitted values",
            "columns": ["id", "kind", "op", "inputs", "fitted", "output", "where"],
            "rows": rows,
        },
        "document": graph,
    }


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


_PREVIEWS: dict[str, Callable[[Artifact], dict[str, Any]]] = {
    "Model": _model,
    "Examples": _rows,
    "InferenceResult": _rows,
    "PushedModel": _pushed,
    "TransformGraph": _transform_graph,
}
