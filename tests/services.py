"""Throwaway service processes for tests: a real PostgreSQL server on loopback.

Usage::

    with start_postgres() as pg:
        psycopg.connect(pg.url)

Each server lives in its own fresh temp directory (data dir, unix socket dir and
log) and listens on its own free TCP port on 127.0.0.1 only, so several test
sessions (including leftovers from killed ones) can run side by side.

Debian does not put the server binaries on PATH, so they are looked up under
``/usr/lib/postgresql/<version>/bin`` (highest version first). ``initdb`` and
``pg_ctl`` refuse to run as root; when running as root the server runs as the
``postgres`` system user instead.

This module deliberately does not import ``conveyor`` nor any third-party package.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = [
    "PostgresNotAvailable",
    "PostgresServer",
    "find_postgres_bin_dir",
    "start_postgres",
]

INSTALL_HINT = "PostgreSQL server not installed: apt-get install -y postgresql"
PG_USER = "conveyor"
PG_DATABASE = "conveyor"
HOST = "127.0.0.1"
_TMP_PREFIX = "conveyor-pg-"
_OWNER_FILE = "owner"
_REQUIRED = ("initdb", "pg_ctl", "postgres")
_START_ATTEMPTS = 5
_START_TIMEOUT_S = 60


class PostgresNotAvailable(RuntimeError):
    """The PostgreSQL server could not be found or started."""


def _version_key(bin_dir: str) -> tuple[int, ...]:
    version = Path(bin_dir).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_postgres_bin_dir() -> Path:
    """Directory holding initdb/pg_ctl/postgres, highest installed version first.

    ``$CONVEYOR_PG_BIN`` overrides the search.
    """
    override = os.environ.get("CONVEYOR_PG_BIN")
    candidates = [override] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    # Last resort: a PATH install (not Debian). /usr/local/bin/pg_ctl and friends
    # may be unrelated wrappers, which is why the Debian location wins above.
    initdb_on_path = shutil.which("initdb")
    if initdb_on_path:
        candidates.append(str(Path(initdb_on_path).resolve().parent))
    for candidate in candidates:
        if all(os.access(Path(candidate, name), os.X_OK) for name in _REQUIRED):
            return Path(candidate)
    raise PostgresNotAvailable(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    # Stray PGHOST/PGPORT/PGDATA/... from the caller's shell must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _world_traversable(path: Path) -> bool:
    return all(part.stat().st_mode & 0o001 for part in [path, *path.parents])


def _service_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresNotAvailable(
        "running as root but there is no 'postgres' system user to run the server as; "
        + INSTALL_HINT
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PostgresServer:
    """A running throwaway PostgreSQL server. Use :func:`start_postgres` to make one."""

    def __init__(self, bin_dir: Path, base_dir: Path, run_as: str | None) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "sock"
        self.log_file = base_dir / "postgres.log"
        self.run_as = run_as  # system user to run server commands as (when we are root)
        self.host = HOST
        self.port: int | None = None
        self.user = PG_USER
        self.database = PG_DATABASE
        self._started = False
        self._stopped = False

    # -- public API ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """URL of another database on this server (e.g. ``postgres`` for admin work)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server (immediately) and delete its directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._started:
                self._server_cmd(
                    ["pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w"],
                    check=False,
                    timeout=60,
                )
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PostgresServer(url={self.url!r}, base_dir={str(self.base_dir)!r})"

    # -- internals ----------------------------------------------------------------

    def _server_cmd(
        self, argv: list[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a server-side binary (initdb, pg_ctl), as ``run_as`` when we are root."""
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.run_as is not None:
            runuser = shutil.which("runuser") or next(
                (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK)),
                None,
            )
            if runuser:
                cmd = [runuser, "-u", self.run_as, "--", *cmd]
            else:
                cmd = ["su", self.run_as, "-s", "/bin/sh", "-c", shlex.join(cmd)]
        return self._run(cmd, check=check, timeout=timeout)

    def _client_cmd(
        self, argv: list[str], *, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a client binary (pg_isready, createdb) as ourselves."""
        return self._run([str(self.bin_dir / argv[0]), *argv[1:]], check=check, timeout=timeout)

    def _run(
        self, cmd: list[str], *, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.base_dir,  # the service user may not be able to read our cwd
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresNotAvailable(f"{shlex.join(cmd)} failed: {exc}") from exc
        if check and proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip()
            raise PostgresNotAvailable(
                f"{shlex.join(cmd)} exited with {proc.returncode}:\n{output}"
            )
        return proc

    def _start(self) -> None:
        self._server_cmd(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "-U",
                self.user,
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        failures = []
        for _ in range(_START_ATTEMPTS):
            self.port = _free_port()
            server_opts = [
                "-h", self.host,
                "-p", str(self.port),
                "-k", str(self.socket_dir),
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "shared_buffers=16MB",
                "-c", "max_connections=100",
            ]  # fmt: skip
            proc = self._server_cmd(
                [
                    "pg_ctl", "start",
                    "-D", str(self.data_dir),
                    "-l", str(self.log_file),
                    "-w", "-t", str(_START_TIMEOUT_S),
                    "-o", shlex.join(server_opts),
                ],
                check=False,
                timeout=_START_TIMEOUT_S + 30,
            )  # fmt: skip
            if proc.returncode == 0:
                self._started = True
                break
            log = self.log_tail()
            failures.append(f"port {self.port}: {(proc.stdout + proc.stderr).strip()}\n{log}")
            # Someone grabbed the port between probing and binding: try another one.
            if "already in use" not in log and "could not bind" not in log:
                break
        if not self._started:
            raise PostgresNotAvailable("pg_ctl start failed:\n" + "\n".join(failures))

        self._wait_ready()
        self._client_cmd(
            ["createdb", "-h", self.host, "-p", str(self.port), "-U", self.user, self.database]
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            proc = self._client_cmd(
                [
                    "pg_isready", "-q", "-t", "2",
                    "-h", self.host, "-p", str(self.port),
                    "-U", self.user, "-d", "postgres",
                ],
                check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PostgresNotAvailable(
                    f"server on {self.host}:{self.port} did not accept connections in "
                    f"{_START_TIMEOUT_S}s; log:\n{self.log_tail()}"
                )
            time.sleep(0.1)


def _make_base_dir(run_as: pwd.struct_passwd | None) -> Path:
    parent = None
    if run_as is not None and not _world_traversable(Path(tempfile.gettempdir())):
        parent = "/tmp"  # the service user must be able to reach its data dir
    base_dir = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=parent))
    (base_dir / _OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    (base_dir / "sock").mkdir(mode=0o700)
    if run_as is not None:
        for path in (base_dir, base_dir / "sock"):
            os.chown(path, run_as.pw_uid, run_as.pw_gid)
    return base_dir


def _reap_stale(bin_dir: Path, run_as: pwd.struct_passwd | None) -> None:
    """Stop servers left behind by test sessions that died without tearing down.

    Only directories whose owning process is known to be gone (same host, pid not
    alive) are touched, so concurrently running sessions are left alone.
    """
    hostname = socket.gethostname()
    parents = {Path(tempfile.gettempdir()), Path("/tmp")}
    for parent in parents:
        for base_dir in parent.glob(_TMP_PREFIX + "*"):
            try:
                host, pid = (base_dir / _OWNER_FILE).read_text().split()
                if host != hostname or _pid_alive(int(pid)):
                    continue
                if base_dir.stat().st_uid != os.getuid() and os.getuid() != 0:
                    continue
            except (OSError, ValueError):
                continue
            stale = PostgresServer(bin_dir, base_dir, run_as.pw_name if run_as else None)
            stale._started = (base_dir / "data" / "postmaster.pid").exists()
            with contextlib.suppress(Exception):
                stale.stop()


def start_postgres() -> PostgresServer:
    """Start a fresh PostgreSQL server on 127.0.0.1 with database ``conveyor``.

    Returns a running :class:`PostgresServer` (also a context manager). Raises
    :class:`PostgresNotAvailable` with the reason when that is not possible.
    """
    bin_dir = find_postgres_bin_dir()
    run_as = _service_user() if os.geteuid() == 0 else None
    _reap_stale(bin_dir, run_as)
    base_dir = _make_base_dir(run_as)
    server = PostgresServer(bin_dir, base_dir, run_as.pw_name if run_as else None)
    try:
        server._start()
    except BaseException:
        server.stop()
        raise
    atexit.register(server.stop)
    return server
