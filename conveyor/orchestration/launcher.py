"""The launcher decides *what* happens to one node: resolve its inputs, reuse a cached
execution, record a resolver's or importer's choice, or prepare a fresh execution and
publish it when its process ends. Runners decide *where* and *when* it runs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.dsl import Importer, Node, Pipeline, Resolver
from conveyor.metadata import MetadataStore
from conveyor.orchestration.fingerprint import cache_key, jsonable
from conveyor.orchestration.results import NodeResult
from conveyor.orchestration.staging import is_remote, upload_file
from conveyor.settings import conveyor_home
from conveyor.types import Artifact, ResolutionError

logger = logging.getLogger(__name__)

Available = Mapping[str, Mapping[str, list[Artifact]]]


@dataclass
class PreparedExecution:
    """A RUNNING execution whose function has yet to be called."""

    node: Node
    execution_id: int
    kwargs: dict[str, Any]
    outputs: dict[str, Artifact]
    log_path: str
    result_path: str
    started_at: float
    attempt: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class Launcher:
    def __init__(
        self,
        store: MetadataStore,
        pipeline: Pipeline,
        run_id: str,
        *,
        enable_cache: bool | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.run_id = run_id
        self.enable_cache = enable_cache
        self.remote_root = is_remote(str(pipeline.root))
        self.system_dir = system_dir(pipeline)

    def use_cache(self, node: Node) -> bool:
        if self.enable_cache is False:
            return False
        if node.enable_cache is not None:
            return node.enable_cache
        return self.pipeline.enable_cache

    def launch(
        self, node: Node, available: Available, *, attempt: int = 1
    ) -> NodeResult | PreparedExecution:
        """Either a finished result (cache hit, resolver, importer) or an execution to run."""
        started = time.time()
        inputs = self.resolve_inputs(node, available)
        if isinstance(node, Resolver):
            chosen = node.strategy.resolve(
                self.store, pipeline=self.pipeline.name, channels=node.channels
            )
            return self._record(node, "COMPLETE", inputs, chosen, started)
        if isinstance(node, Importer):
            return self._import(node, started)
        key = cache_key(node, inputs)
        if attempt == 1 and self.use_cache(node):
            hit = self.store.find_cached(key)
            if hit is not None and set(hit[1]) == set(node.outputs) and self._in_root(hit[1]):
                return self._record(
                    node, "CACHED", inputs, hit[1], started, key, {"cached_from": hit[0]}
                )
        return self._prepare(node, inputs, key, attempt, started)

    def _in_root(self, outputs: Mapping[str, list[Artifact]]) -> bool:
        """Whether a cached execution's outputs lie under this pipeline's root: those of a
        run with another root (another machine's folder, say) may be out of this run's reach."""
        root = str(self.pipeline.root).rstrip("/")
        prefix = root + ("/" if self.remote_root else os.sep)
        return all(a.uri.startswith(prefix) for found in outputs.values() for a in found)

    def resolve_inputs(self, node: Node, available: Available) -> dict[str, list[Artifact]]:
        resolved: dict[str, list[Artifact]] = {}
        for key, channels in node.inputs.items():
            if channels is None:
                continue
            artifacts: list[Artifact] = []
            for channel in channels:
                if channel.producer is None:
                    raise ResolutionError(
                        f"{node.id}'s input '{key}' is wired to {channel.describe()}, which has no "
                        "producer. Wire it to a node's output, or put a Resolver in between."
                    )
                produced = available.get(channel.producer.id)
                if produced is None:
                    raise ResolutionError(
                        f"{node.id}'s input '{key}' needs the outputs of {channel.producer.id}, "
                        f"which has not completed in pipeline {self.pipeline.name}. Run "
                        f"{channel.producer.id} first (run the pipeline without --only/--from)."
                    )
                artifacts += produced.get(channel.output_key, [])
            resolved[key] = artifacts
        return resolved

    # ------------------------------------------------------------------ finished at once
    def _record(
        self,
        node: Node,
        state: str,
        inputs: dict[str, list[Artifact]],
        outputs: Mapping[str, list[Artifact]],
        started: float,
        key: str | None = None,
        extra: Mapping[str, Any] | None = None,
        new: list[Artifact] | None = None,
    ) -> NodeResult:
        execution_id = self.store.record_execution(
            pipeline=self.pipeline.name,
            run_id=self.run_id,
            node_id=node.id,
            type_name=node.type_name,
            state=state,
            properties={**self._properties(node), **(extra or {})},
            cache_key=key,
            inputs=inputs,
            outputs=outputs,
            new_artifacts=new or [],
        )
        return NodeResult(
            node.id, state, execution_id, {k: list(v) for k, v in outputs.items()},
            started_at=started, ended_at=time.time(), attempts=1,
        )  # fmt: skip

    def _import(self, node: Importer, started: float) -> NodeResult:
        uri = node.source_uri
        if "://" not in uri:
            uri = str(Path(uri).expanduser().resolve())
            if not Path(uri).exists():
                raise ResolutionError(
                    f"Importer {node.id}: source_uri {uri} does not exist. Check the path, or "
                    "create the file before running the pipeline."
                )
        existing = (
            []
            if node.params["reimport"]
            else self.store.artifacts(
                type_name=node.artifact_type.type_name_of(),
                uri=uri,
                states=["LIVE"],
                newest_first=True,
            )
        )
        new: list[Artifact] = []
        if existing:
            artifact = existing[0]
        else:
            artifact = node.artifact_type(
                uri, properties=node.params["properties"], name=f"{node.id}:result"
            )
            new = [artifact]
        return self._record(node, "COMPLETE", {}, {"result": [artifact]}, started, new=new)

    # ------------------------------------------------------------------ real executions
    def _prepare(
        self, node: Node, inputs: dict[str, list[Artifact]], key: str, attempt: int, started: float
    ) -> PreparedExecution:
        kwargs = _input_kwargs(node, inputs)
        logs = self.system_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        root = str(self.pipeline.root)
        join = posixpath.join if self.remote_root else os.path.join
        execution_id, outputs = self.store.start_execution(
            pipeline=self.pipeline.name,
            run_id=self.run_id,
            node_id=node.id,
            type_name=node.type_name,
            properties={**self._properties(node), "attempt": attempt},
            cache_key=key,
            inputs=inputs,
            outputs={k: ch.artifact_type for k, ch in node.outputs.items()},
            output_uri=lambda out_key, eid: join(root, node.id, out_key, str(eid)),
            log_uri=lambda eid: self._log_uri(logs, f"{node.id}.{eid}.log"),
        )
        for artifact in outputs.values():
            if self.remote_root:
                continue  # the execution's process uploads it when the component returns
            path = Path(artifact.uri)
            if path.exists():  # left by an older store that reused this id
                shutil.rmtree(path)
            path.mkdir(parents=True)
        kwargs.update(outputs)
        kwargs.update(node.params)
        return PreparedExecution(
            node=node,
            execution_id=execution_id,
            kwargs=kwargs,
            outputs=outputs,
            log_path=str(logs / f"{node.id}.{execution_id}.log"),
            result_path=str(logs / f"{node.id}.{execution_id}.result.json"),
            started_at=started,
            attempt=attempt,
        )

    def _log_uri(self, logs: Path, name: str) -> str:
        if self.remote_root:
            return posixpath.join(str(self.pipeline.root), ".system", "logs", name)
        return str(logs / name)

    def _upload_log(self, prepared: PreparedExecution) -> None:
        """With a remote root, the log goes beside the artifacts, where the store says."""
        if not self.remote_root or not os.path.exists(prepared.log_path):
            return
        name = os.path.basename(prepared.log_path)
        try:
            upload_file(prepared.log_path, self._log_uri(self.system_dir, name))
        except Exception as exc:  # the run's outcome stands; only its log is not shared
            logger.warning("Could not upload the log %s: %s", prepared.log_path, exc)

    def finish(self, prepared: PreparedExecution, exitcode: int | None) -> NodeResult:
        """Publish the outputs of a finished process, or record why it failed."""
        self._upload_log(prepared)
        result = _read_result(prepared.result_path)
        node = prepared.node
        done = NodeResult(
            node.id, "FAILED", prepared.execution_id, started_at=prepared.started_at,
            log_path=prepared.log_path, attempts=prepared.attempt,
        )  # fmt: skip
        if result is not None and result.get("ok"):
            for key, artifact in prepared.outputs.items():
                artifact.properties = result["outputs"].get(key, {})
            returned = result.get("returned")
            self.store.complete_execution(
                prepared.execution_id,
                prepared.outputs.values(),
                {"returned": returned} if returned is not None else None,
            )
            done.state = "COMPLETE"
            done.outputs = {k: [a] for k, a in prepared.outputs.items()}
        else:
            if result is not None:
                done.error = result["error"]
                detail = f"{result['error']}\n\n{result.get('traceback') or ''}".rstrip()
            else:
                done.error = detail = describe_exit(exitcode)
            self.store.fail_execution(prepared.execution_id, detail)
        done.ended_at = time.time()
        return done

    def fail(self, prepared: PreparedExecution, error: str, *, state: str = "FAILED") -> NodeResult:
        self._upload_log(prepared)
        self.store.fail_execution(prepared.execution_id, error, state=state)
        return NodeResult(
            prepared.node.id, state, prepared.execution_id, started_at=prepared.started_at,
            ended_at=time.time(), error=error, log_path=prepared.log_path,
            attempts=prepared.attempt,
        )  # fmt: skip

    def _properties(self, node: Node) -> dict[str, Any]:
        props: dict[str, Any] = {"component": node.type_name, "params": jsonable(node.params)}
        if node.component is not None:
            props["code_fingerprint"] = node.component.source_fingerprint()
        return props


def system_dir(pipeline: Pipeline) -> Path:
    """Where the runner keeps a pipeline's logs and result files: ``{root}/.system``, or for
    a remote root a folder on this machine (logs are uploaded to ``{root}/.system/logs``)."""
    root = str(pipeline.root)
    if not is_remote(root):
        return Path(root) / ".system"
    digest = hashlib.sha256(root.encode()).hexdigest()[:16]
    return conveyor_home() / "runs" / f"{pipeline.name}-{digest}" / ".system"


def _input_kwargs(node: Node, inputs: dict[str, list[Artifact]]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for key, spec in node.component.spec.inputs.items():
        artifacts = inputs.get(key, [])
        if spec.is_list:
            kwargs[key] = list(artifacts)
        elif not artifacts:
            if not spec.optional:
                raise ResolutionError(
                    f"{node.id}'s required input '{key}' received no artifact (its channel was "
                    "empty). Check the upstream node, or make the input optional."
                )
            kwargs[key] = None
        elif len(artifacts) > 1:
            raise ResolutionError(
                f"{node.id}'s input '{key}' received {len(artifacts)} artifacts but takes one. "
                f"Declare it as Input[list[{spec.artifact_type.type_name_of()}]]."
            )
        else:
            kwargs[key] = artifacts[0]
    return kwargs


def _read_result(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"The execution's process was killed by {name}."
    return (
        f"The execution's process exited with status {exitcode} before finishing "
        "(os._exit() or a crash in native code)."
    )
