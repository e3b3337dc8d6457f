"""Files anywhere: local paths by default, ``s3://``, ``gs://`` and friends through fsspec.

Every reader and writer in Conveyor goes through these few functions, so an artifact root or
an input folder on an object store works the same as one on disk.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from conveyor.types import ConveyorError


def split_uri(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``uri`` and the path inside it."""
    import fsspec

    if "://" not in uri:
        return fsspec.filesystem("file"), os.path.abspath(os.path.expanduser(uri))
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        scheme = uri.split("://", 1)[0]
        hint = " (pip install conveyor[s3])" if scheme in ("s3", "s3a") else ""
        raise ConveyorError(
            f"Cannot open {uri}: no filesystem for '{scheme}://'{hint}: {exc}"
        ) from exc
    return fs, path


def join(base: str, *parts: str) -> str:
    """Join path parts, keeping a URI's scheme."""
    if "://" in base:
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def unsplit(fs: Any, path: str) -> str:
    """The URI for ``path`` on ``fs`` (the inverse of :func:`split_uri`)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return path
    return f"{protocol}://{path}"


def glob(pattern: str) -> list[str]:
    """Files matching ``pattern`` (``*``, ``?``, ``[...]``, ``**``), sorted, as URIs."""
    fs, path = split_uri(pattern)
    return sorted(unsplit(fs, p) for p in fs.glob(path) if fs.isfile(p))


def list_files(uri: str) -> list[str]:
    """Every file under a folder (recursively, hidden files excluded), sorted, as URIs."""
    fs, path = split_uri(uri)
    if fs.isfile(path):
        return [uri]
    found = [p for p in fs.find(path) if not any(s.startswith(".") for s in _relative(p, path))]
    return sorted(unsplit(fs, p) for p in found)


def _relative(path: str, base: str) -> list[str]:
    return path[len(base.rstrip("/")) + 1 :].split("/")


def exists(uri: str) -> bool:
    fs, path = split_uri(uri)
    return fs.exists(path)


def isdir(uri: str) -> bool:
    fs, path = split_uri(uri)
    return fs.isdir(path)


def makedirs(uri: str) -> None:
    fs, path = split_uri(uri)
    fs.makedirs(path, exist_ok=True)


def size(uri: str) -> int:
    fs, path = split_uri(uri)
    return int(fs.size(path))


@contextmanager
def open_file(uri: str, mode: str = "rb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a file for reading or writing; parent folders are made for writes."""
    fs, path = split_uri(uri)
    if any(flag in mode for flag in "wa"):
        parent = posixpath.dirname(path) if "://" in uri else os.path.dirname(path)
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, mode, **kwargs) as handle:
        yield handle


def arrow_filesystem(uri: str) -> tuple[Any, str]:
    """A ``pyarrow.fs`` filesystem and path for ``uri`` (local, or fsspec wrapped)."""
    import pyarrow.fs as pafs

    fs, path = split_uri(uri)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return pafs.LocalFileSystem(), path
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


# Local folders that stand in, in this process, for artifacts on an object store (the
# execution's staged copies, see conveyor.orchestration.staging): work spread over other
# machines reads and writes the object store itself.
_STAND_INS: dict[str, str] = {}
_WRITTEN_AT_ORIGIN: set[str] = set()


def stand_in(local: str, uri: str) -> None:
    """Record that the local folder ``local`` holds (or will hold) what ``uri`` holds."""
    _STAND_INS[os.path.abspath(local)] = uri.rstrip("/")


def origin(path: str) -> str | None:
    """The object-store URI that the local ``path`` stands for, if it lies in a folder
    recorded with :func:`stand_in`; None otherwise."""
    if "://" in path:
        return None
    full = os.path.abspath(path)
    for local, uri in _STAND_INS.items():
        if full == local:
            return uri
        if full.startswith(local + os.sep):
            return f"{uri}/{os.path.relpath(full, local).replace(os.sep, '/')}"
    return None


def note_written_at_origin(path: str) -> None:
    """Record that files of the folder standing in at ``path`` were written to its origin
    directly (its local copy is then incomplete)."""
    full = os.path.abspath(path)
    for local in _STAND_INS:
        if full == local or full.startswith(local + os.sep):
            _WRITTEN_AT_ORIGIN.add(local)


def written_at_origin(local: str) -> bool:
    """Whether :func:`note_written_at_origin` was called for (a path in) ``local``."""
    return os.path.abspath(local) in _WRITTEN_AT_ORIGIN
