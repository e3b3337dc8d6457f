"""Run the UI in uvicorn on one address, loopback unless told otherwise.

Example::

    serve("sqlite:////tmp/metadata.db", host="127.0.0.1", port=0)  # any free port
"""

from __future__ import annotations

import logging
import socket

from conveyor.types import ConveyorError
from conveyor.ui.app import LOCAL_HOSTS, create_app

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def serve(metadata_url: str | None = None, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Open the store, bind ``host:port`` (0: a free port) and serve until interrupted.

    The address actually bound is printed as ``Conveyor UI: http://HOST:PORT/``."""
    import sqlalchemy as sa
    import uvicorn

    if not 0 <= port <= 65535:
        raise ConveyorError(f"The 'port' parameter must be between 0 and 65535. Got {port}.")
    hosts = ["*"] if host in ("0.0.0.0", "::") else [*LOCAL_HOSTS, host]
    app = create_app(metadata_url, allowed_hosts=hosts)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConveyorError(
            f"Cannot listen on {host}:{port}: {exc.strerror}. Pick another --port (0 picks a "
            "free one)."
        ) from exc
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    store = sa.engine.make_url(app.state.store.url).render_as_string(hide_password=True)
    print(f"Conveyor UI: http://{shown}:{bound}/  (store: {store})", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
