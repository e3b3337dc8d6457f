"""The fork server's side of :mod:`conveyor.serving.forking`: the loop that forks a child per
request, reports its pid and exit code, passes signals on, and ends the children it leaves.

Example::

    serve(listener, lifeline, {"serve": run_server}, modules=["uvicorn"])
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import pickle
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

logger = logging.getLogger(__name__)

Importable = Callable[[str], bool]


@dataclass
class _Child:
    conn: Connection | None
    hangup: int
    pidfd: int | None


class _Server:
    def __init__(
        self,
        listener: socket.socket,
        lifeline: int,
        targets: Mapping[str, Callable[..., Any]],
        importable: Importable,
    ) -> None:
        self.listener = listener
        self.lifeline = lifeline
        self.targets = targets
        self.importable = importable
        self.children: dict[int, _Child] = {}

    def run(self) -> None:
        while True:
            conns = {c.conn: pid for pid, c in self.children.items() if c.conn is not None}
            pidfds = {c.pidfd: pid for pid, c in self.children.items() if c.pidfd is not None}
            polling = len(pidfds) < len(self.children)  # no pidfd: reap by polling
            watched = [self.listener, self.lifeline, *conns, *pidfds]
            for ready in wait(watched, timeout=0.02 if polling else None):
                if ready is self.listener:
                    self.accept()
                elif ready == self.lifeline:
                    return
                elif ready in pidfds:
                    self.reap(pidfds[ready], 0)
                elif ready in conns:
                    self.message(conns[ready])
            if polling:
                for pid in [p for p, c in self.children.items() if c.pidfd is None]:
                    self.reap(pid, os.WNOHANG)

    def accept(self) -> None:
        sock, _ = self.listener.accept()
        conn = Connection(sock.detach())
        try:
            request = conn.recv()
        except (EOFError, OSError):
            conn.close()
            return
        if request.get("target") not in self.targets:
            with contextlib.suppress(OSError):
                conn.send(("exit", 1))
            conn.close()
            return
        warm_up(request["modules"], self.importable)
        pid = os.fork()
        if pid == 0:
            self.in_child(conn, request)
        self.children[pid] = _Child(conn, request["hangup"], _pidfd(pid))
        try:
            conn.send(("pid", pid))
        except OSError:
            self.hang_up(pid)

    def in_child(self, conn: Connection, request: dict[str, Any]) -> None:
        code = 1
        try:
            self.listener.close()
            os.close(self.lifeline)
            for child in self.children.values():
                if child.conn is not None:
                    child.conn.close()
                if child.pidfd is not None:
                    os.close(child.pidfd)
            conn.close()
            code = _run_child(self.targets[request["target"]], request)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def message(self, pid: int) -> None:
        child = self.children[pid]
        try:
            kind, value = child.conn.recv()  # type: ignore[union-attr]
        except (EOFError, OSError, ValueError):
            self.hang_up(pid)
            return
        if kind == "signal":
            os.kill(pid, value)  # not reaped yet, so the pid is still this child's

    def hang_up(self, pid: int) -> None:
        child = self.children[pid]
        if child.conn is not None:
            child.conn.close()
            child.conn = None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, child.hangup)

    def reap(self, pid: int, options: int) -> None:
        done, status = os.waitpid(pid, options)
        if done == 0:
            return
        child = self.children.pop(pid)
        if child.pidfd is not None:
            os.close(child.pidfd)
        if child.conn is not None:
            with contextlib.suppress(OSError):
                child.conn.send(("exit", os.waitstatus_to_exitcode(status)))
            child.conn.close()

    def end_children(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.reap(pid, 0)


def serve(
    listener: socket.socket,
    lifeline: int,
    targets: Mapping[str, Callable[..., Any]],
    *,
    modules: Iterable[str] = (),
    importable: Importable = lambda name: True,
) -> None:
    """Be a fork server on ``listener`` until ``lifeline`` (a pipe's read end) closes or
    SIGTERM comes; then kill the children left."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt is for the runner to handle
    signal.signal(signal.SIGTERM, _exit_on_signal)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
    server = _Server(listener, lifeline, targets, importable)
    try:
        warm_up(modules, importable)
        server.run()
    finally:
        server.end_children()


def warm_up(modules: Iterable[str], importable: Importable) -> None:
    """Import ``modules`` that ``importable`` allows; one that fails is left to the child."""
    for name in modules:
        if name in sys.modules or not importable(name):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:
            logger.debug("not warming up %s: %s", name, exc)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _run_child(target: Callable[..., Any], request: dict[str, Any]) -> int:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if request["env"] is not None:
        os.environ.clear()
        os.environ.update(request["env"])
    if request["cwd"]:
        os.chdir(request["cwd"])
    if request["sys_path"] is not None:
        sys.path[:] = request["sys_path"]
    if request["output"]:
        _redirect(request["output"])
    args = pickle.loads(request["args"])
    returned = target(*args)
    return returned if isinstance(returned, int) else 0


def _redirect(path: str) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):  # not Linux 5.3+: reaped by polling
        return None


def die_with_parent() -> None:
    """On Linux, have the kernel kill this process when its parent dies."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
