"""The metadata store: what ran, what it read and wrote, and in which pipeline and run.

SQLite is the embedded default (WAL, busy timeout, ``BEGIN IMMEDIATE`` writes that are
retried when another process holds the lock); PostgreSQL works from a ``postgresql://``
URL. Every write that must be atomic — starting an execution with its pending outputs,
publishing outputs together with the execution's completion — is one transaction.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from conveyor.metadata import schema as s
from conveyor.metadata.records import ExecutionRecord, RunRecord
from conveyor.settings import default_metadata_url
from conveyor.types import Artifact, MetadataError, artifact_class

logger = logging.getLogger(__name__)

T = TypeVar("T")

PIPELINE, RUN, NODE = "pipeline", "run", "node"
_RETRYABLE = ("database is locked", "database is busy", "deadlock detected", "could not serialize")


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (driven by psycopg 3) and bare SQLite paths."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _redact(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class MetadataStore:
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
        self._engine = self._create_engine()
        self._open_schema()

    # ------------------------------------------------------------------ connection
    def _create_engine(self) -> sa.Engine:
        try:
            if self.is_sqlite:
                db = sa.make_url(self.url).database
                if db and db != ":memory:":
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
                engine = sa.create_engine(
                    self.url, connect_args={"timeout": 30, "check_same_thread": False}
                )
                _configure_sqlite(engine)
                return engine
            return sa.create_engine(self.url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError, sa.exc.NoSuchModuleError) as exc:
            raise MetadataError(
                f"Cannot use metadata URL {_redact(self.url)!r}: {exc}. Use sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DB (install conveyor[postgres] for PostgreSQL)."
            ) from exc

    def _open_schema(self) -> None:
        def create_or_upgrade(conn: sa.Connection) -> None:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7305041)"))
            inspector = sa.inspect(conn)
            if not inspector.has_table(s.schema_info.name):
                if inspector.has_table(s.artifacts.name):
                    raise MetadataError(
                        f"The database at {_redact(self.url)} has an 'artifact' table but no "
                        "Conveyor schema version: it is not a Conveyor metadata store. Point "
                        "--metadata-url (or CONVEYOR_METADATA_URL) at another database."
                    )
                s.metadata.create_all(conn)
                conn.execute(
                    s.schema_info.insert().values(key="schema_version", value=str(s.SCHEMA_VERSION))
                )
                return
            found = conn.execute(
                sa.select(s.schema_info.c.value).where(s.schema_info.c.key == "schema_version")
            ).scalar()
            version = int(found or 0)
            if version > s.SCHEMA_VERSION:
                raise MetadataError(
                    f"The metadata store at {_redact(self.url)} has schema version {version}, "
                    f"newer than this Conveyor understands ({s.SCHEMA_VERSION}). Upgrade "
                    "Conveyor (pip install -U conveyor) or point --metadata-url at another store."
                )
            while version < s.SCHEMA_VERSION:
                logger.info("Upgrading metadata schema from version %d", version)
                s.MIGRATIONS[version](conn)
                version += 1
                conn.execute(
                    s.schema_info.update()
                    .where(s.schema_info.c.key == "schema_version")
                    .values(value=str(version))
                )

        try:
            self._write(create_or_upgrade)
        except MetadataError:
            raise
        except sa.exc.DBAPIError as exc:
            raise MetadataError(
                f"Cannot open the metadata store at {_redact(self.url)}: {exc.orig}. Check "
                "that the file is a Conveyor metadata database (or the server is reachable), "
                "or point --metadata-url at another store."
            ) from exc

    def close(self) -> None:
        self._engine.dispose()

    def _write(self, fn: Callable[[sa.Connection], T], *, attempts: int = 20) -> T:
        """Run ``fn`` in one write transaction, retrying when the database is busy."""
        delay = 0.01
        for attempt in range(attempts):
            try:
                conn = self._engine.connect().execution_options(immediate=True)
                with conn, conn.begin():
                    return fn(conn)
            except sa.exc.OperationalError as exc:
                message = str(exc.orig).lower()
                if attempt == attempts - 1 or not any(m in message for m in _RETRYABLE):
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        with self._engine.connect() as conn:
            return fn(conn)

    # ------------------------------------------------------------------ types and contexts
    def _type_id(self, conn: sa.Connection, name: str, kind: str) -> int:
        key = (name, kind)
        if key not in self._type_ids:
            _insert_ignore(conn, s.types, {"name": name, "kind": kind, "properties": {}})
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
            _insert_ignore(
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

    def _find_context(self, conn: sa.Connection, kind: str, name: str) -> int | None:
        return conn.execute(
            sa.select(s.contexts.c.id)
            .join(s.types, s.types.c.id == s.contexts.c.type_id)
            .where(s.types.c.name == kind, s.types.c.kind == "context", s.contexts.c.name == name)
        ).scalar()

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
            _insert_ignore(
                conn, s.parent_contexts, {"child_id": run_ctx, "parent_id": pipeline_ctx}
            )

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

    def get_run(self, run_id: str) -> RunRecord | None:
        runs = self.runs(run_ids=[run_id])
        return runs[0] if runs else None

    def runs(
        self,
        pipeline: str | None = None,
        *,
        run_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first."""

        def read(conn: sa.Connection) -> list[RunRecord]:
            q = (
                sa.select(s.contexts.c.name, s.contexts.c.properties)
                .join(s.types, s.types.c.id == s.contexts.c.type_id)
                .where(s.types.c.name == RUN, s.types.c.kind == "context")
                .order_by(s.contexts.c.id.desc())
            )
            if run_ids is not None:
                q = q.where(s.contexts.c.name.in_(list(run_ids)))
            if pipeline is not None:
                parent = sa.select(s.parent_contexts.c.child_id).where(
                    s.parent_contexts.c.parent_id
                    == sa.select(s.contexts.c.id)
                    .join(s.types, s.types.c.id == s.contexts.c.type_id)
                    .where(s.types.c.name == PIPELINE, s.contexts.c.name == pipeline)
                    .scalar_subquery()
                )
                q = q.where(s.contexts.c.id.in_(parent))
            if limit is not None:
                q = q.limit(limit)
            return [_run_record(name, props) for name, props in conn.execute(q)]

        return self._read(read)

    def pipelines(self) -> list[str]:
        def read(conn: sa.Connection) -> list[str]:
            q = (
                sa.select(s.contexts.c.name)
                .join(s.types, s.types.c.id == s.contexts.c.type_id)
                .where(s.types.c.name == PIPELINE, s.types.c.kind == "context")
                .order_by(s.contexts.c.name)
            )
            return list(conn.execute(q).scalars())

        return self._read(read)

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
            execution_id = conn.execute(
                s.executions.insert().values(
                    type_id=self._type_id(conn, type_name, "execution"),
                    pipeline=pipeline,
                    node_id=node_id,
                    state="RUNNING",
                    cache_key=cache_key,
                    properties=dict(properties),
                    pid=os.getpid(),
                    host=socket.gethostname(),
                    heartbeat_at=now,
                    started_at=now,
                )
            ).inserted_primary_key[0]
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
            _insert_ignore(conn, s.associations, {"context_id": ctx, "execution_id": execution_id})
        output_ids = {row["artifact_id"] for row in rows if row["type"] == "OUTPUT"}
        for ctx in ctx_ids[:2]:
            for artifact_id in output_ids:
                _insert_ignore(
                    conn, s.attributions, {"context_id": ctx, "artifact_id": artifact_id}
                )

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
            execution_id = conn.execute(
                s.executions.insert().values(
                    type_id=self._type_id(conn, type_name, "execution"),
                    pipeline=pipeline,
                    node_id=node_id,
                    state=state,
                    cache_key=cache_key,
                    properties=dict(properties),
                    pid=os.getpid(),
                    host=socket.gethostname(),
                    started_at=now,
                    ended_at=now,
                )
            ).inserted_primary_key[0]
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
        for run in self.runs():
            props = run.properties
            if run.status == "RUNNING" and is_gone(
                props.get("host"), props.get("pid"), props.get("heartbeat_at")
            ):
                self.update_run(run.run_id, status="ABANDONED")
        return gone

    def find_cached(self, cache_key: str) -> tuple[int, dict[str, list[Artifact]]] | None:
        """The newest finished execution with this cache key whose outputs are all LIVE."""

        def read(conn: sa.Connection) -> tuple[int, dict[str, list[Artifact]]] | None:
            candidates = conn.execute(
                sa.select(s.executions.c.id)
                .where(
                    s.executions.c.cache_key == cache_key,
                    s.executions.c.state.in_(["COMPLETE", "CACHED"]),
                )
                .order_by(s.executions.c.id.desc())
                .limit(5)
            ).scalars()
            for execution_id in candidates:
                outputs = self._event_artifacts(conn, [execution_id], "OUTPUT")[execution_id]
                if all(a.state == "LIVE" for arts in outputs.values() for a in arts):
                    return execution_id, outputs
            return None

        return self._read(read)

    def _event_artifacts(
        self, conn: sa.Connection, execution_ids: Sequence[int], kind: str
    ) -> dict[int, dict[str, list[Artifact]]]:
        q = (
            sa.select(s.events.c.execution_id, s.events.c.key, s.events.c.idx, *_artifact_columns())
            .join(s.artifacts, s.artifacts.c.id == s.events.c.artifact_id)
            .join(s.types, s.types.c.id == s.artifacts.c.type_id)
            .where(s.events.c.execution_id.in_(list(execution_ids)), s.events.c.type == kind)
            .order_by(s.events.c.execution_id, s.events.c.key, s.events.c.idx)
        )
        result: dict[int, dict[str, list[Artifact]]] = {i: {} for i in execution_ids}
        for row in conn.execute(q):
            result[row.execution_id].setdefault(row.key, []).append(_artifact_from_row(row))
        return result

    def latest_outputs(self, pipeline: str, node_id: str) -> dict[str, list[Artifact]] | None:
        """Outputs of the newest finished execution of a node whose outputs are still LIVE."""

        def read(conn: sa.Connection) -> dict[str, list[Artifact]] | None:
            candidates = conn.execute(
                sa.select(s.executions.c.id)
                .where(
                    s.executions.c.pipeline == pipeline,
                    s.executions.c.node_id == node_id,
                    s.executions.c.state.in_(["COMPLETE", "CACHED"]),
                )
                .order_by(s.executions.c.id.desc())
                .limit(5)
            ).scalars()
            for execution_id in candidates:
                outputs = self._event_artifacts(conn, [execution_id], "OUTPUT")[execution_id]
                if all(a.state == "LIVE" for arts in outputs.values() for a in arts):
                    return outputs
            return None

        return self._read(read)

    def executions(
        self,
        *,
        run_id: str | None = None,
        pipeline: str | None = None,
        node_id: str | None = None,
        execution_ids: Sequence[int] | None = None,
        states: Sequence[str] | None = None,
    ) -> list[ExecutionRecord]:
        """Executions in the order they started, with their input and output artifact ids."""

        def read(conn: sa.Connection) -> list[ExecutionRecord]:
            q = (
                sa.select(s.executions, s.types.c.name.label("type_name"))
                .join(s.types, s.types.c.id == s.executions.c.type_id)
                .order_by(s.executions.c.id)
            )
            if run_id is not None:
                ctx = self._find_context(conn, RUN, run_id)
                q = q.where(
                    s.executions.c.id.in_(
                        sa.select(s.associations.c.execution_id).where(
                            s.associations.c.context_id == ctx
                        )
                    )
                )
            if pipeline is not None:
                q = q.where(s.executions.c.pipeline == pipeline)
            if node_id is not None:
                q = q.where(s.executions.c.node_id == node_id)
            if execution_ids is not None:
                q = q.where(s.executions.c.id.in_(list(execution_ids)))
            if states is not None:
                q = q.where(s.executions.c.state.in_(list(states)))
            records = [_execution_record(row) for row in conn.execute(q)]
            self._fill_links(conn, records)
            return records

        return self._read(read)

    def _fill_links(self, conn: sa.Connection, records: list[ExecutionRecord]) -> None:
        by_id = {r.execution_id: r for r in records}
        if not by_id:
            return
        for chunk in _chunks(list(by_id), 500):
            rows = conn.execute(
                sa.select(
                    s.events.c.execution_id, s.events.c.type, s.events.c.key, s.events.c.artifact_id
                )
                .where(s.events.c.execution_id.in_(chunk))
                .order_by(s.events.c.id)
            )
            for execution_id, kind, key, artifact_id in rows:
                target = (
                    by_id[execution_id].inputs if kind == "INPUT" else by_id[execution_id].outputs
                )
                target.setdefault(key, []).append(artifact_id)
            runs = conn.execute(
                sa.select(s.associations.c.execution_id, s.contexts.c.name)
                .join(s.contexts, s.contexts.c.id == s.associations.c.context_id)
                .join(s.types, s.types.c.id == s.contexts.c.type_id)
                .where(s.associations.c.execution_id.in_(chunk), s.types.c.name == RUN)
            )
            for execution_id, name in runs:
                by_id[execution_id].run_ids.append(name)

    def get_execution(self, execution_id: int) -> ExecutionRecord | None:
        found = self.executions(execution_ids=[execution_id])
        return found[0] if found else None

    # ------------------------------------------------------------------ artifacts
    def artifacts(
        self,
        *,
        type_name: str | None = None,
        run_id: str | None = None,
        pipeline: str | None = None,
        node_id: str | None = None,
        output_key: str | None = None,
        states: Sequence[str] | None = None,
        artifact_ids: Sequence[int] | None = None,
        uri: str | None = None,
        newest_first: bool = False,
    ) -> list[Artifact]:
        """Artifacts, filtered. ``run_id``/``pipeline``/``node_id`` select the artifacts that
        executions in that run, pipeline or node produced (including cached reuses)."""

        def read(conn: sa.Connection) -> list[Artifact]:
            q = sa.select(*_artifact_columns()).join(s.types, s.types.c.id == s.artifacts.c.type_id)
            if type_name is not None:
                q = q.where(s.types.c.name == type_name)
            if states is not None:
                q = q.where(s.artifacts.c.state.in_(list(states)))
            if artifact_ids is not None:
                q = q.where(s.artifacts.c.id.in_(list(artifact_ids)))
            if uri is not None:
                q = q.where(s.artifacts.c.uri == uri)
            produced = sa.select(s.events.c.artifact_id).where(s.events.c.type == "OUTPUT")
            filtered = False
            if output_key is not None:
                produced = produced.where(s.events.c.key == output_key)
                filtered = True
            if run_id is not None:
                ctx = self._find_context(conn, RUN, run_id) or -1
                produced = produced.where(
                    s.events.c.execution_id.in_(
                        sa.select(s.associations.c.execution_id).where(
                            s.associations.c.context_id == ctx
                        )
                    )
                )
                filtered = True
            if pipeline is not None or node_id is not None:
                execs = sa.select(s.executions.c.id)
                if pipeline is not None:
                    execs = execs.where(s.executions.c.pipeline == pipeline)
                if node_id is not None:
                    execs = execs.where(s.executions.c.node_id == node_id)
                produced = produced.where(s.events.c.execution_id.in_(execs))
                filtered = True
            if filtered:
                q = q.where(s.artifacts.c.id.in_(produced))
            q = q.order_by(s.artifacts.c.id.desc() if newest_first else s.artifacts.c.id)
            return [_artifact_from_row(row) for row in conn.execute(q)]

        return self._read(read)

    def get_artifact(self, artifact_id: int) -> Artifact | None:
        found = self.artifacts(artifact_ids=[artifact_id])
        return found[0] if found else None

    def set_artifact_state(self, artifact_ids: Sequence[int], state: str) -> None:
        now = time.time()

        def write(conn: sa.Connection) -> None:
            for chunk in _chunks(list(artifact_ids), 500):
                conn.execute(
                    s.artifacts.update()
                    .where(s.artifacts.c.id.in_(chunk))
                    .values(state=state, updated_at=now)
                )

        self._write(write)

    def edges(
        self, *, artifact_ids: Sequence[int] = (), execution_ids: Sequence[int] = ()
    ) -> list[tuple[int, int, str, str]]:
        """Events touching the given artifacts or executions as
        ``(artifact_id, execution_id, INPUT|OUTPUT, key)``."""

        def read(conn: sa.Connection) -> list[tuple[int, int, str, str]]:
            cols = (
                s.events.c.artifact_id,
                s.events.c.execution_id,
                s.events.c.type,
                s.events.c.key,
            )
            found: list[tuple[int, int, str, str]] = []
            for column, ids in ((cols[0], artifact_ids), (cols[1], execution_ids)):
                for chunk in _chunks(list(ids), 500):
                    found += [
                        tuple(r) for r in conn.execute(sa.select(*cols).where(column.in_(chunk)))
                    ]
            return sorted(set(found))

        return self._read(read)


