"""The tables of the metadata store: ML Metadata's data model on SQLAlchemy Core.

Types (artifact, execution and context types), artifacts, executions, contexts
(pipeline, run, node), events (input/output edges between artifacts and executions),
attributions (artifact in context), associations (execution in context) and
parent contexts (run in pipeline). ``conveyor_schema`` holds the schema version.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

SCHEMA_VERSION = 1

metadata = sa.MetaData()

schema_info = sa.Table(
    "conveyor_schema",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

types = sa.Table(
    "type",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # artifact | execution | context
    sa.Column("properties", sa.JSON, nullable=False, default=dict),
    sa.UniqueConstraint("name", "kind", name="uq_type_name_kind"),
)

artifacts = sa.Table(
    "artifact",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type_id", sa.Integer, sa.ForeignKey("type.id"), nullable=False, index=True),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("name", sa.String(512), nullable=False, default=""),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("properties", sa.JSON, nullable=False, default=dict),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

executions = sa.Table(
    "execution",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type_id", sa.Integer, sa.ForeignKey("type.id"), nullable=False, index=True),
    sa.Column("pipeline", sa.String(256), nullable=False),
    sa.Column("node_id", sa.String(256), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("cache_key", sa.String(64), nullable=True, index=True),
    sa.Column("properties", sa.JSON, nullable=False, default=dict),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("host", sa.String(256), nullable=True),
    sa.Column("heartbeat_at", sa.Float, nullable=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("log_uri", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)

contexts = sa.Table(
    "context",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type_id", sa.Integer, sa.ForeignKey("type.id"), nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("properties", sa.JSON, nullable=False, default=dict),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("type_id", "name", name="uq_context_type_name"),
)

parent_contexts = sa.Table(
    "parent_context",
    metadata,
    sa.Column("child_id", sa.Integer, sa.ForeignKey("context.id"), primary_key=True),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("context.id"), primary_key=True),
)

events = sa.Table(
    "event",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifact.id"), nullable=False, index=True),
    sa.Column(
        "execution_id", sa.Integer, sa.ForeignKey("execution.id"), nullable=False, index=True
    ),
    sa.Column("type", sa.String(8), nullable=False),  # INPUT | OUTPUT
    sa.Column("key", sa.String(256), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False, default=0),
    sa.Column("time", sa.Float, nullable=False),
)

attributions = sa.Table(
    "attribution",
    metadata,
    sa.Column("context_id", sa.Integer, sa.ForeignKey("context.id"), primary_key=True),
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifact.id"), primary_key=True),
)

associations = sa.Table(
    "association",
    metadata,
    sa.Column("context_id", sa.Integer, sa.ForeignKey("context.id"), primary_key=True),
    sa.Column("execution_id", sa.Integer, sa.ForeignKey("execution.id"), primary_key=True),
    sa.Index("ix_association_execution", "execution_id"),
)

#: Upgrades from each older schema version to the next: ``MIGRATIONS[v]`` turns a
#: version-``v`` database into version ``v + 1`` inside one transaction.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {}
