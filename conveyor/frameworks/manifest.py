"""The files of a model bundle besides the model itself: ``manifest.json``, which records the
SHA-256 of every other file and is checked before anything in the bundle is deserialized, and
the MLflow ``MLmodel`` file with its environment files.

The manifest cannot hold its own hash, so it carries ``manifest_sha256``: the SHA-256 of its
other fields written as canonical JSON (sorted keys, no spaces). A changed value anywhere in
it is caught; a change of indentation is not a change of content and passes.

Example::

    manifest = read_manifest("/models/penguin")   # ConveyorError if it was changed
    verify_files("/models/penguin", manifest)     # ConveyorError naming a changed file
    manifest["files"]["model/model.pkl"]          # '9f86d0...'
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.io import filesystems as fsx
from conveyor.types import ConveyorError

if TYPE_CHECKING:
    from conveyor.frameworks.base import ModelAdapter

FORMAT = "conveyor.model/1"
MANIFEST_FILE = "manifest.json"
MLMODEL_FILE = "MLmodel"
MODEL_DIR = "model"
TRANSFORM_DIR = "transform"
#: Folders whose every file must be listed in the manifest: what gets deserialized.
CHECKED_DIRS = (MODEL_DIR, TRANSFORM_DIR)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_files(root: str) -> list[str]:
    """Every file under the local folder ``root`` as a ``/``-separated relative path."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            relative = os.path.relpath(os.path.join(folder, name), root)
            found.append(relative.replace(os.sep, "/"))
    return sorted(found)


def hash_files(root: str) -> dict[str, str]:
    """The SHA-256 of every file under ``root`` but the manifest."""
    return {
        name: sha256_file(os.path.join(root, name))
        for name in bundle_files(root)
        if name != MANIFEST_FILE
    }


