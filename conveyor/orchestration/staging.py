"""Artifacts on an object store, seen by a component as local folders.

When a pipeline's root is a URI (``s3://bucket/path``, ``gs://...``), the execution's process
(on this machine or on a Ray worker node) copies each remote input artifact into a local
cache, gives the component a fresh local folder for each output, and uploads the outputs to
their URIs only after the component has returned: a failed or killed execution uploads
nothing it would not have published (its outputs are never marked LIVE either). Component
code sees ``artifact.uri`` as a local path, as with a local root, and what the metadata store
records is the remote URI. This is what Kubeflow Pipelines' launcher does for its steps.

Work a component spreads over a Ray cluster (:mod:`conveyor.io.distributed`) reads and
writes the object store itself: each local folder is recorded as standing in for its URI.

An uploaded output also stays in the cache under its URI, so the next node on the same
machine reads it without downloading it again. Artifacts never change once published, so a
cached copy is never stale. The cache lives in ``$CONVEYOR_HOME/cache/artifacts``; delete
it at will.

Example::

    staging = Staging(kwargs, outputs)   # downloads inputs, points outputs at local folders
    fn(**staging.kwargs)
    staging.publish()                    # uploads outputs; their .uri is remote again
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Mapping
from copy import copy
from pathlib import Path
from typing import Any

from conveyor.io.filesystems import split_uri, stand_in, written_at_origin
from conveyor.settings import conveyor_home
from conveyor.types import Artifact, ExecutionError

__all__ = ["Staging", "is_remote", "local_copy", "upload_file", "upload_folder"]

logger = logging.getLogger(__name__)


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names a place other than this machine's filesystem."""
    return "://" in uri and not uri.startswith("file://")


def cache_dir() -> Path:
    return conveyor_home() / "cache" / "artifacts"


def _cache_path(uri: str) -> Path:
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:32]
    return cache_dir() / digest


class Staging:
    """The component's arguments with remote artifacts replaced by local folders."""

    def __init__(self, kwargs: Mapping[str, Any], outputs: Mapping[str, Artifact]) -> None:
        self.outputs = dict(outputs)
        self.remote = {k: a.uri for k, a in outputs.items() if is_remote(a.uri)}
        self.kwargs = dict(kwargs)
        for key, value in kwargs.items():
            if key in outputs:
                continue
            if isinstance(value, Artifact):
                self.kwargs[key] = _staged_input(value)
            elif isinstance(value, list) and any(isinstance(v, Artifact) for v in value):
                self.kwargs[key] = [_staged_input(v) if isinstance(v, Artifact) else v
                                    for v in value]  # fmt: skip
        for key, uri in self.remote.items():
            folder = cache_dir() / f".staging-{_cache_path(uri).name}-{os.getpid()}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            self.outputs[key].uri = str(folder)
            stand_in(str(folder), uri)

    def publish(self) -> None:
        """Upload every output to its URI; each artifact's ``.uri`` is remote again."""
        for key, uri in self.remote.items():
            artifact = self.outputs[key]
            folder = Path(artifact.uri)
            upload_folder(folder, uri)
            artifact.uri = uri
            if written_at_origin(str(folder)):  # work on the cluster wrote part of it there
                shutil.rmtree(folder, ignore_errors=True)
            else:
                _keep_in_cache(folder, uri)

    def discard(self) -> None:
        """Remove the local output folders of an execution that failed."""
        for key, uri in self.remote.items():
            artifact = self.outputs[key]
            if artifact.uri != uri:
                shutil.rmtree(artifact.uri, ignore_errors=True)
                artifact.uri = uri


def _staged_input(artifact: Artifact) -> Artifact:
    if not is_remote(artifact.uri):
        return artifact
    local = copy(artifact)
    local.properties = dict(artifact.properties)
    local.uri = str(local_copy(artifact.uri))
    stand_in(local.uri, artifact.uri)
    return local


def local_copy(uri: str) -> Path:
    """A local folder (or file) with what ``uri`` holds, downloaded once into the cache."""
    target = _cache_path(uri)
    if target.exists():
        return target
    fs, path = split_uri(uri)
    partial = target.with_name(f".partial-{target.name}-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        if fs.isfile(path):
            partial.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(partial))
        else:
            _download_folder(fs, path, partial)
        try:
            partial.rename(target)
        except OSError:  # another process on this machine downloaded it first
            if not target.exists():
                raise
    except Exception as exc:
        raise ExecutionError(
            f"Could not copy the artifact at {uri} to {target}: {type(exc).__name__}: {exc}. "
            "Check that the object store is reachable from this machine with the same "
            "credentials, and that the local disk has room (or set CONVEYOR_HOME)."
        ) from exc
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            partial.unlink()
    return target


def _download_folder(fs: Any, path: str, local: Path) -> None:
    base = path.rstrip("/")
    remote_files = [p for p in fs.find(base) if p.rstrip("/") != base]
    local.mkdir(parents=True)
    if not remote_files:
        return
    local_files = [str(local / p[len(base) + 1 :]) for p in remote_files]
    for name in local_files:
        os.makedirs(os.path.dirname(name), exist_ok=True)
    fs.get(remote_files, local_files)


def upload_folder(folder: Path, uri: str) -> None:
    """Copy every file under ``folder`` to the same relative path under ``uri``."""
    fs, path = split_uri(uri)
    local_files, remote_files = [], []
    for parent, _, names in os.walk(folder):
        for name in sorted(names):
            full = os.path.join(parent, name)
            local_files.append(full)
            relative = os.path.relpath(full, folder).replace(os.sep, "/")
            remote_files.append(f"{path.rstrip('/')}/{relative}")
    if not local_files:
        return
    try:
        fs.put(local_files, remote_files)
    except Exception as exc:
        raise ExecutionError(
            f"Could not upload the output at {folder} to {uri}: {type(exc).__name__}: {exc}. "
            "Check the object store's credentials and that the bucket exists and is writable."
        ) from exc


def upload_file(path: str, uri: str) -> None:
    """Copy the local file ``path`` to ``uri``."""
    fs, remote = split_uri(uri)
    fs.put_file(path, remote)


def _keep_in_cache(folder: Path, uri: str) -> None:
    target = _cache_path(uri)
    try:
        folder.rename(target)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
