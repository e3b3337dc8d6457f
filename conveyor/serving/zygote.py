"""The model server's zygote: a fresh interpreter that imports the server and a model's
framework once, then forks a model server for each :func:`~conveyor.serving.start_server`
call, instead of each call starting Python and importing them again (a second or two of
CPU for scikit-learn).

A forked server is still a process that has run no user code and loaded no model: the
zygote is started with ``python -m conveyor.serving.zygote``, imports only the server's
modules and libraries (:func:`importable`), and the server it forks reads its configuration,
loads its bundles and serves as ``python -m conveyor.serving`` does. The local runner starts
one while a run's first nodes work when a later node starts a model server (components say
so with :func:`uses_model_server`), and names it in ``CONVEYOR_SERVER_ZYGOTE``; without
one, or when it cannot be reached, ``start_server`` starts a fresh interpreter as before.

Example::

    zygote = start_zygote(["sklearn.neural_network"])
    os.environ[ZYGOTE_ENV] = zygote.address
    with start_server(model_name="penguin", model_base="/models/penguin") as server:
        ...  # forked from the zygote
    zygote.close()
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from conveyor.frameworks.preload import FORK_SAFE_ROOTS
from conveyor.serving.forking import (
    ForkedProcess,
    ForkServer,
    listening_socket,
    request_fork,
    serve,
)

logger = logging.getLogger(__name__)

ZYGOTE_ENV = "CONVEYOR_SERVER_ZYGOTE"
#: What every model server imports before it loads a model.
SERVER_MODULES = (
    "conveyor.serving.__main__",
    "conveyor.serving.app",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.lifespan.on",
    "conveyor.frameworks.bundle",
)
#: Top-level packages the zygote may import: the server's, and fork-safe frameworks.
_LIBRARIES = ("conveyor", "uvicorn", "starlette", "anyio", *FORK_SAFE_ROOTS)
_FRAMEWORK_ADAPTERS = {"sklearn": "conveyor.frameworks.sklearn"}

F = TypeVar("F", bound=Callable[..., Any])


def uses_model_server(fn: F) -> F:
    """Mark a component function that starts a model server, so that a runner can warm up a
    zygote before it runs."""
    fn.starts_model_server = True  # type: ignore[attr-defined]
    return fn


def starts_model_server(fn: Any) -> bool:
    return bool(getattr(fn, "starts_model_server", False))


def importable(name: str) -> bool:
    """Whether the zygote may import ``name``: the server's modules and libraries only."""
    return name.partition(".")[0] in _LIBRARIES


def zygote_modules(framework_modules: Iterable[str]) -> list[str]:
    """What a zygote should import for models made with ``framework_modules``."""
    framework_modules = [name for name in framework_modules if importable(name)]
    roots = {name.partition(".")[0] for name in framework_modules}
    adapters = [module for root, module in _FRAMEWORK_ADAPTERS.items() if root in roots]
    return [*SERVER_MODULES, *adapters, *framework_modules]


def start_zygote(framework_modules: Iterable[str] = ()) -> ForkServer:
    """Start a zygote in a fresh interpreter; it imports the server and ``framework_modules``
    while this process goes on. Raises OSError if it cannot be started."""
    listener, address = listening_socket()
    read_end, write_end = os.pipe()
    env = {key: value for key, value in os.environ.items() if key != ZYGOTE_ENV}
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.serving.zygote", str(listener.fileno()),
             str(read_end), str(os.getpid()), *zygote_modules(framework_modules)],
            pass_fds=(listener.fileno(), read_end),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env,
        )  # fmt: skip
    except OSError:
        os.close(write_end)
        raise
    finally:
        listener.close()
        os.close(read_end)
    return ForkServer(address, process, write_end)


def fork_server(env: Mapping[str, str], log_path: str, timeout_s: float) -> ForkedProcess | None:
    """A model server forked from the zygote ``CONVEYOR_SERVER_ZYGOTE`` names, serving what
    ``env`` says and writing to ``log_path``; None when there is no zygote to ask."""
    address = os.environ.get(ZYGOTE_ENV)
    if not address:
        return None
    try:
        process = request_fork(
            address, "serve", (), hangup=signal.SIGTERM, env=env, cwd=os.getcwd(),
            output=log_path,
        )  # fmt: skip
    except OSError as exc:
        logger.debug("the server zygote at %s cannot be reached: %s", address, exc)
        return None
    if process.wait_started(timeout_s):
        return process
    process.kill()
    logger.debug("the server zygote at %s did not fork a server", address)
    return None


def _serve() -> int:
    from conveyor.serving.__main__ import main
    from conveyor.serving.server import PARENT_ENV

    os.environ[PARENT_ENV] = str(os.getppid())  # end with the zygote, which ends with us
    return main()


def main(argv: list[str]) -> int:
    listener_fd, lifeline, parent, *modules = argv
    if os.getppid() != int(parent):  # the runner is gone already
        return 1
    listener = socket.socket(fileno=int(listener_fd))
    serve(listener, int(lifeline), {"serve": _serve}, modules=modules, importable=importable)
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:  # SIGTERM: its children are ended already
        code = exc.code if isinstance(exc.code, int) else 1
    os._exit(code)  # no interpreter teardown: with the frameworks loaded, it takes a while
