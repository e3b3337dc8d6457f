"""The Ray runner: the local runner's loop, with each execution a task on a Ray cluster.

Everything but *where* an execution runs is the local runner's: the same ready-set loop,
launcher, caching, publishing, retries and resume. The runner records and publishes in the
metadata store from the driver; a Ray task only forks the component's process, on whichever
node Ray picks, and hands back its exit code, result and log. Needs ``pip install
'conveyor[ray]'``; ``import conveyor`` never imports Ray.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from conveyor.dsl import Pipeline
from conveyor.dsl.node import check_resources
from conveyor.orchestration.launcher import PreparedExecution
from conveyor.orchestration.local_runner import LocalRunner
from conveyor.orchestration.processes import Ended, ExecutionPool, start_execution
from conveyor.types import ConveyorError, ExecutionError

__all__ = ["RayRunner"]

MIN_ROWS_ENV = "CONVEYOR_RAY_DATA_MIN_ROWS"  # conveyor.io.distributed reads it (and the others)


class RayRunner(LocalRunner):
    """Runs a pipeline with each node's execution as a Ray task.

    ``address``: None starts a local Ray instance for the run and stops it after;
    ``"auto"`` joins the cluster started on this machine with ``ray start``;
    ``"ray://HOST:10001"`` connects through Ray Client. A process that has already called
    ``ray.init()`` keeps that connection, whatever ``address`` says. ``resources_per_node``
    is what each execution requests (``num_cpus``, ``num_gpus``, ``memory`` in bytes)
    unless its node says otherwise with ``node.with_options(resources=...)``.

    On a cluster of more than one node every worker must reach the metadata store and the
    artifacts: use PostgreSQL metadata and a root every node mounts (``shared_root=True``)
    or an object store URI; a run with a local SQLite store or a local root is refused.

    StatisticsGen, Transform and BulkInferrer spread splits of at least
    ``CONVEYOR_RAY_DATA_MIN_ROWS`` rows (default 1,000,000; ``off`` never) over the cluster
    with Ray Data, when every node reaches them (see :mod:`conveyor.io.distributed`).

    Example::

        trainer.with_options(resources={"num_cpus": 4, "num_gpus": 1})
        RayRunner("auto", resources_per_node={"num_cpus": 1}).run(pipeline)
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        resources_per_node: Mapping[str, float] | None = None,
        shared_root: bool = False,
        max_workers: int | None = None,
        display: str = "auto",
        lease_seconds: float = 60.0,
        heartbeat_seconds: float = 5.0,
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address):
            raise ConveyorError(
                "The 'address' parameter of RayRunner must be None, 'auto', 'ray://HOST:PORT' "
                f"or 'HOST:PORT'. Got {address!r}."
            )
        super().__init__(
            max_workers,
            display=display,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_seconds,
        )
        self.max_workers = max_workers or sys.maxsize  # by default Ray queues what waits
        self.address = address
        self.resources_per_node = check_resources(
            "The 'resources_per_node' parameter of RayRunner", resources_per_node or {}
        )
        self.shared_root = shared_root

    def cli_options(self) -> str:
        words = ["--runner", "ray"]
        if self.address:
            words += ["--ray-address", self.address]
        if self.shared_root:
            words.append("--shared-root")
        return " " + " ".join(shlex.quote(w) for w in words)

    @contextmanager
    def _pool(self, pipeline: Pipeline) -> Iterator[ExecutionPool]:
        if self.address is None:  # read when Ray is imported: keeps a local instance on loopback
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = _import_ray()
        started = not ray.is_initialized()
        if started:
            _start_or_join(ray, self.address)
        try:
            self.check_cluster(pipeline)
            environment = self.task_environment(pipeline)
            yield RayPool(ray, self.max_workers, self.resources_per_node, environment)
        finally:
            if started:
                ray.shutdown()

    def cluster_nodes(self) -> int:
        """How many live nodes the Ray cluster has."""
        return sum(1 for node in _import_ray().nodes() if node.get("Alive"))

    def task_environment(self, pipeline: Pipeline) -> dict[str, str]:
        """What an execution's process learns from its environment for its Ray Data passes
        (see :mod:`conveyor.io.distributed`): the folders every node reaches, and the
        threshold the user set where the run starts."""
        shared = os.pathsep.join(self.shared_paths(pipeline))
        environment = {"CONVEYOR_RAY_SHARED_PATHS": shared}
        if MIN_ROWS_ENV in os.environ:
            environment[MIN_ROWS_ENV] = os.environ[MIN_ROWS_ENV]
        return environment

    def shared_paths(self, pipeline: Pipeline) -> list[str]:
        """Local folders every node of the cluster reaches: all of them on a one-node
        cluster, the pipeline's root when it is shared, else none."""
        if self.cluster_nodes() <= 1:
            return [os.sep]
        root = str(pipeline.root).removeprefix("file://")
        if self.shared_root and "://" not in root:
            return [os.path.realpath(root)]
        return []

    def check_cluster(self, pipeline: Pipeline) -> None:
        """Refuse a run whose metadata or artifacts only this machine can reach, when the
        cluster has other nodes whose tasks would need them."""
        nodes = self.cluster_nodes()
        if nodes <= 1:
            return
        problems = []
        if pipeline.metadata_url.startswith("sqlite"):
            problems.append(
                f"its metadata store is a local SQLite file ({pipeline.metadata_url}): use "
                "PostgreSQL, e.g. --metadata-url postgresql://USER@HOST/DB"
            )
        root = str(pipeline.root)
        if ("://" not in root or root.startswith("file://")) and not self.shared_root:
            problems.append(
                f"its artifacts go to a local folder ({root}): put them on an object store "
                "(--root s3://BUCKET/PATH) or on a filesystem every node mounts at the same "
                "path, and say so with --shared-root (RayRunner(shared_root=True))"
            )
        if problems:
            raise ConveyorError(
                f"Pipeline {pipeline.name} cannot run on this Ray cluster of {nodes} nodes: "
                + "; and ".join(problems)
                + ". Tasks on every node read and write the artifacts, and a run on a "
                "cluster keeps its record where every machine can read it and resume it."
            )


