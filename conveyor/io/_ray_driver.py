"""The process that drives Ray Data passes for a component running on a Ray cluster.

A component's process is forked from a Ray worker, so it inherits that worker's connection,
which cannot be used (nor replaced: ``ray.init`` there hangs). This module runs instead as a
fresh interpreter (``python -m conveyor.io._ray_driver ADDRESS``) that joins the cluster as a
driver and runs the jobs the component sends: each frame on stdin is a pickled ``(fn, args)``,
answered on the original stdout by ``("ok", value)`` or ``("error", message)``. It exits when
stdin closes, that is when the component's process ends, however it ends.
"""

from __future__ import annotations

import os
import struct
import sys
from typing import IO, Any

_HEADER = struct.Struct("!Q")


def send(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def receive(stream: IO[bytes]) -> bytes | None:
    """The next frame, or None at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _HEADER.unpack(header)[0]
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return payload


def connect(address: str) -> None:
    import logging

    import ray
    from ray import data as ray_data

    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    context = ray_data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def serve(inbox: IO[bytes], outbox: IO[bytes]) -> None:
    from ray import cloudpickle

    while (payload := receive(inbox)) is not None:
        fn, args = cloudpickle.loads(payload)
        try:
            answer: tuple[str, Any] = ("ok", fn(*args))
        except Exception as exc:  # sent back whole: the component raises it
            answer = ("error", describe(exc))
        send(outbox, cloudpickle.dumps(answer))


def describe(exc: BaseException) -> str:
    """The innermost error's type and message, without Ray's wrapping and tracebacks."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else repr(exc)
    return last if type(exc).__name__ == "ConveyorError" else f"{type(exc).__name__}: {last}"


def main() -> None:
    address = sys.argv[1]
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints go to the execution's log
    inbox = sys.stdin.buffer
    try:
        connect(address)
    except Exception as exc:
        send(outbox, _pickled(("error", f"cannot join the Ray cluster at {address}: {exc}")))
        return
    send(outbox, _pickled(("ok", None)))
    serve(inbox, outbox)


def _pickled(value: Any) -> bytes:
    from ray import cloudpickle

    return cloudpickle.dumps(value)


if __name__ == "__main__":
    main()