def _content_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_manifest(root: str, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` (with its ``manifest_sha256``) as ``{root}/manifest.json``."""
    document = {**manifest, "manifest_sha256": _content_digest(manifest)}
    with open(os.path.join(root, MANIFEST_FILE), "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, sort_keys=False)
        handle.write("\n")


def read_manifest(root: str) -> dict[str, Any]:
    """The manifest of the bundle at ``root`` (a folder or URI), checked against its digest."""
    path = fsx.join(root, MANIFEST_FILE)
    if not fsx.exists(path):
        raise ConveyorError(
            f"{root} is not a model bundle: it has no {MANIFEST_FILE}. Give the uri of a Model "
            "artifact or a folder written by conveyor.frameworks.save_model."
        )
    with fsx.open_file(path, "rb") as handle:
        try:
            manifest = json.loads(handle.read())
        except ValueError as exc:
            raise ConveyorError(
                f"{path} is not valid JSON ({exc}): the bundle was changed or corrupted. "
                "Save the model again or restore the bundle."
            ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ConveyorError(
            f"{path} is not a manifest this version reads (format {found!r}, expected {FORMAT!r})."
        )
    if manifest.get("manifest_sha256") != _content_digest(manifest):
        raise ConveyorError(
            f"{path} does not match its manifest_sha256: the manifest was changed or "
            "corrupted. Save the model again or restore the bundle."
        )
    return manifest


def verify_files(root: str, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists against its SHA-256, and that the model and
    transform folders hold nothing it does not list. Reads bytes only, never objects."""
    listed: dict[str, str] = manifest.get("files", {})
    for name, expected in sorted(listed.items()):
        path = os.path.join(root, *name.split("/"))
        if not os.path.isfile(path):
            raise ConveyorError(
                f"The model bundle at {root} lacks {name}, which its manifest lists. "
                "Restore the file or save the model again."
            )
        if sha256_file(path) != expected:
            raise ConveyorError(
                f"{name} in the model bundle at {root} does not match the SHA-256 in "
                f"{MANIFEST_FILE}: it was changed or corrupted. Restore it or save the model "
                "again."
            )
    for name in bundle_files(root):
        if name.split("/", 1)[0] in CHECKED_DIRS and name not in listed:
            raise ConveyorError(
                f"{name} in the model bundle at {root} is not listed in {MANIFEST_FILE}. "
                "Remove it: only files the manifest lists may sit beside the model."
            )


def is_bundle(uri: str) -> bool:
    """Whether ``uri`` holds a model bundle (a manifest of this format); hashes unchecked."""
    path = fsx.join(uri, MANIFEST_FILE)
    if not fsx.exists(path):
        return False
    try:
        with fsx.open_file(path, "rb") as handle:
            manifest = json.loads(handle.read())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def write_mlflow_files(
    root: str, *, framework: str, python_version: str, requirements: list[str]
) -> None:
    """``MLmodel`` (flavor ``python_function`` loaded by ``conveyor.frameworks.mlflow_pyfunc``)
    and the environment files it names. Written by hand: small fixed YAML documents whose
    values are JSON strings (valid YAML scalars)."""
    q = json.dumps
    documents = {
        MLMODEL_FILE: [
            "flavors:",
            "  python_function:",
            "    loader_module: conveyor.frameworks.mlflow_pyfunc",
            "    data: .",
            "    env:",
            "      conda: conda.yaml",
            "      virtualenv: python_env.yaml",
            f"    python_version: {q(python_version)}",
            "  conveyor:",
            f"    manifest: {MANIFEST_FILE}",
            f"    framework: {q(framework)}",
        ],
        "python_env.yaml": [
            f"python: {q(python_version)}",
            "build_dependencies:",
            "- pip",
            "dependencies:",
            "- -r requirements.txt",
        ],
        "conda.yaml": [
            "name: conveyor-model",
            "channels:",
            "- conda-forge",
            "dependencies:",
            f"- {q('python=' + python_version)}",
            "- pip",
            "- pip:",
            *[f"  - {q(r)}" for r in requirements],
        ],
        "requirements.txt": requirements,
    }
    for name, lines in documents.items():
        with open(os.path.join(root, name), "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


#: top-level module -> the distributions that usually provide it, tried first
_KNOWN_DISTRIBUTIONS = {
    "sklearn": ("scikit-learn",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
}


def _first_installed(names: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``names`` that is an installed distribution, and its version."""
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return name, importlib.metadata.version(name)
    return None


class Versions:
    """Versions of conveyor, the adapter and the framework's distributions."""

    def __init__(self, adapter: ModelAdapter) -> None:
        # The root package is loaded already (it holds this one); asked for by name so the
        # layer check does not read it as an import of everything the root re-exports.
        self.conveyor: str = importlib.import_module("conveyor").__version__
        self.adapter_obj = adapter
        self._distributions: dict[str, list[str]] | None = None

    def _distribution(self, module: str) -> tuple[str, str] | None:
        top = module.split(".", 1)[0]
        usual = _KNOWN_DISTRIBUTIONS.get(top, (top,))
        return _first_installed(usual) or _first_installed(self._listed(top))

    def _listed(self, top: str) -> list[str]:
        """Every installed distribution providing ``top`` (reading them all takes a while:
        only done when the usual names are not installed)."""
        if self._distributions is None:
            self._distributions = importlib.metadata.packages_distributions()
        return self._distributions.get(top, [])

    def adapter(self) -> dict[str, str]:
        cls = type(self.adapter_obj)
        if cls.__module__.split(".", 1)[0] == "conveyor":
            version = self.conveyor
        else:
            found = self._distribution(cls.__module__)
            version = found[1] if found else "unknown"
        return {
            "name": self.adapter_obj.name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "version": version,
        }

    def requirements(self) -> list[str]:
        extra = self.adapter_obj.extra
        found = [f"conveyor[{extra}]=={self.conveyor}" if extra else f"conveyor=={self.conveyor}"]
        for module in self.adapter_obj.modules:
            distribution = self._distribution(module)
            if distribution is not None:
                found.append(f"{distribution[0]}=={distribution[1]}")
                break
        return found