# ---------------------------------------------------------------------- helpers
def _configure_sqlite(engine: sa.Engine) -> None:
    @sa_event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's BEGIN below control transactions, not the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        # Writers take the lock up front: a deferred transaction that later needs to write
        # can fail with "database is locked" without waiting for the busy timeout.
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _insert_ignore(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).values(**values).on_conflict_do_nothing())


def _output_ids_of(execution_ids: Sequence[int]) -> sa.Select:
    return sa.select(s.events.c.artifact_id).where(
        s.events.c.execution_id.in_(list(execution_ids)), s.events.c.type == "OUTPUT"
    )


def _artifact_columns() -> tuple[Any, ...]:
    a = s.artifacts.c
    return (a.id.label("artifact_id"), a.uri, a.name, a.state, a.properties,
            s.types.c.name.label("artifact_type"))  # fmt: skip


def _artifact_from_row(row: Any) -> Artifact:
    cls = artifact_class(row.artifact_type)
    return cls(
        row.uri, id=row.artifact_id, properties=row.properties or {}, state=row.state, name=row.name
    )


def _run_record(name: str, props: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=name,
        pipeline=props.get("pipeline", ""),
        status=props.get("status", "UNKNOWN"),
        started_at=props.get("started_at"),
        ended_at=props.get("ended_at"),
        properties=dict(props),
    )


def _execution_record(row: Any) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=row.id,
        pipeline=row.pipeline,
        node_id=row.node_id,
        type_name=row.type_name,
        state=row.state,
        started_at=row.started_at,
        ended_at=row.ended_at,
        cache_key=row.cache_key,
        properties=row.properties or {},
        log_uri=row.log_uri,
        error=row.error,
        pid=row.pid,
        host=row.host,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
