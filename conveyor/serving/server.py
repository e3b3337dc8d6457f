"""Running the model server: :func:`run` serves in this process (``conveyor serve``, the
container entrypoint); :func:`start_server` starts it in a child process on a free loopback
port and returns once every model answers, for tests, benchmarks and InfraValidator.

Example::

    with start_server(model_name="penguin", model_base="/models/penguin") as server:
        httpx.post(f"{server.url}/v1/models/penguin:predict", json={"instances": rows})
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from conveyor.serving.config import DEFAULT_HOST, ServingConfig, read_model_config
from conveyor.serving.forking import end_process
from conveyor.serving.metrics import MULTIPROC_ENV
from conveyor.types import ConveyorError

logger = logging.getLogger(__name__)

PORT_FILE_ENV = "CONVEYOR_SERVE_PORT_FILE"
PARENT_ENV = "CONVEYOR_SERVE_PARENT_PID"


class ServerProcess(Protocol):
    """The server's process: a ``subprocess.Popen`` or a fork of the zygote."""

    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


class ServerHandle:
    """A server running in a child process. ``url`` is its base address (no trailing
    slash); ``stop()`` ends it (also on leaving a ``with`` block); ``log()`` is what it
    wrote."""

    def __init__(
        self, process: ServerProcess, config: ServingConfig, port: int, log_path: str
    ) -> None:
        self.process = process
        self.config = config
        self.host = config.host
        self.port = port
        self.log_path = log_path
        self._final_log: str | None = None
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"

    @property
    def headers(self) -> dict[str, str]:
        """The headers a request needs (the bearer token, when the server has one)."""
        token = self.config.auth_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        """What the server wrote; still there after :meth:`stop` removed its folder."""
        if self._final_log is not None:
            return self._final_log
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Return once every model has a version loaded; raise ConveyorError (and stop the
        server) if the process dies, every version of a model failed, or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise ConveyorError(f"The model server exited while starting:\n{self._tail()}")
            if self._get("/v2/health/ready")[0] == 200:
                return
            failed = self._failed_models()
            if failed:
                self.stop()
                raise ConveyorError("The model server could not load: " + "; ".join(failed))
            time.sleep(0.05)
        self.stop()
        raise ConveyorError(
            f"The model server at {self.url} was not ready after {timeout_s} s:\n{self._tail()}"
        )

    def stop(self, timeout_s: float = 15.0) -> None:
        """End the server: SIGTERM (in-flight requests finish), then SIGKILL if need be."""
        if self.alive:
            end_process(self.process, timeout_s)
        if self._final_log is None:  # the server's temporary folder (port file, log) goes
            self._final_log = self.log()
            shutil.rmtree(os.path.dirname(self.log_path), ignore_errors=True)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive else f"exited {self.process.returncode}"
        return f"ServerHandle({self.url!r}, models={sorted(self.config.models)}, {state})"

    def _get(self, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, None
        except (OSError, ValueError):
            return 0, None

    def _failed_models(self) -> list[str]:
        status, body = self._get("/v2/health/ready")
        models = (body or {}).get("models") or {} if status == 503 else {}
        return [f"{name}: {m['error']}" for name, m in models.items() if m.get("error")]

    def _tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def start_server(
    models: Mapping[str, str] | None = None,
    *,
    model_name: str | None = None,
    model_base: str | None = None,
    config_file: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = 0,
    workers: int = 1,
    auth_token: str | None = None,
    max_batch_size: int = 64,
    batch_wait_ms: float = 2.0,
    max_body_bytes: int = 16 * 1024 * 1024,
    timeout_s: float = 30.0,
    poll_s: float = 1.0,
    log_level: str = "warning",
    wait: bool = True,
    ready_timeout_s: float = 120.0,
) -> ServerHandle:
    """Start a model server in a child process and return its handle.

    ``models`` (name → base directory), ``model_name`` with ``model_base``, or
    ``config_file`` say what to serve; the rest are :class:`ServingConfig`'s settings
    (``port=0``: a free port). With ``wait``, returns once every model is loaded.
    """
    chosen: dict[str, str] = dict(models or {})
    if config_file is not None:
        chosen.update(read_model_config(config_file))
    if model_name is not None or model_base is not None:
        if model_name is None or model_base is None:
            raise ConveyorError("start_server needs model_name and model_base together.")
        chosen[model_name] = model_base
    config = ServingConfig(
        models=chosen,
        host=host,
        port=port,
        workers=workers,
        auth_token=auth_token,
        max_batch_size=max_batch_size,
        batch_wait_ms=batch_wait_ms,
        max_body_bytes=max_body_bytes,
        timeout_s=timeout_s,
        poll_s=poll_s,
        log_level=log_level,
    )
    workdir = tempfile.mkdtemp(prefix="conveyor-serve-")
    port_file = os.path.join(workdir, "port")
    log_path = os.path.join(workdir, "server.log")
    env = {
        **os.environ,
        "CONVEYOR_SERVE_CONFIG": config.to_json(),
        PORT_FILE_ENV: port_file,
        PARENT_ENV: str(os.getpid()),
    }
    deadline = time.monotonic() + ready_timeout_s
    process = _start_process(env, log_path, ready_timeout_s)
    handle = ServerHandle(process, config, 0, log_path)
    while not os.path.exists(port_file):
        if not handle.alive or time.monotonic() > deadline:
            handle.stop()
            raise ConveyorError(f"The model server did not start:\n{handle._tail()}")
        time.sleep(0.02)
    handle = ServerHandle(process, config, int(Path(port_file).read_text()), log_path)
    if wait:
        handle.wait_ready(max(1.0, deadline - time.monotonic()))
    return handle


def _start_process(env: dict[str, str], log_path: str, timeout_s: float) -> ServerProcess:
    """``python -m conveyor.serving``, or a fork of the zygote a runner started for this run
    (the same fresh interpreter, with the server and framework imported already)."""
    from conveyor.serving.zygote import fork_server

    forked = fork_server(env, log_path, timeout_s)
    if forked is not None:
        return forked
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "conveyor.serving"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def run(config: ServingConfig, *, port_file: str | None = None) -> None:
    """Serve ``config`` in this process until SIGINT/SIGTERM (``conveyor serve``)."""
    import uvicorn

    from conveyor.serving.app import CONFIG_ENV, create_app

    sock = _bind(config.host, config.port)
    port = sock.getsockname()[1]
    config.port = port
    if port_file:
        temporary = f"{port_file}.tmp"
        Path(temporary).write_text(str(port))
        os.replace(temporary, port_file)
    host = f"[{config.host}]" if ":" in config.host else config.host
    print(
        f"conveyor serve: serving {', '.join(config.models)} on http://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    options: dict[str, Any] = {
        "log_level": config.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "server_header": False,
    }
    if config.workers == 1:
        server = uvicorn.Server(uvicorn.Config(create_app(config), **options))
        server.run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    os.environ[CONFIG_ENV] = config.to_json()  # read by each worker's create_app_from_env
    metrics_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="conveyor-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    uv_config = uvicorn.Config(
        "conveyor.serving.app:create_app_from_env",
        factory=True,
        workers=config.workers,
        **options,
    )
    try:
        Multiprocess(uv_config, sockets=[sock]).run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections made while the app starts wait instead of failing
    except OSError as exc:
        raise ConveyorError(f"Cannot listen on {host}:{port}: {exc}") from None
    sock.set_inheritable(True)
    return sock


def exit_with_parent() -> None:
    """In a server started by :func:`start_server`: end when the process that started it
    is gone, so a crashed test leaves no server behind."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != int(parent):
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="conveyor-parent-watch", daemon=True).start()
