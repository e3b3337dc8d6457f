"""Read queries over the metadata store: runs, executions, artifacts and the events between them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from conveyor.metadata import schema as s
from conveyor.metadata.connection import chunks, run_write
from conveyor.metadata.records import ExecutionRecord, RunRecord
from conveyor.types import Artifact, artifact_class

T = TypeVar("T")

PIPELINE, RUN, NODE = "pipeline", "run", "node"


class StoreReads:
    """The read half of :class:`~conveyor.metadata.MetadataStore`."""

    url: str
    _engine: sa.Engine

    def _write(self, fn: Callable[[sa.Connection], T]) -> T:
        return run_write(self._engine, fn)

    def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        with self._engine.connect() as conn:
            return fn(conn)

    def _find_context(self, conn: sa.Connection, kind: str, name: str) -> int | None:
        return conn.execute(
            sa.select(s.contexts.c.id)
            .join(s.types, s.types.c.id == s.contexts.c.type_id)
            .where(s.types.c.name == kind, s.types.c.kind == "context", s.contexts.c.name == name)
        ).scalar()

    def get_run(self, run_id: str) -> RunRecord | None:
        runs = self.runs(run_ids=[run_id])
        return runs[0] if runs else None

    def runs(
        self,
        pipeline: str | None = None,
        *,
        run_ids: Sequence[str] | None = None,
        status: str | None = None,
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
            if status is not None:
                q = q.where(s.contexts.c.properties["status"].as_string() == status)
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

    def find_cached(self, cache_key: str) -> tuple[int, dict[str, list[Artifact]]] | None:
        """The newest finished execution with this cache key whose outputs are all LIVE."""
        return self._read(
            lambda conn: self._newest_live_outputs(conn, s.executions.c.cache_key == cache_key)
        )

    def latest_outputs(self, pipeline: str, node_id: str) -> dict[str, list[Artifact]] | None:
        """Outputs of the newest finished execution of a node whose outputs are still LIVE."""
        found = self._read(
            lambda conn: self._newest_live_outputs(
                conn, s.executions.c.pipeline == pipeline, s.executions.c.node_id == node_id
            )
        )
        return found[1] if found else None

    def _newest_live_outputs(
        self, conn: sa.Connection, *where: Any
    ) -> tuple[int, dict[str, list[Artifact]]] | None:
        candidates = conn.execute(
            sa.select(s.executions.c.id)
            .where(*where, s.executions.c.state.in_(["COMPLETE", "CACHED"]))
            .order_by(s.executions.c.id.desc())
            .limit(5)
        ).scalars()
        for execution_id in candidates:
            outputs = self._event_artifacts(conn, [execution_id], "OUTPUT")[execution_id]
            if all(a.state == "LIVE" for arts in outputs.values() for a in arts):
                return execution_id, outputs
        return None

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

    def readers(
        self, artifact_ids: Sequence[int], *, states: Sequence[str] | None = None
    ) -> list[ExecutionRecord]:
        """The executions (in ``states``) that read any of ``artifact_ids``, in the order they
        started: one query, however many executions read them (a cached input is read by
        every run that reused it)."""

        def read(conn: sa.Connection) -> list[ExecutionRecord]:
            reading = sa.select(s.events.c.execution_id).where(
                s.events.c.type == "INPUT", s.events.c.artifact_id.in_(list(artifact_ids))
            )
            q = (
                sa.select(s.executions, s.types.c.name.label("type_name"))
                .join(s.types, s.types.c.id == s.executions.c.type_id)
                .where(s.executions.c.id.in_(reading))
                .order_by(s.executions.c.id)
            )
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
        for chunk in chunks(list(by_id), 500):
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
                for chunk in chunks(list(ids), 500):
                    found += [
                        tuple(r) for r in conn.execute(sa.select(*cols).where(column.in_(chunk)))
                    ]
            return sorted(set(found))

        return self._read(read)


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
