"""The models a server holds: for each, the version being served and the state of every
version seen under its base directory, kept current by a background watcher.

A base directory holds one bundle per numbered folder, ``{base}/{version}/``, as the Pusher
writes them (into a temporary folder, then renamed). The highest version that loads is
served. The watcher looks again every ``poll_s`` seconds: a new version is loaded (its
hashes checked, the model warmed up) beside the one serving, then swapped in with a single
assignment, so a request already holding the old version finishes on it. A version that
fails to load is reported (state ``END`` with the error, as TensorFlow Serving reports it)
and the old one keeps serving; it is tried again only when its folder changes. Removing the
served version's folder rolls back to the highest remaining version.

Example::

    repository = ModelRepository({"penguin": "/models/penguin"}, poll_s=1.0)
    repository.start()                      # loads now, then watches in a thread
    servable = repository.model("penguin").get()          # the version serving now
    repository.model("penguin").status()    # [{"version": "2", "state": "AVAILABLE", ...}]
    repository.stop()
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.io import filesystems as fsx
from conveyor.serving.errors import NotFound, Unavailable
from conveyor.serving.servable import Servable

logger = logging.getLogger(__name__)

#: Called after each load: (model name, version, error or None).
LoadListener = Callable[[str, int, "str | None"], None]


@dataclass
class VersionStatus:
    version: int
    state: str  # LOADING, AVAILABLE or END (TensorFlow Serving's names)
    error: str = ""
    stamp: Any = None  # what the folder looked like when it failed to load

    def to_json(self) -> dict[str, Any]:
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {
                "error_code": "UNKNOWN" if self.error else "OK",
                "error_message": self.error,
            },
        }


class ServedModel:
    """One model's versions; :meth:`get` hands out the servable answering now."""

    def __init__(self, name: str, base: str, on_load: LoadListener | None = None) -> None:
        self.name = name
        self.base = base
        self.current: Servable | None = None
        self.problem = ""  # why nothing could be listed, when so
        self.polls = 0  # looks at the base directory completed
        self._statuses: dict[int, VersionStatus] = {}
        self._lock = threading.Lock()
        self._on_load = on_load

    def get(self, version: int | None = None) -> Servable:
        current = self.current  # one read: a swap mid-request does not change what we hold
        if version is None or (current is not None and current.version == version):
            if current is None:
                raise Unavailable(self._not_ready())
            return current
        with self._lock:
            status = self._statuses.get(version)
        serving = f"; version {current.version} is serving" if current is not None else ""
        if status is None:
            raise NotFound(f"Model {self.name!r} has no version {version}{serving}.")
        why = f": {status.error}" if status.error else ""
        raise NotFound(
            f"Version {version} of model {self.name!r} is not loaded (state {status.state})"
            f"{why}{serving}."
        )

    def status(self, version: int | None = None) -> list[dict[str, Any]]:
        """TensorFlow Serving's ``model_version_status`` list, newest version first."""
        with self._lock:
            statuses = sorted(self._statuses.values(), key=lambda s: -s.version)
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise NotFound(f"Model {self.name!r} has no version {version}.")
        return [s.to_json() for s in statuses]

    @property
    def ready(self) -> bool:
        return self.current is not None

    @property
    def failure(self) -> str | None:
        """Why nothing serves, once the base directory was looked at in full."""
        if self.current is not None or self.polls == 0:
            return None
        return self._not_ready()

    def poll(self) -> None:
        """Look at the base directory once; load and swap in what should serve."""
        try:
            self._poll()
        finally:
            self.polls += 1

    def _poll(self) -> None:
        try:
            found = list_versions(self.base)
            self.problem = ""
        except OSError as exc:
            self.problem = f"cannot list {self.base}: {exc}"
            logger.warning("Model %r: %s", self.name, self.problem)
            return
        if not found:
            self.problem = f"no numbered version folders in {self.base}"
        current = self.current.version if self.current is not None else None
        for version in sorted(found, reverse=True):
            if version == current:
                return
            path, stamp = found[version]
            with self._lock:
                status = self._statuses.get(version)
            if status is not None and status.error and status.stamp == stamp:
                continue  # failed before and unchanged since
            if self._load(version, path, stamp):
                return

    def _load(self, version: int, path: str, stamp: Any) -> bool:
        with self._lock:
            self._statuses[version] = VersionStatus(version, "LOADING")
        logger.info("Model %r: loading version %d from %s", self.name, version, path)
        try:
            from conveyor.frameworks.bundle import load_model

            servable = Servable(self.name, version, load_model(path))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.error("Model %r: version %d failed to load: %s", self.name, version, error)
            with self._lock:
                self._statuses[version] = VersionStatus(version, "END", error, stamp)
            self._notify(version, error)
            return False
        with self._lock:
            old = self.current
            self.current = servable
            self._statuses[version] = VersionStatus(version, "AVAILABLE")
            if old is not None:
                self._statuses[old.version] = VersionStatus(old.version, "END")
        logger.info("Model %r: serving version %d", self.name, version)
        self._notify(version, None)
        return True

    def _notify(self, version: int, error: str | None) -> None:
        if self._on_load is not None:
            self._on_load(self.name, version, error)

    def _not_ready(self) -> str:
        with self._lock:
            failed = [s for s in self._statuses.values() if s.error]
        if failed:
            last = max(failed, key=lambda s: s.version)
            return (
                f"Model {self.name!r} has no version loaded: version {last.version} failed: "
                f"{last.error}"
            )
        why = f" ({self.problem})" if self.problem else ""
        return f"Model {self.name!r} has no version loaded yet{why}."


