"""Warm processes for a run: heavy frameworks imported while the first nodes work, not on the
way to the nodes that need them.

Importing scikit-learn costs a second or two of CPU. Forked executions find what the runner
imported before forking them (:mod:`conveyor.frameworks.preload`), but if the runner imports
it only when the Trainer is launched, the whole import lies on the run's critical path; and
a node that starts a model server (InfraValidator) starts a fresh interpreter that imports
it again. So at the first execution of a run that leads to such nodes, the runner starts:

- a fork of itself that imports the frameworks the run's module files import, and forks the
  executions that need them (:mod:`conveyor.serving.forking`). They find what a fork of the
  runner finds: its modules, the pipeline's objects, registries the pipeline file filled;
  plus the runner's environment, working folder and ``sys.path`` as they are at launch;
- a model server zygote (:mod:`conveyor.serving.zygote`): a fresh interpreter importing the
  server and the frameworks, named to the executions in ``CONVEYOR_SERVER_ZYGOTE``.

Both end with the run (and with the runner, if it dies). Whatever cannot start, or an
execution that cannot be sent (arguments that do not pickle), takes the runner's own path.

Example::

    warm = WarmProcesses(pipeline)
    warm.before(node)                       # starts what node leads to, once
    process = warm.fork(prepared, modules)  # None: fork it from the runner
    warm.close()
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from conveyor.dsl import Pipeline
from conveyor.frameworks.preload import is_fork_safe, modules_for_execution
from conveyor.orchestration.launcher import PreparedExecution
from conveyor.orchestration.worker import child_main
from conveyor.serving.forking import ForkedProcess, ForkServer, request_fork, start_forked
from conveyor.serving.zygote import ZYGOTE_ENV, start_zygote, starts_model_server
from conveyor.types import Artifact

logger = logging.getLogger(__name__)

_UNSET = object()


class WarmProcesses:
    """The warm processes of one run of ``pipeline`` (see the module docstring)."""

    def __init__(self, pipeline: Pipeline) -> None:
        nodes = [n for n in pipeline.nodes if getattr(n, "component", None) is not None]
        self.fns = {n.id: n.component.fn for n in nodes}
        found = {n.id: modules_for_execution(n.params) for n in nodes}
        self.modules = sorted({m for names in found.values() for m in names})
        self.lead_to_frameworks = _leading_to(pipeline, [i for i, m in found.items() if m])
        serving = [n.id for n in nodes if starts_model_server(n.component.fn)]
        servers = _leading_to(pipeline, serving)
        # The zygote is needed after the framework nodes (the Trainer), not before: started
        # with them, it does not compete with the data nodes and the copy's imports.
        framework_nodes = {i for i, m in found.items() if m} & servers
        self.start_servers_at = framework_nodes or servers
        self.executions: ForkServer | None = None
        self.servers: ForkServer | None = None
        self._tried: set[str] = set()
        self._environment: Any = _UNSET

    def before(self, node_id: str) -> None:
        """Start what the execution of ``node_id`` leads to, unless started already."""
        if node_id in self.lead_to_frameworks and "executions" not in self._tried:
            self._tried.add("executions")
            self.executions = _started(
                "a warm copy of the runner", start_forked,
                {"execute": _Execute(self.fns)}, modules=self.modules, importable=is_fork_safe,
            )  # fmt: skip
        if node_id in self.start_servers_at and "servers" not in self._tried:
            self._tried.add("servers")
            self.servers = _started("a model server zygote", start_zygote, self.modules)
            if self.servers is not None:
                self._environment = os.environ.get(ZYGOTE_ENV)
                os.environ[ZYGOTE_ENV] = self.servers.address

    def fork(self, prepared: PreparedExecution, modules: list[str]) -> ForkedProcess | None:
        """``prepared`` forked from the warm copy of the runner; None if there is none or
        the execution cannot be sent to it."""
        if self.executions is None:
            return None
        args = (
            prepared.node.id, prepared.kwargs, prepared.outputs, prepared.log_path,
            prepared.result_path,
        )  # fmt: skip
        try:
            return request_fork(
                self.executions.address, "execute", args, hangup=signal.SIGKILL,
                env=os.environ, cwd=os.getcwd(), sys_path=sys.path, modules=modules,
            )  # fmt: skip
        except OSError as exc:  # it is gone: the rest take the runner's path
            logger.warning("The warm copy of the runner is gone (%s); forking from the runner", exc)
            self.executions = None
        except Exception as exc:  # arguments that do not pickle
            logger.debug("%s forks from the runner: %s", prepared.node.id, exc)
        return None

    def close(self) -> None:
        """End the warm processes (and anything they still run)."""
        for started in (self.executions, self.servers):
            if started is not None:
                started.close()
        self.executions = self.servers = None
        if self._environment is not _UNSET:
            if self._environment is None:
                os.environ.pop(ZYGOTE_ENV, None)
            else:
                os.environ[ZYGOTE_ENV] = self._environment
            self._environment = _UNSET


class _Execute:
    """The warm copy's target: the component of node ``node_id`` in an execution's process."""

    def __init__(self, fns: Mapping[str, Callable[..., Any]]) -> None:
        self.fns = fns

    def __call__(
        self,
        node_id: str,
        kwargs: Mapping[str, Any],
        outputs: Mapping[str, Artifact],
        log_path: str,
        result_path: str,
    ) -> None:
        child_main(self.fns[node_id], kwargs, outputs, log_path, result_path)


def _leading_to(pipeline: Pipeline, node_ids: list[str]) -> set[str]:
    """The nodes in ``node_ids`` and every node they depend on."""
    found = set(node_ids)
    for node_id in node_ids:
        found |= pipeline.upstream_of(node_id)
    return found


def _started(what: str, start: Callable[..., ForkServer], *args: Any, **kwargs: Any):
    try:
        return start(*args, **kwargs)
    except OSError as exc:
        logger.warning("Could not start %s (%s); executions start as usual", what, exc)
        return None
