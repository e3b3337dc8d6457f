"""The metadata store: what ran, what it read and wrote, and in which pipeline and run.

Every write that must be atomic — starting an execution with its pending outputs,
publishing outputs together with the execution's completion — is one transaction.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from conveyor.metadata import schema as s
from conveyor.metadata.connection import (
    chunks,
    create_engine,
    insert_ignore,
    normalize_url,
    open_schema,
)
from conveyor.metadata.reads import NODE, PIPELINE, RUN, StoreReads
from conveyor.settings import default_metadata_url
from conveyor.types import Artifact, MetadataError

logger = logging.getLogger(__name__)


class MetadataStore(StoreReads):
    """Opens (creating or upgrading) the store at ``url``.

    Example::

        store = MetadataStore("sqlite:////tmp/metadata.db")
        for run in store.runs():
            print(run.run_id, run.status)
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = normalize_url(url or default_metadata_url())
        self.is_sqlite = self.url.startswith("sqlite")
        self._type_ids: dict[tuple[str, str], int] = {}
        self._context_ids: dict[tuple[str, str], int] = {}
        self._engine = create_engine(self.url)
        open_schema(self._engine, self.url)

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------ types and contexts
    def _type_id(self, conn: sa.Connection, name: str, kind: str) -> int:
        key = (name, kind)
        if key not in self._type_ids:
            insert_ignore(conn, s.types, {"name": name, "kind": kind, "properties": {}})
            self._type_ids[key] = conn.execute(
                sa.select(s.types.c.id).where(s.types.c.name == name, s.types.c.kind == kind)
            ).scalar_one()
        return self._type_ids[key]

    def _context_id(
        self, conn: sa.Connection, kind: str, name: str, properties: Mapping[str, Any] | None = None
    ) -> int:
        key = (kind, name)
        if key not in self._context_ids:
            type_id = self._type_id(conn, kind, "context")
            insert_ignore(
                conn,
                s.contexts,
                {
                    "type_id": type_id,
                    "name": name,
                    "properties": dict(properties or {}),
                    "created_at": time.time(),
                },
            )
            self._context_ids[key] = conn.execute(
                sa.select(s.contexts.c.id).where(
                    s.contexts.c.type_id == type_id, s.contexts.c.name == name
                )
            ).scalar_one()
        return self._context_ids[key]

    # ------------------------------------------------------------------ runs
    def create_run(self, pipeline: str, run_id: str, properties: Mapping[str, Any]) -> None:
        now = time.time()

        def write(conn: sa.Connection) -> None:
            pipeline_ctx = self._context_id(conn, PIPELINE, pipeline)
            props = {
                "pipeline": pipeline,
                "status": "RUNNING",
                "started_at": now,
                "ended_at": None,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "heartbeat_at": now,
                **properties,
            }
            run_ctx = self._context_id(conn, RUN, run_id, props)
            insert_ignore(conn, s.parent_contexts, {"child_id": run_ctx, "parent_id": pipeline_ctx})

        self._write(write)

    def update_run(self, run_id: str, **properties: Any) -> None:
        def write(conn: sa.Connection) -> None:
            ctx = self._find_context(conn, RUN, run_id)
            if ctx is None:
                raise MetadataError(f"No run {run_id!r} in the metadata store at {self.url}.")
            current = conn.execute(
                sa.select(s.contexts.c.properties).where(s.contexts.c.id == ctx)
            ).scalar_one()
            conn.execute(
                s.contexts.update()
                .where(s.contexts.c.id == ctx)
                .values(properties={**current, **properties})
            )

        self._write(write)

    # ------------------------------------------------------------------ executions
    def start_execution(
        self,
        *,
        pipeline: str,
        run_id: str,
        node_id: str,
        type_name: str,
        properties: Mapping[str, Any],
        cache_key: str | None,
        inputs: Mapping[str, Sequence[Artifact]],
        outputs: Mapping[str, type[Artifact]],
        output_uri: Callable[[str, int], str],
        log_uri: Callable[[int], str],
    ) -> tuple[int, dict[str, Artifact]]:
        """Record a RUNNING execution with one PENDING artifact per output, in one transaction.

        ``output_uri(key, execution_id)`` names each output's fresh directory.
        """
        now = time.time()

        def write(conn: sa.Connection) -> tuple[int, dict[str, Artifact]]:
            execution_id = self._insert_execution(
                conn, pipeline, node_id, type_name, properties, cache_key,
                state="RUNNING", heartbeat_at=now, started_at=now,
            )  # fmt: skip
            conn.execute(
                s.executions.update()
                .where(s.executions.c.id == execution_id)
                .values(log_uri=log_uri(execution_id))
            )
            created: dict[str, Artifact] = {}
            for key, cls in outputs.items():
                artifact = cls(
                    output_uri(key, execution_id), state="PENDING", name=f"{node_id}:{key}"
                )
                artifact.id = self._insert_artifact(conn, artifact, now)
                created[key] = artifact
            self._link(conn, execution_id, pipeline, run_id, node_id, inputs, created, now)
            return execution_id, created

        return self._write(write)

    def _insert_execution(
        self,
        conn: sa.Connection,
        pipeline: str,
        node_id: str,
        type_name: str,
        properties: Mapping[str, Any],
        cache_key: str | None,
        **values: Any,
    ) -> int:
        return conn.execute(
            s.executions.insert().values(
                type_id=self._type_id(conn, type_name, "execution"),
                pipeline=pipeline,
                node_id=node_id,
                cache_key=cache_key,
                properties=dict(properties),
                pid=os.getpid(),
                host=socket.gethostname(),
                **values,
            )
        ).inserted_primary_key[0]

    def _insert_artifact(self, conn: sa.Connection, artifact: Artifact, now: float) -> int:
        return conn.execute(
            s.artifacts.insert().values(
                type_id=self._type_id(conn, artifact.type_name, "artifact"),
                uri=artifact.uri,
                name=artifact.name,
                state=artifact.state,
                properties=dict(artifact.properties),
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]

    def _link(
        self,
        conn: sa.Connection,
        execution_id: int,
        pipeline: str,
        run_id: str,
        node_id: str,
        inputs: Mapping[str, Sequence[Artifact]],
        outputs: Mapping[str, Artifact | Sequence[Artifact]],
        now: float,
    ) -> None:
        """Events, associations and attributions for one execution."""
        ctx_ids = [
            self._context_id(conn, PIPELINE, pipeline),
            self._context_id(conn, RUN, run_id),
            self._context_id(conn, NODE, f"{pipeline}.{node_id}"),
        ]
        rows = []
        for kind, mapping in (("INPUT", inputs), ("OUTPUT", outputs)):
            for key, value in mapping.items():
                items = [value] if isinstance(value, Artifact) else list(value)
                rows += [
                    {
                        "artifact_id": a.id,
                        "execution_id": execution_id,
                        "type": kind,
                        "key": key,
                        "idx": i,
                        "time": now,
                    }
                    for i, a in enumerate(items)
                ]
        if rows:
            conn.execute(s.events.insert(), rows)
        for ctx in ctx_ids:
            insert_ignore(conn, s.associations, {"context_id": ctx, "execution_id": execution_id})
        output_ids = {row["artifact_id"] for row in rows if row["type"] == "OUTPUT"}
        for ctx in ctx_ids[:2]:
            for artifact_id in output_ids:
                insert_ignore(conn, s.attributions, {"context_id": ctx, "artifact_id": artifact_id})

    def complete_execution(
        self,
        execution_id: int,
        outputs: Iterable[Artifact],
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish: outputs become LIVE in the transaction that marks the execution COMPLETE."""
        now = time.time()

        def write(conn: sa.Connection) -> None:
            for artifact in outputs:
                conn.execute(
                    s.artifacts.update()
                    .where(s.artifacts.c.id == artifact.id)
                    .values(state="LIVE", properties=dict(artifact.properties), updated_at=now)
                )
                artifact.state = "LIVE"
            values: dict[str, Any] = {"state": "COMPLETE", "ended_at": now}
            if properties:
                current = conn.execute(
                    sa.select(s.executions.c.properties).where(s.executions.c.id == execution_id)
                ).scalar_one()
                values["properties"] = {**current, **properties}
            conn.execute(
                s.executions.update().where(s.executions.c.id == execution_id).values(**values)
            )

        self._write(write)

    def fail_execution(self, execution_id: int, error: str, *, state: str = "FAILED") -> None:
        """Mark an execution FAILED (or ABANDONED); its outputs never become LIVE."""
        now = time.time()

        def write(conn: sa.Connection) -> None:
            conn.execute(
                s.executions.update()
                .where(s.executions.c.id == execution_id)
                .values(state=state, ended_at=now, error=error)
            )
            conn.execute(
                s.artifacts.update()
                .where(
                    s.artifacts.c.id.in_(_output_ids_of([execution_id])),
                    s.artifacts.c.state == "PENDING",
                )
                .values(state="ABANDONED", updated_at=now)
            )

        self._write(write)

    def record_execution(
        self,
        *,
        pipeline: str,
        run_id: str,
        node_id: str,
        type_name: str,
        state: str,
        properties: Mapping[str, Any],
        cache_key: str | None,
        inputs: Mapping[str, Sequence[Artifact]],
        outputs: Mapping[str, Sequence[Artifact]],
        new_artifacts: Sequence[Artifact] = (),
    ) -> int:
        """Record an execution that is already over: a cache hit (CACHED, pointing at earlier
        outputs), a resolver's choice, or an import (``new_artifacts`` are inserted LIVE)."""
        now = time.time()

        def write(conn: sa.Connection) -> int:
            for artifact in new_artifacts:
                artifact.state = "LIVE"
                artifact.id = self._insert_artifact(conn, artifact, now)
            execution_id = self._insert_execution(
                conn, pipeline, node_id, type_name, properties, cache_key,
                state=state, started_at=now, ended_at=now,
            )  # fmt: skip
            self._link(conn, execution_id, pipeline, run_id, node_id, inputs, outputs, now)
            return execution_id

        return self._write(write)

    def heartbeat(self, execution_ids: Sequence[int], run_id: str | None = None) -> None:
        now = time.time()

        def write(conn: sa.Connection) -> None:
            if execution_ids:
                conn.execute(
                    s.executions.update()
                    .where(s.executions.c.id.in_(list(execution_ids)))
                    .values(heartbeat_at=now)
                )
            if run_id is not None:
                ctx = self._find_context(conn, RUN, run_id)
                props = conn.execute(
                    sa.select(s.contexts.c.properties).where(s.contexts.c.id == ctx)
                ).scalar_one()
                conn.execute(
                    s.contexts.update()
                    .where(s.contexts.c.id == ctx)
                    .values(properties={**props, "heartbeat_at": now})
                )

        self._write(write)

    def recover_abandoned(self, lease_seconds: float) -> list[int]:
        """Mark executions (and runs) whose runner is gone as ABANDONED; return their ids.

        A runner is gone when it ran on this host and its process no longer exists, or when
        its heartbeat is older than ``lease_seconds`` (any host).
        """
        host = socket.gethostname()
        now = time.time()

        def is_gone(row_host: str | None, pid: int | None, heartbeat: float | None) -> bool:
            if row_host == host and pid is not None and not _pid_alive(pid):
                return True
            return heartbeat is None or now - heartbeat > lease_seconds

        running = self._read(
            lambda conn: conn.execute(
                sa.select(
                    s.executions.c.id,
                    s.executions.c.host,
                    s.executions.c.pid,
                    s.executions.c.heartbeat_at,
                ).where(s.executions.c.state == "RUNNING")
            ).all()
        )
        gone = [row.id for row in running if is_gone(row.host, row.pid, row.heartbeat_at)]
        for execution_id in gone:
            self.fail_execution(
                execution_id,
                "The runner that started this execution stopped (killed or crashed) before it "
                "finished; its outputs were never published.",
                state="ABANDONED",
            )
        for run in self.runs(status="RUNNING"):
            props = run.properties
            if is_gone(props.get("host"), props.get("pid"), props.get("heartbeat_at")):
                self.update_run(run.run_id, status="ABANDONED")
        return gone

    def set_artifact_state(self, artifact_ids: Sequence[int], state: str) -> None:
        now = time.time()

        def write(conn: sa.Connection) -> None:
            for chunk in chunks(list(artifact_ids), 500):
                conn.execute(
                    s.artifacts.update()
                    .where(s.artifacts.c.id.in_(chunk))
                    .values(state=state, updated_at=now)
                )

        self._write(write)


def _output_ids_of(execution_ids: Sequence[int]) -> sa.Select:
    return sa.select(s.events.c.artifact_id).where(
        s.events.c.execution_id.in_(list(execution_ids)), s.events.c.type == "OUTPUT"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
