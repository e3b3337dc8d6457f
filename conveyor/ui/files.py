"""The files the UI may read: those under an artifact's recorded URI, and execution logs.

Every path comes from the metadata store (an artifact's ``uri``, an execution's
``log_uri``); a request only names a file *relative* to one of them. A name that climbs out
(``..``), is absolute, or resolves through a symlink to somewhere outside the artifact's
folder is refused, as is anything not on the local filesystem.

Example::

    path = confined_file(artifact.uri, "Split-train/part-0.parquet")  # or raises FileRefused
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from conveyor.io.filesystems import split_uri
from conveyor.types import ConveyorError

__all__ = ["FileRefused", "confined_file", "list_files", "tail"]

MAX_LISTED = 500


class FileRefused(ConveyorError):
    """A file the UI will not serve: outside the artifact or remote (``status`` 403), or
    missing (404)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def confined_file(uri: str, relative: str) -> Path:
    """The regular file ``relative`` names inside the local artifact folder ``uri``."""
    if "://" in uri:
        raise FileRefused(f"Artifact files at {uri} are remote; the UI lists local files only.")
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if not parts or relative.startswith(("/", "\\")) or any(p in ("..", "") for p in parts):
        raise FileRefused(f"{relative!r} is not a path inside the artifact.")
    if any(":" in p for p in parts[:1]):  # a drive letter
        raise FileRefused(f"{relative!r} is not a path inside the artifact.")
    base = Path(uri).resolve()
    target = base.joinpath(*parts).resolve()
    if base == target or base not in target.parents:
        raise FileRefused(f"{relative!r} leads outside the artifact at {uri}.")
    if not target.is_file():
        raise FileRefused(f"There is no file {relative!r} in the artifact at {uri}.", 404)
    return target


def list_files(uri: str, limit: int = MAX_LISTED) -> dict[str, Any]:
    """``{"local", "exists", "files": [{"path", "bytes"}], "total", "more"}`` for ``uri``;
    symlinks are listed but not followed."""
    if "://" in uri:
        return {"local": False, "exists": None, "files": [], "total": 0, "more": 0}
    root = Path(uri)
    if not root.exists():
        return {"local": True, "exists": False, "files": [], "total": 0, "more": 0}
    files: list[dict[str, Any]] = []
    count = total = 0
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(folder, name)
            size = os.lstat(full).st_size
            count, total = count + 1, total + size
            if len(files) < limit:
                files.append(
                    {"path": os.path.relpath(full, root).replace(os.sep, "/"), "bytes": size}
                )
    return {
        "local": True,
        "exists": True,
        "files": files,
        "total": total,
        "more": count - len(files),
    }


def tail(path: str | None, max_bytes: int = 8192) -> str | None:
    """The last ``max_bytes`` of a log file (local, or beside a remote pipeline root's
    artifacts), or None when there is none."""
    if not path:
        return None
    if "://" in path:
        data, size = _remote_tail(path, max_bytes)
        if data is None:
            return None
        text = data.decode("utf-8", errors="replace")
    else:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode("utf-8", errors="replace")
    if size > max_bytes:
        text = "…" + text.split("\n", 1)[-1]
    return text


def _remote_tail(uri: str, max_bytes: int) -> tuple[bytes | None, int]:
    try:
        fs, path = split_uri(uri)
        size = fs.size(path)
        with fs.open(path, "rb") as handle:
            handle.seek(max(0, size - max_bytes))
            return handle.read(), size
    except Exception:  # not there (yet), or the store is unreachable: no tail to show
        return None, 0
