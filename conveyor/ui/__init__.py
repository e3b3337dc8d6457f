"""A read-only web UI over the metadata store: runs and their DAGs, executions, artifacts
with their reports, lineage graphs, and two runs or models side by side.

Importing this package loads neither Starlette nor the store; ``conveyor ui`` does.

Example::

    from conveyor.ui import serve

    serve("sqlite:////tmp/metadata.db", port=8080)   # http://127.0.0.1:8080/
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["create_app", "serve"]


def create_app(metadata_url: str | None = None, **options: Any) -> Starlette:
    """The Starlette app over the store at ``metadata_url``; see
    :func:`conveyor.ui.app.create_app`."""
    from conveyor.ui.app import create_app as build

    return build(metadata_url, **options)


def serve(metadata_url: str | None = None, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the UI until interrupted; see :mod:`conveyor.ui.server`."""
    from conveyor.ui.server import serve as run

    run(metadata_url, host=host, port=port)