class ModelRepository:
    """Every model a server holds, and the thread that keeps them current."""

    def __init__(
        self,
        models: Mapping[str, str],
        *,
        poll_s: float = 1.0,
        on_load: LoadListener | None = None,
    ) -> None:
        self.models = {name: ServedModel(name, base, on_load) for name, base in models.items()}
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def model(self, name: str) -> ServedModel:
        try:
            return self.models[name]
        except KeyError:
            raise NotFound(
                f"Model {name!r} is not served here; models: {', '.join(sorted(self.models))}."
            ) from None

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self.models.values())

    def poll(self) -> None:
        for model in self.models.values():
            try:
                model.poll()
            except Exception:  # the watcher must outlive any one bad folder
                logger.exception("Model %r: looking for new versions failed", model.name)

    def start(self) -> None:
        """Load every model's versions in a background thread, then watch for new ones."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="conveyor-model-watch")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _watch(self) -> None:
        self.poll()
        while self.poll_s > 0 and not self._stop.wait(self.poll_s):
            self.poll()


def list_versions(base: str) -> dict[int, tuple[str, Any]]:
    """Version → (folder, stamp) for each numbered folder under ``base``. The stamp changes
    when the folder's entries or its manifest change. On an object store, where a push
    cannot rename a folder into place, a version counts only once its ``manifest.json`` (the
    Pusher's last upload) is there; its stamp is the manifest's etag or modification time."""
    if "://" not in base:
        found = {}
        with os.scandir(base) as entries:
            for entry in entries:
                if entry.name.isdigit() and entry.is_dir():
                    found[int(entry.name)] = (entry.path, _local_stamp(entry.path))
        return found
    fs, path = fsx.split_uri(base)
    found = {}
    for info in fs.ls(path, detail=True):
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if name.isdigit() and info.get("type") == "directory":
            folder = info["name"].rstrip("/")
            stamp = _remote_stamp(fs, folder + "/manifest.json")
            if stamp is not None:
                found[int(name)] = (fsx.unsplit(fs, folder), stamp)
    return found


def _remote_stamp(fs: Any, manifest: str) -> Any:
    try:
        info = fs.info(manifest)
    except (OSError, ValueError):  # FileNotFoundError: the push is still uploading
        return None
    return info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime")


def _local_stamp(folder: str) -> tuple[int, int | None]:
    try:
        manifest: int | None = os.stat(os.path.join(folder, "manifest.json")).st_mtime_ns
    except OSError:
        manifest = None
    return os.stat(folder).st_mtime_ns, manifest
