"""Cache keys: the same component code, parameters and input artifacts give the same key."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from conveyor.dsl import Node
from conveyor.dsl.component import code_fingerprint
from conveyor.types import Artifact, ConveyorError


def jsonable(value: Any) -> Any:
    """A JSON-able description of a parameter value, stable across runs and processes."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if dataclasses.is_dataclass(value):
        fields = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__dataclass__": type(value).__qualname__, **fields}
    if callable(value):
        name = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
        return {"__callable__": name, "sha256": code_fingerprint(value)}
    return repr(value)


def file_fingerprint(path: Any) -> str | None:
    """A fingerprint of the file or folder a parameter names, so that changed inputs or user
    code invalidate the cache: sha256 of a local file's bytes; for a folder or a remote URI,
    sha256 of every file's relative path, size and modification time. None when the
    parameter names nothing that exists."""
    if not isinstance(path, str | PurePath) or not str(path):
        return None
    candidate = Path(path)
    if "://" not in str(path) and candidate.is_file():
        return hashlib.sha256(candidate.read_bytes()).hexdigest()
    from conveyor.io import filesystems as fsx

    try:
        fs, root = fsx.split_uri(str(path))
        if not fs.exists(root):
            return None
        listing = fs.find(root, detail=True) if fs.isdir(root) else {root: fs.info(root)}
    except (OSError, ConveyorError):
        return None
    digest = hashlib.sha256()
    for name, info in sorted(listing.items()):
        stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or ""
        digest.update(f"{name[len(root) :]}\0{info.get('size')}\0{stamp}\n".encode())
    return digest.hexdigest()


def cache_key(node: Node, inputs: Mapping[str, Sequence[Artifact]]) -> str:
    """sha256 over component name, code fingerprint, parameters and input artifact ids."""
    component = node.component
    files = {name: file_fingerprint(node.params.get(name)) for name in component.file_params}
    payload = {
        "component": node.type_name,
        "code": component.source_fingerprint(),
        "files": files,
        "params": jsonable(node.params),
        "inputs": {key: [a.id for a in arts] for key, arts in sorted(inputs.items())},
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(encoded.encode()).hexdigest()
