"""Data-parallel passes over Examples splits on a Ray cluster, with Ray Data.

When the Ray runner runs a component, its process gets the cluster's address in
``CONVEYOR_RAY_ADDRESS``. A heavy component asks :func:`use_ray_data` whether a split is
worth spreading over the cluster, then either streams it as usual or calls:

- :func:`map_reduce`: each block (consecutive row groups of one of the split's Parquet files,
  streamed a row group at a time) becomes a partial result on a worker, as a Ray Data
  task, and the partials are merged here, in row order, with the same merge the threaded
  local pass uses;
- :func:`map_write`: each block is mapped and written by its worker into the usual
  ``{uri}/Split-{name}/part-NNNNN.parquet`` layout, rows in the split's order. Blocks are
  written under hidden names and renamed once all are written, so nothing half-written is
  ever visible under a data file's name.

``CONVEYOR_RAY_DATA_MIN_ROWS`` is the smallest split spread over the cluster (default
1,000,000 rows; ``0`` always, ``off`` never). The cluster reaches a local folder only when
the runner says every node mounts it (``CONVEYOR_RAY_SHARED_PATHS``, set by the runner).

Example::

    if use_ray_data(source, "train", "StatisticsGen"):
        merged = map_reduce(source, "train", make, StatisticsAccumulator.add, merge)
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from conveyor.io import filesystems as fsx
from conveyor.io._blocks import BlockWriter, FileReader, blocks_of, reduce_job, write_job
from conveyor.io._ray_driver import receive, send
from conveyor.io.examples import ExamplesSource
from conveyor.io.writers import split_dir
from conveyor.types import ConveyorError

__all__ = [
    "ENGINE",
    "Written",
    "map_reduce",
    "map_write",
    "min_rows",
    "reachable",
    "run_on_cluster",
    "shutdown",
    "use_ray_data",
]

logger = logging.getLogger(__name__)

ADDRESS_ENV = "CONVEYOR_RAY_ADDRESS"
SHARED_PATHS_ENV = "CONVEYOR_RAY_SHARED_PATHS"
MIN_ROWS_ENV = "CONVEYOR_RAY_DATA_MIN_ROWS"
DEFAULT_MIN_ROWS = 1_000_000
ENGINE = "ray-data"
BATCH_SIZE = 65_536


def min_rows() -> int | None:
    """The smallest split worth a Ray Data pass, from ``CONVEYOR_RAY_DATA_MIN_ROWS``;
    None when turned off."""
    text = os.environ.get(MIN_ROWS_ENV, "").strip().lower()
    if not text:
        return DEFAULT_MIN_ROWS
    if text in ("off", "none", "never"):
        return None
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise ConveyorError(
            f"{MIN_ROWS_ENV} must be a number of rows >= 0 or 'off'. Got {text!r} instead; "
            "fix or unset it in the environment the Ray runner starts from."
        )
    return value


def use_ray_data(
    source: ExamplesSource, splits: str | Sequence[str], what: str, *, also: Sequence[str] = ()
) -> bool:
    """Whether ``what`` (a component) should run over ``splits`` with Ray Data: only under
    the Ray runner, for Parquet splits of at least :func:`min_rows` rows that every node
    can reach (and the ``also`` URIs, such as a model). Logs the decision."""
    address = os.environ.get(ADDRESS_ENV)
    if not address:
        return False  # the local runner: nothing to decide, nothing to say
    names = [splits] if isinstance(splits, str) else list(splits)
    label = f"{what}, split(s) {', '.join(map(repr, names))} of {source.uri}"
    if source.payload_format != "parquet":
        logger.info("%s: in this process (Ray Data reads Parquet payloads only)", label)
        return False
    unreachable = [u for u in (source.uri, *also) if not reachable(u)]
    if unreachable:
        logger.info("%s: in this process (%s is not on storage every Ray node mounts)",
                    label, unreachable[0])  # fmt: skip
        return False
    threshold = min_rows()
    rows = sum(int(source.dataset(name).count_rows()) for name in names)
    if threshold is None or rows < threshold:
        limit = "off" if threshold is None else f"below {threshold}"
        logger.info("%s: %d rows in this process (%s=%s)", label, rows, MIN_ROWS_ENV, limit)
        return False
    logger.info("%s: %d rows with Ray Data on the cluster at %s", label, rows, address)
    return True


def reachable(uri: str) -> bool:
    """Whether every node of the cluster reaches ``uri``: an object store, a path under
    the shared folders the runner names, or a staged copy of either."""
    uri = fsx.origin(uri) or uri  # a staged copy of an object-store artifact: the original
    if "://" in uri and not uri.startswith("file://"):
        return True
    shared = [p for p in os.environ.get(SHARED_PATHS_ENV, "").split(os.pathsep) if p]
    path = os.path.realpath(uri.removeprefix("file://"))
    return any(path == s or path.startswith(s.rstrip(os.sep) + os.sep) for s in shared)


def run_on_cluster(job: Callable[..., Any], *args: Any) -> Any:
    """``job(*args)`` (a function of blocks that runs Ray Data jobs, such as
    :func:`~conveyor.io._blocks.run_blocks`'s callers) in this execution's Ray Data driver,
    started on first use and joined to the runner's cluster."""
    return _driver().run(job, *args)


def map_reduce(
    source: ExamplesSource,
    splits: str | Sequence[str],
    create: Callable[[], Any],
    add: Callable[[Any, pa.RecordBatch], None],
    merge: Callable[[Any, Any], Any],
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
) -> Any:
    """One partial result per block of ``splits`` (about 1M rows of one file), made on the
    cluster's workers (a ``create()``-d accumulator to which ``add(acc, batch)`` adds the
    block's batches of ``columns``), merged here in row order with ``merge(acc, other)``."""
    reader = FileReader(_columns(columns), batch_size)
    partials = run_on_cluster(reduce_job, blocks_of(source, splits), reader, create, add)
    logger.info("Merging the partial results of %d block(s)", len(partials))
    return functools.reduce(merge, partials)


@dataclass
class Written:
    """What :func:`map_write` wrote into one split: its rows, its files (in order) and
    the ``extras`` accumulator of each block (in order)."""

    rows: int
    files: list[str]
    extras: list[Any]


def map_write(
    source: ExamplesSource,
    split: str,
    fn: Callable[[pa.RecordBatch], pa.Table | pa.RecordBatch],
    uri: str,
    schema: pa.Schema,
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
    extras: Any = None,
) -> Written:
    """Map every batch of ``split`` with ``fn`` on the cluster's workers and write the
    results as ``{uri}/Split-{split}/part-NNNNN.parquet`` (``schema``, a file per block),
    in the split's row order. ``extras``, an object with ``create()`` and
    ``add(acc, batch, mapped)``, makes one accumulator per block, returned in order."""
    if fsx.origin(uri) is not None:  # a staged output: the workers write its object store
        fsx.note_written_at_origin(uri)
        uri = fsx.origin(uri)
    folder = split_dir(uri, split)
    fsx.makedirs(folder)
    writer = BlockWriter(fn, folder, schema, extras)
    reader = FileReader(_columns(columns), batch_size)
    try:
        written = run_on_cluster(write_job, blocks_of(source, split), reader, writer)
        files = _publish(folder, [w["file"] for w in written if w["rows"]], schema)
    finally:  # and what retried tasks left behind
        _remove_hidden(folder)
    rows = sum(w["rows"] for w in written)
    logger.info("Wrote %d rows of split %r in %d file(s) from %d block(s)",
                rows, split, len(files), len(written))  # fmt: skip
    return Written(rows, files, [w["extra"] for w in written])


def _publish(folder: str, hidden: list[str], schema: pa.Schema) -> list[str]:
    """Rename the hidden block files to part-00000.parquet, ... in order; a split without
    rows gets one empty file, as the local writer leaves."""
    import pyarrow.parquet as pq

    fs, base = fsx.split_uri(folder)
    names = [f"part-{i:05d}.parquet" for i in range(max(1, len(hidden)))]
    if not hidden:
        arrow_fs, path = fsx.arrow_filesystem(fsx.join(folder, names[0]))
        pq.write_table(pa.Table.from_batches([], schema=schema), path, filesystem=arrow_fs)
    for old, new in zip(hidden, names, strict=False):
        fs.mv(f"{base.rstrip('/')}/{old}", f"{base.rstrip('/')}/{new}")
    return [fsx.join(folder, name) for name in names]


def _remove_hidden(folder: str) -> None:
    fs, base = fsx.split_uri(folder)
    for path in fs.ls(base, detail=False):
        if path.rstrip("/").rsplit("/", 1)[-1].startswith(".block-"):
            fs.rm(path)


def _columns(columns: Sequence[str] | None) -> list[str] | None:
    return list(columns) if columns is not None else None


# ---------------------------------------------------------------------- the driver, from here
class _Driver:
    """A ``conveyor.io._ray_driver`` process joined to the cluster, started on first use
    and kept for the rest of this process."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.io._ray_driver", address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._answer()  # joined, or why not
        atexit.register(self.close)

    def run(self, fn: Callable, *args: Any) -> Any:
        from ray import cloudpickle

        assert self.process.stdin is not None
        send(self.process.stdin, cloudpickle.dumps((fn, args)))
        return self._answer()

    def _answer(self) -> Any:
        from ray import cloudpickle

        assert self.process.stdout is not None
        payload = receive(self.process.stdout)
        if payload is None:
            raise ConveyorError(
                f"The Ray Data driver for the cluster at {self.address} ended (exit code "
                f"{self.process.wait()}); see the execution's log above. Rerun the node, or "
                f"set {MIN_ROWS_ENV}=off to process the data in the component's process."
            )
        status, value = cloudpickle.loads(payload)
        if status == "error":
            raise ConveyorError(
                f"A Ray Data pass on the cluster at {self.address} failed: {value}. Fix the "
                f"cause, or set {MIN_ROWS_ENV}=off to process the data in this process."
            )
        return value

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait()


_drivers: dict[tuple[str, int], _Driver] = {}


def _driver_for(address: str, pid: int) -> _Driver:
    if (address, pid) not in _drivers:
        _drivers[address, pid] = _Driver(address)
    return _drivers[address, pid]


def shutdown() -> None:
    """Stop this process's Ray Data drivers (they also stop when it ends)."""
    while _drivers:
        _drivers.popitem()[1].close()


def _driver() -> _Driver:
    address = os.environ.get(ADDRESS_ENV)
    if not address:
        raise ConveyorError(
            f"Ray Data passes need a Ray cluster: {ADDRESS_ENV} is not set. They run when "
            "the Ray runner runs the component (conveyor run --runner ray)."
        )
    return _driver_for(address, os.getpid())  # a forked process starts its own
