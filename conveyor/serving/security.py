"""A model server's guards: the bearer token, checked in constant time, and the request body
size limit, enforced before the body is read (by its Content-Length) and while it streams.

The token comes from ``--auth-token`` or the ``CONVEYOR_SERVE_TOKEN`` environment variable;
the health checks (``/v2/health/live``, ``/v2/health/ready``) answer without it, so an
orchestrator's probes need no secret.

Example::

    check_token(request.headers.get("authorization"), b"s3cret")   # RequestError 401
    body = await read_body(request, limit=16 * 1024 * 1024)         # RequestError 413
"""

from __future__ import annotations

import hmac

from starlette.requests import ClientDisconnect, Request

from conveyor.serving.errors import RequestError


class Unauthorized(RequestError):
    def __init__(self, message: str) -> None:
        super().__init__(401, message)


def check_token(header: str | None, token: bytes) -> None:
    """Pass when ``header`` is ``Bearer <token>``; raise 401 otherwise."""
    if not header:
        raise Unauthorized("This server needs a token: send 'Authorization: Bearer <token>'.")
    scheme, _, given = header.partition(" ")
    # compare_digest on the full values: the time taken does not tell how much matched.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
        raise Unauthorized("The bearer token is not valid for this server.")


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, or 413 as soon as it is known to pass ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    receive = request.receive  # the ASGI messages themselves: no generator per request
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        f"The request body is larger than this server's limit of {limit} bytes; send fewer "
        "rows per request (or start the server with a larger --max-body-bytes).",
    )
