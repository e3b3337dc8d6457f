"""Fork servers: processes that import what their children will need once, then fork a child
per request, so the children start with those modules loaded instead of importing them.

A fork server is single-threaded and waits on a Unix socket. A request (one connection)
names one of the server's targets and carries the target's arguments pickled; the fork
server forks, and only the child unpickles them and calls the target, so nothing a request
carries runs in the fork server itself. The connection then brings back the child's pid and,
when the child ends, its exit code; a signal sent down it reaches the child; closing it (the
requester died) sends the child the request's ``hangup`` signal. Children die with their
fork server, and a fork server dies with the process that started it. A fork server imports
only modules ``importable`` allows (libraries, never the requester's code).

:mod:`conveyor.serving.zygote` runs one in a fresh interpreter for model servers; the local
runner forks one from itself for the executions that import heavy frameworks.

Example::

    forks = start_forked({"hello": print}, modules=["numpy"])
    child = request_fork(forks.address, "hello", ("hi",), hangup=signal.SIGKILL)
    child.wait()      # 0, once the child printed "hi"
    forks.close()
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from conveyor.serving._fork_server import Importable, serve

logger = logging.getLogger(__name__)


def listening_socket() -> tuple[socket.socket, str]:
    """A Unix socket listening in a new private folder, and its address."""
    folder = tempfile.mkdtemp(prefix="conveyor-forks-")
    address = os.path.join(folder, "socket")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(address)
        listener.listen(64)
    except OSError:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return listener, address


# ---------------------------------------------------------------------- requesting a fork
class ForkedProcess:
    """A child a fork server started for us. Waits and signals like ``subprocess.Popen``
    (``poll``, ``wait``, ``terminate``, ``kill``, ``returncode``) and like
    ``multiprocessing.Process`` (``sentinel``, ``join``, ``exitcode``)."""

    def __init__(self, conn: Connection) -> None:
        self.sentinel = conn  # readable when the fork server has news
        self._conn = conn
        self.pid: int | None = None
        self.returncode: int | None = None

    @property
    def exitcode(self) -> int | None:
        return self.poll()

    def wait_started(self, timeout: float) -> bool:
        """Wait for the child's pid; False if the fork server failed to start it in time."""
        deadline = time.monotonic() + timeout
        while self.pid is None and self.returncode is None:
            if not self._read(max(0.0, deadline - time.monotonic())):
                return False
        return self.pid is not None

    def poll(self) -> int | None:
        while self.returncode is None and self._read(0):
            pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._read(left) and deadline is not None:
                raise subprocess.TimeoutExpired(f"forked process {self.pid}", timeout or 0)
        return self.returncode

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(timeout)

    def is_alive(self) -> bool:
        return self.poll() is None

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(OSError):
                self._conn.send(("signal", int(signum)))

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _read(self, timeout: float | None) -> bool:
        """Handle one message from the fork server; False if none came within ``timeout``."""
        if not self._conn.poll(timeout):
            return False
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):  # the fork server is gone, and its children with it
            kind, value = "exit", -signal.SIGKILL
        if kind == "pid":
            self.pid = value
        else:
            self.returncode = value
            self._conn.close()
        return True

    def __repr__(self) -> str:
        return f"ForkedProcess(pid={self.pid}, returncode={self.returncode})"


def request_fork(
    address: str,
    target: str,
    args: tuple[Any, ...],
    *,
    hangup: int,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    sys_path: list[str] | None = None,
    output: str | None = None,
    modules: Iterable[str] = (),
) -> ForkedProcess:
    """Ask the fork server at ``address`` for a child that calls ``target(*args)`` with
    ``env``, ``cwd`` and ``sys_path`` as given and, when ``output`` is a path, its stdout and
    stderr appended to it. Raises OSError when the server cannot be reached and
    pickle.PicklingError (or TypeError) when ``args`` cannot be sent."""
    request = {
        "target": target,
        "args": pickle.dumps(args),
        "hangup": int(hangup),
        "env": dict(env) if env is not None else None,
        "cwd": cwd,
        "sys_path": list(sys_path) if sys_path is not None else None,
        "output": output,
        "modules": list(modules),
    }
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    conn = Connection(sock.detach())
    try:
        conn.send(request)
    except OSError:
        conn.close()
        raise
    return ForkedProcess(conn)


# ---------------------------------------------------------------------- starting a fork server
@dataclass
class ForkServer:
    """A fork server this process started: ``address`` to send requests to, ``close()`` to
    end it and its children."""

    address: str
    process: Any  # subprocess.Popen, or the pid of a fork
    lifeline: int  # the write end of a pipe whose closing ends the fork server
    closed: bool = field(default=False)

    def close(self, timeout_s: float = 5.0) -> None:
        """End the fork server (its children are killed) and wait for it."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            os.close(self.lifeline)
        if isinstance(self.process, int):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process, signal.SIGTERM)
            _end_pid(self.process, timeout_s)
        else:
            end_process(self.process, timeout_s)
        shutil.rmtree(os.path.dirname(self.address), ignore_errors=True)


def end_process(process: Any, timeout_s: float) -> None:
    """SIGTERM ``process`` (a Popen or a ForkedProcess), then SIGKILL it if it is still there
    after ``timeout_s``; wait for it either way."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _end_pid(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.005)


def start_forked(
    targets: Mapping[str, Callable[..., Any]],
    *,
    modules: Iterable[str] = (),
    importable: Importable = lambda name: True,
) -> ForkServer:
    """Fork this process into a fork server for ``targets``, which first imports ``modules``.
    Call from the main thread with nothing else forking at the same time."""
    listener, address = listening_socket()
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the fork server: never returns into the caller's code
        code = 0
        try:
            os.close(write_end)
            serve(listener, read_end, targets, modules=modules, importable=importable)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(read_end)
    listener.close()
    return ForkServer(address, pid, write_end)