class RayPool:
    """Executions as Ray tasks, at most ``max_workers`` submitted at once."""

    def __init__(
        self,
        ray: ModuleType,
        max_workers: int,
        resources: Mapping[str, float],
        environment: Mapping[str, str] | None = None,
    ):
        self.ray = ray
        self.max_workers = max_workers
        self.resources = dict(resources)
        self.environment = dict(environment or {})
        self.tasks: dict[Any, PreparedExecution] = {}
        self.remote = ray.remote(execute_in_worker)

    def full(self) -> bool:
        return len(self.tasks) >= self.max_workers

    def submit(self, prepared: PreparedExecution) -> None:
        requests = {"num_cpus": 1.0, **self.resources, **prepared.node.resources}
        if "memory" in requests:
            requests["memory"] = int(requests["memory"])
        self._check_feasible(prepared.node.id, requests)
        task = self.remote.options(name=f"conveyor-{prepared.node.id}", max_retries=0, **requests)
        payload = pickle_execution(prepared)
        ref = task.remote(payload, prepared.log_path, prepared.result_path, self.environment)
        self.tasks[ref] = prepared

    def _check_feasible(self, node_id: str, requests: Mapping[str, float]) -> None:
        """Fail at once a request the whole cluster cannot meet; Ray would wait forever."""
        total = self.ray.cluster_resources()
        for name, key in (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory")):
            if requests.get(name, 0) > total.get(key, 0):
                raise ExecutionError(
                    f"{node_id} requests {name}={requests[name]:g} but the Ray cluster has "
                    f"{total.get(key, 0):g} in all. Lower the node's resources (with_options("
                    "resources=...) or resources_per_node), or add nodes that have them."
                )

    def wait(self, timeout: float) -> list[Ended]:
        if not self.tasks:
            return []
        ready, _ = self.ray.wait(list(self.tasks), num_returns=1, timeout=timeout)
        if ready:  # and whatever else has ended meanwhile
            ready, _ = self.ray.wait(list(self.tasks), num_returns=len(self.tasks), timeout=0)
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref: Any) -> Ended:
        prepared = self.tasks.pop(ref)
        try:
            returned = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            return Ended(
                prepared,
                None,
                lost=f"The Ray task running {prepared.node.id} was lost ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}). Its worker "
                "or node may have died; retry the node, or resume the run.",
            )
        _bring_back(prepared.log_path, returned.get("log"))
        _bring_back(prepared.result_path, returned.get("result"))
        return Ended(prepared, returned["exitcode"])

    def running(self) -> list[PreparedExecution]:
        return list(self.tasks.values())

    def stop(self) -> list[PreparedExecution]:
        for ref in self.tasks:
            self.ray.cancel(ref, force=True)
        stopped = list(self.tasks.values())
        self.tasks.clear()
        return stopped


