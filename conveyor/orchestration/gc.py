"""Garbage collection: delete the files of artifacts that no recent run needs.

An artifact is kept when an execution of one of the last ``keep_last`` runs of any
pipeline read or wrote it, or when a run or execution that touches it is still RUNNING.
The files of every other artifact are deleted, but only where the artifact's URI has the
layout the launcher gives outputs, ``{root}/{node_id}/{output_key}/{execution_id}``: an
imported artifact points at the user's own files, which are never touched. Metadata rows
stay, marked ``DELETED``, so lineage still reads.

Example::

    report = collect_garbage(MetadataStore(), keep_last=3, dry_run=True)
    print(len(report.deleted), report.bytes_freed)
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from conveyor.io.filesystems import split_uri
from conveyor.metadata import MetadataStore
from conveyor.orchestration.staging import is_remote
from conveyor.types import Artifact, ConveyorError, MetadataError

__all__ = ["GcReport", "collect_garbage", "pipeline_root"]

logger = logging.getLogger(__name__)

_COLLECTABLE = ("LIVE", "ABANDONED", "PENDING")


@dataclass
class GcReport:
    """What :func:`collect_garbage` deleted (or, with ``dry_run``, would delete).

    ``skipped`` names unreachable artifacts whose files were left alone and why;
    ``errors`` names artifacts whose files could not be removed.
    """

    dry_run: bool
    deleted: list[int] = field(default_factory=list)
    bytes_freed: int = 0
    uris: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


def pipeline_root(uri: str, *, node_id: str, output_key: str, execution_id: int) -> str | None:
    """The pipeline root an output URI lies in, when it has the launcher's layout
    ``{root}/{node_id}/{output_key}/{execution_id}`` (on disk or on an object store); None
    otherwise (an imported file, a path someone wrote by hand)."""
    if is_remote(uri):
        scheme, _, rest = uri.partition("://")
        parts = rest.rstrip("/").split("/")
        if len(parts) < 4 or ".." in parts or "" in parts:  # the root may be a bucket
            return None
        if tuple(parts[-3:]) != (node_id, output_key, str(execution_id)):
            return None
        return f"{scheme}://{'/'.join(parts[:-3])}"
    path = PurePath(uri)
    if not path.is_absolute() or ".." in path.parts or len(path.parts) < 5:
        return None
    if path.parts[-3:] != (node_id, output_key, str(execution_id)):
        return None
    return str(path.parents[2])


def collect_garbage(
    store: MetadataStore,
    keep_last: int,
    pipeline: str | None = None,
    dry_run: bool = False,
) -> GcReport:
    """Delete the files of artifacts outside the last ``keep_last`` runs of each pipeline
    (or of ``pipeline`` only) and mark them DELETED."""
    if not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 1:
        raise ConveyorError(
            f"The 'keep_last' parameter of collect_garbage must be an int >= 1. Got "
            f"{keep_last!r} instead."
        )
    pipelines = store.pipelines()
    if pipeline is not None and pipeline not in pipelines:
        known = ", ".join(pipelines) or "none yet"
        raise MetadataError(
            f"No pipeline {pipeline!r} in the metadata store at {store.url} (pipelines: "
            f"{known}). Check the name with `conveyor runs`."
        )
    keep = _reachable(store, pipelines, keep_last)
    report = GcReport(dry_run=dry_run)
    doomed: list[Artifact] = []
    for name in [pipeline] if pipeline is not None else pipelines:
        doomed += _collectable(store, name, keep, report)
    for artifact in doomed:
        report.deleted.append(artifact.id)
        report.uris[artifact.id] = artifact.uri
        report.bytes_freed += _size(artifact.uri)
    if dry_run or not doomed:
        return report
    # Mark first: a crash half-way leaves stray files, never a LIVE artifact without files
    # that the cache would hand to the next run.
    store.set_artifact_state(report.deleted, "DELETED")
    for artifact in doomed:
        try:
            _remove(artifact.uri)
        except OSError as exc:
            logger.warning("Could not delete %s: %s", artifact.uri, exc)
            report.errors[artifact.id] = f"{exc}. Remove {artifact.uri} by hand."
    return report


def _reachable(store: MetadataStore, pipelines: list[str], keep_last: int) -> set[int]:
    """Artifacts that the last runs of every pipeline, and anything RUNNING, read or wrote.

    All pipelines count, even when collecting one: a Resolver in another pipeline may have
    picked an artifact up.
    """
    run_ids: set[str] = set()
    for name in pipelines:
        run_ids |= {r.run_id for r in store.runs(name, limit=keep_last)}
        run_ids |= {r.run_id for r in store.runs(name) if r.status == "RUNNING"}
    executions = store.executions(states=["RUNNING"])
    for run_id in sorted(run_ids):
        executions += store.executions(run_id=run_id)
    keep: set[int] = set()
    for execution in executions:
        for ids in (*execution.inputs.values(), *execution.outputs.values()):
            keep.update(ids)
    return keep


def _collectable(
    store: MetadataStore, pipeline: str, keep: set[int], report: GcReport
) -> list[Artifact]:
    """The unreachable artifacts that ``pipeline`` itself wrote into its root."""
    artifacts = [
        a for a in store.artifacts(pipeline=pipeline, states=list(_COLLECTABLE)) if a.id not in keep
    ]
    if not artifacts:
        return []
    producer_of: dict[int, tuple[int, str]] = {}
    for artifact_id, execution_id, kind, key in store.edges(artifact_ids=[a.id for a in artifacts]):
        if kind == "OUTPUT":  # edges are sorted, so the first is the original producer
            producer_of.setdefault(artifact_id, (execution_id, key))
    producers = {
        e.execution_id: e
        for e in store.executions(execution_ids=sorted({e for e, _ in producer_of.values()}))
    }
    found = []
    for artifact in artifacts:
        execution_id, key = producer_of.get(artifact.id, (None, ""))
        producer = producers.get(execution_id)
        if producer is None or producer.pipeline != pipeline:
            continue  # another pipeline wrote it; collected (or not) as part of that one
        if producer.state == "RUNNING":
            continue
        root = pipeline_root(
            artifact.uri, node_id=producer.node_id, output_key=key, execution_id=execution_id
        )
        if root is None:
            report.skipped[artifact.id] = (
                f"{artifact.uri} is not an output folder inside the pipeline root "
                "(an imported or external artifact); its files are the user's"
            )
        elif not _inside(artifact.uri, root):
            report.skipped[artifact.id] = (
                f"{artifact.uri} resolves (through a symbolic link) to a place outside the "
                f"pipeline root {root}"
            )
        else:
            found.append(artifact)
    return found


def _inside(uri: str, root: str) -> bool:
    if is_remote(uri):  # no links on an object store: the layout check was enough
        return True
    return Path(uri).resolve().is_relative_to(Path(root).resolve())


def _size(uri: str) -> int:
    if is_remote(uri):
        fs, remote = split_uri(uri)
        return int(fs.du(remote)) if fs.exists(remote) else 0
    path = Path(uri)
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _remove(uri: str) -> None:
    if is_remote(uri):
        fs, remote = split_uri(uri)
        if fs.exists(remote):
            fs.rm(remote, recursive=True)
        return
    path = Path(uri)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
