"""Copying a model bundle between folders and URIs, and checking a copy byte for byte.

Every file is copied, ``manifest.json`` last: a reader that takes the manifest as the sign
of a complete bundle never finds one with files still missing. A copy is checked against
the manifest's SHA-256s (and its ``manifest_sha256`` against the original's) before anyone
is pointed at it.

Example::

    names = copy_bundle(model.uri, "/tmp/staging")        # ['MLmodel', ..., 'manifest.json']
    verify_copy("/tmp/staging", read_manifest(model.uri)) # ConveyorError naming a bad file
"""

from __future__ import annotations

import hashlib
import shutil
from typing import Any

from conveyor.frameworks import manifest as mf
from conveyor.io import filesystems as fsx
from conveyor.types import ConveyorError


def relative_files(uri: str) -> list[str]:
    """Every file under the folder ``uri``, ``/``-separated and relative, manifest last."""
    fs, root = fsx.split_uri(uri)
    prefix = root.rstrip("/") + "/"
    names = sorted(path[len(prefix) :] for path in fs.find(root) if path.startswith(prefix))
    if mf.MANIFEST_FILE in names:
        names.remove(mf.MANIFEST_FILE)
        names.append(mf.MANIFEST_FILE)
    return names


def copy_bundle(source: str, target: str) -> list[str]:
    """Copy every file of the folder ``source`` into ``target`` (paths or URIs, ``target``
    made as needed), ``manifest.json`` last; the names copied."""
    names = relative_files(source)
    if not names:
        raise ConveyorError(f"The model at {source} holds no files; there is no bundle to copy.")
    for name in names:
        parts = name.split("/")
        with (
            fsx.open_file(fsx.join(source, *parts), "rb") as read,
            fsx.open_file(fsx.join(target, *parts), "wb") as write,
        ):
            shutil.copyfileobj(read, write, 1 << 20)
    return names


def verify_copy(uri: str, original: dict[str, Any]) -> dict[str, Any]:
    """The manifest of the copy at ``uri`` once every file it lists matches its SHA-256 and
    the manifest itself is the ``original`` one; ConveyorError naming what differs."""
    manifest = mf.read_manifest(uri)
    if manifest.get("manifest_sha256") != original.get("manifest_sha256"):
        raise ConveyorError(
            f"The copy of the model at {uri} has a different manifest than the original "
            "(its manifest_sha256 differs): the copy was changed while it was written."
        )
    fs, root = fsx.split_uri(uri)
    if "://" not in uri:
        mf.verify_files(root, manifest)
        return manifest
    present = set(relative_files(uri))
    for name, expected in sorted(manifest.get("files", {}).items()):
        if name not in present:
            raise ConveyorError(f"The copy of the model at {uri} lacks {name}.")
        if _sha256(fs, f"{root.rstrip('/')}/{name}") != expected:
            raise ConveyorError(
                f"{name} in the copy of the model at {uri} does not match the SHA-256 in "
                f"{mf.MANIFEST_FILE}: it was changed or truncated on the way."
            )
    return manifest


def _sha256(fs: Any, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
