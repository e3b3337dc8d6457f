"""Pusher: publish a blessed model bundle where a model server picks it up, as the next
numbered version in TensorFlow Serving's layout, ``{push_destination}/{version}/``.

The model is pushed only when every blessing given is positive (and a ``model_blessing`` is
for this very model); otherwise the Pusher records ``pushed=False`` with the reasons and
succeeds, and whatever serves from the destination stays as it is.

A local destination never shows half a model: the bundle is copied into a hidden folder
inside it (``.push-<random>``; the server's watcher reads only numbered folders), checked
against its manifest's SHA-256s, then renamed to the next version (1 + the highest number
present) in one atomic step. A push racing another for the same number takes the next one.

An object store (``s3://...``, any fsspec URI) has no atomic rename: the bundle is uploaded
under a hidden prefix, checked, then copied to ``{version}/`` with ``manifest.json`` last.
The manifest marks a complete version there: a reader must ignore a numbered folder until
its ``manifest.json`` exists. Two pushes to one object-store destination at the same moment
are not guarded against each other beyond a check that the version is still free.

Example::

    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"],
        push_destination="/models/penguin",
    )
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import uuid
from typing import Any

from conveyor.components._blessings import blessing_problems
from conveyor.components._bundle_files import copy_bundle, verify_copy
from conveyor.dsl import Input, Output, Param, component
from conveyor.io import filesystems as fsx
from conveyor.types import ConveyorError, InfraBlessing, Model, ModelBlessing, PushedModel

__all__ = ["Pusher", "latest_version", "next_version", "push_bundle", "push_model"]

logger = logging.getLogger(__name__)

RECORD_FILE = "push.json"
STAGING_PREFIX = ".push-"
_MAX_TRIES = 100


@component
def Pusher(
    model: Input[Model],
    pushed_model: Output[PushedModel],
    push_destination: Param[str],
    model_blessing: Input[ModelBlessing] | None = None,
    infra_blessing: Input[InfraBlessing] | None = None,
):
    """Copy ``model`` to ``{push_destination}/{version}/`` when the given blessings allow it;
    see the module docstring.

    Properties of ``pushed_model``: ``pushed`` (bool), ``pushed_destination`` (the version's
    folder), ``pushed_version`` (int), ``manifest_sha256`` (of the pushed bundle),
    ``model_id`` and ``reasons`` (why it was not pushed). ``{uri}/push.json`` holds the same.
    A destination that cannot be written fails the run, naming it.
    """
    push_model(model, pushed_model, push_destination, model_blessing, infra_blessing)


def push_model(
    model: Model,
    pushed_model: PushedModel,
    push_destination: str,
    model_blessing: ModelBlessing | None = None,
    infra_blessing: InfraBlessing | None = None,
) -> None:
    """Everything Pusher does."""
    from conveyor.frameworks import manifest as mf

    reasons = blessing_problems(model, model_blessing=model_blessing, infra_blessing=infra_blessing)
    record: dict[str, Any] = {
        "pushed": False,
        "pushed_destination": None,
        "pushed_version": None,
        "manifest_sha256": None,
        "model_id": model.id,
        "reasons": reasons,
    }
    if reasons:
        logger.info("Not pushing model %s: %s", model.id, " ".join(reasons))
    else:
        manifest = mf.read_manifest(model.uri)
        latest = latest_version(push_destination)
        if latest is not None and latest[2] == manifest["manifest_sha256"]:
            version, target, _ = latest
            record["already_latest"] = True
            logger.info("Model %s is already the latest version, %d: %s", model.id, *latest[:2])
        else:
            version, target = push_bundle(model.uri, push_destination, manifest)
            logger.info("Pushed model %s as version %d: %s", model.id, version, target)
        record.update(
            pushed=True,
            pushed_destination=target,
            pushed_version=version,
            manifest_sha256=manifest["manifest_sha256"],
        )
    pushed_model.properties.update(record)
    with fsx.open_file(fsx.join(pushed_model.uri, RECORD_FILE), "w") as handle:
        json.dump(record, handle, indent=1)


def push_bundle(source: str, destination: str, manifest: dict[str, Any]) -> tuple[int, str]:
    """Copy the bundle at ``source`` to the next version under ``destination``: (version,
    the version's folder)."""
    destination = str(destination)
    try:
        if "://" in destination:
            return _push_remote(source, destination, manifest)
        return _push_local(source, os.path.abspath(os.path.expanduser(destination)), manifest)
    except OSError as exc:
        raise ConveyorError(
            f"Cannot push the model to {destination}: {exc.strerror or exc}. The "
            "push_destination must be a folder this process can create and write: fix its "
            "permissions (or the credentials for it), or choose another push_destination."
        ) from exc


def latest_version(destination: str) -> tuple[int, str, str | None] | None:
    """The highest version under ``destination``: (version, its folder, its manifest's
    ``manifest_sha256``), or None when there is none. Pushing the very bundle that is already
    the latest version adds no new version, so re-running a pipeline does not repeat it."""
    destination = str(destination)
    if "://" not in destination:
        destination = os.path.abspath(os.path.expanduser(destination))
    fs, root = fsx.split_uri(destination)
    root = root.rstrip("/")
    try:
        version = next_version(fs, root) - 1
    except OSError:  # not a folder, or unreadable: pushing will say so
        return None
    if version < 1:
        return None
    folder = fsx.unsplit(fs, f"{root}/{version}")
    try:
        with fsx.open_file(fsx.join(folder, "manifest.json"), "rb") as handle:
            sha = json.load(handle).get("manifest_sha256")
    except (OSError, ValueError, AttributeError):  # a foreign or half-written folder
        sha = None
    return version, folder, sha


def next_version(fs: Any, root: str) -> int:
    """1 + the highest numbered folder under ``root`` (1 when there is none)."""
    try:
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        return 1
    numbers = [
        int(name)
        for entry in entries
        if entry.get("type") == "directory"
        and (name := entry["name"].rstrip("/").rsplit("/", 1)[-1]).isdigit()
    ]
    return max(numbers, default=0) + 1


def _push_local(source: str, base: str, manifest: dict[str, Any]) -> tuple[int, str]:
    fs, _ = fsx.split_uri(base)
    os.makedirs(base, exist_ok=True)
    staging = os.path.join(base, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
    os.mkdir(staging)  # made with the umask's permissions, so the server's user can read it
    try:
        copy_bundle(source, staging)
        verify_copy(staging, manifest)
        version = next_version(fs, base)
        for _ in range(_MAX_TRIES):
            target = os.path.join(base, str(version))
            try:
                os.rename(staging, target)  # atomic; fails when the version exists
                return version, target
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                    raise
            version = max(version + 1, next_version(fs, base))
        raise ConveyorError(f"Could not claim a free version under {base} in {_MAX_TRIES} tries.")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _push_remote(source: str, destination: str, manifest: dict[str, Any]) -> tuple[int, str]:
    fs, root = fsx.split_uri(destination)
    root = root.rstrip("/")
    fs.makedirs(root, exist_ok=True)
    staging = f"{root}/{STAGING_PREFIX}{uuid.uuid4().hex}"
    try:
        names = copy_bundle(source, fsx.unsplit(fs, staging))
        verify_copy(fsx.unsplit(fs, staging), manifest)
        fs.invalidate_cache(root)
        version = next_version(fs, root)
        while fs.exists(f"{root}/{version}"):
            version += 1
        target = f"{root}/{version}"
        for name in names:  # manifest.json comes last: it marks the version complete
            fs.copy(f"{staging}/{name}", f"{target}/{name}")
    finally:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
        fs.invalidate_cache(root)
    return version, fsx.unsplit(fs, target)