def execute_in_worker(
    payload: bytes, log_path: str, result_path: str, environment: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Ray task: run the execution in a forked process on this worker, as the local
    runner does, and return its exit code, result and log. The process gets the cluster's
    address and ``environment`` (the folders every node reaches, the Ray Data threshold)
    in its environment, for its data-parallel passes (see :mod:`conveyor.io.distributed`).
    It cannot use the worker's own connection to the cluster, which it inherits broken."""
    import ray
    from ray import cloudpickle

    fn, kwargs, outputs = cloudpickle.loads(payload)
    folders = [os.path.dirname(log_path), *(a.uri for a in outputs.values())]
    for folder in folders:
        if "://" not in folder:
            os.makedirs(folder, exist_ok=True)
    context = multiprocessing.get_context("fork")
    cluster = {**(environment or {}), "CONVEYOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    with _environment(cluster):
        process = start_execution(context, fn, kwargs, outputs, log_path, result_path)
    process.join()
    return {
        "exitcode": process.exitcode,
        "result": _read(result_path),
        "log": _read(log_path),
    }


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in os.environ while forking; the worker's own environment after."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pickle_execution(prepared: PreparedExecution) -> bytes:
    """The component's function, arguments and outputs for a Ray task. The user's own code
    (pipeline files, modules outside installed packages) travels by value, since workers
    may not have it; installed packages must be installed on the cluster."""
    from ray import cloudpickle

    fn = prepared.node.component.fn
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    by_value = module is not None and travels_with_task(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps((fn, prepared.kwargs, prepared.outputs))
    except Exception as exc:
        raise ExecutionError(
            f"{prepared.node.id} cannot be sent to a Ray worker: {exc}. Its function, "
            "parameters and artifacts must be picklable."
        ) from exc
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


def travels_with_task(module: ModuleType) -> bool:
    """Whether ``module`` is the user's code rather than an installed library."""
    if module.__name__ == "__main__":
        return False  # cloudpickle sends __main__'s functions by value already
    file = getattr(module, "__file__", None)
    if not file:
        return False
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    installed.add(str(Path(__file__).resolve().parents[1]))  # conveyor itself
    resolved = Path(file).resolve()
    return not any(resolved.is_relative_to(Path(p).resolve()) for p in installed)


def _start_or_join(ray: ModuleType, address: str | None) -> None:
    try:
        # "local": a new instance, even where `ray start` left a cluster Ray would join
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False)
    except Exception as exc:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise ConveyorError(
            f"Could not start or join {where}: {exc}. Check the address (`ray status` on the "
            "head node), or run without --ray-address to start a local instance."
        ) from exc


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise ConveyorError(
            f"The Ray runner needs Ray ({exc}). Install it with: pip install 'conveyor[ray]'"
        ) from exc
    return ray


def _read(path: str) -> str | None:
    try:
        with open(path, errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _bring_back(path: str, text: str | None) -> None:
    """Write what a task on another node left there, unless this machine sees it already."""
    if text is None or os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
