"""Connections to the metadata database: engines, transactions, and the schema version.

SQLite is the embedded default (WAL, busy timeout, ``BEGIN IMMEDIATE`` writes that are
retried when another process holds the lock); PostgreSQL works from a ``postgresql://`` URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from conveyor.metadata import schema as s
from conveyor.types import MetadataError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RETRYABLE = ("database is locked", "database is busy", "deadlock detected", "could not serialize")


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (driven by psycopg 3) and bare SQLite paths."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def redact(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and immediate writes."""
    try:
        if url.startswith("sqlite"):
            db = sa.make_url(url).database
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            _configure_sqlite(engine)
            return engine
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError, sa.exc.NoSuchModuleError) as exc:
        raise MetadataError(
            f"Cannot use metadata URL {redact(url)!r}: {exc}. Use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DB (install conveyor[postgres] for PostgreSQL)."
        ) from exc


def open_schema(engine: sa.Engine, url: str) -> None:
    """Create the tables in an empty database, upgrade an older one, refuse a newer one."""

    def create_or_upgrade(conn: sa.Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7305041)"))
        inspector = sa.inspect(conn)
        if not inspector.has_table(s.schema_info.name):
            if inspector.has_table(s.artifacts.name):
                raise MetadataError(
                    f"The database at {redact(url)} has an 'artifact' table but no "
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
                f"The metadata store at {redact(url)} has schema version {version}, "
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
        run_write(engine, create_or_upgrade)
    except MetadataError:
        raise
    except sa.exc.DBAPIError as exc:
        raise MetadataError(
            f"Cannot open the metadata store at {redact(url)}: {exc.orig}. Check "
            "that the file is a Conveyor metadata database (or the server is reachable), "
            "or point --metadata-url at another store."
        ) from exc


def run_write(engine: sa.Engine, fn: Callable[[sa.Connection], T], *, attempts: int = 20) -> T:
    """Run ``fn`` in one write transaction, retrying when the database is busy."""
    delay = 0.01
    for attempt in range(attempts):
        try:
            conn = engine.connect().execution_options(immediate=True)
            with conn, conn.begin():
                return fn(conn)
        except sa.exc.OperationalError as exc:
            message = str(exc.orig).lower()
            if attempt == attempts - 1 or not any(m in message for m in _RETRYABLE):
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")


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


def insert_ignore(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).values(**values).on_conflict_do_nothing())


def chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
