"""What runs inside an execution's process: the user's function, its log and its result.

The result travels back as a small JSON file written atomically, so a process that dies
half-way leaves no result at all rather than a partial one.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from conveyor.orchestration.staging import Staging
from conveyor.types import Artifact


def run_component(
    fn: Callable[..., Any],
    kwargs: Mapping[str, Any],
    outputs: Mapping[str, Artifact],
) -> dict[str, Any]:
    """Call the component and collect what it produced: output properties and the
    (optional) dict it returned. Raises if either is not JSON-able. Remote artifacts are
    staged in local folders around the call (see :mod:`conveyor.orchestration.staging`)."""
    staging = Staging(kwargs, outputs)
    try:
        result = _call(fn, staging.kwargs, outputs)
        staging.publish()
    except BaseException:
        staging.discard()
        raise
    return result


def _call(fn: Callable[..., Any], kwargs: Mapping[str, Any], outputs: Mapping[str, Artifact]):
    returned = fn(**kwargs)
    if returned is not None and not isinstance(returned, dict):
        raise TypeError(
            f"A component function returns None or a dict of JSON values; got "
            f"{type(returned).__name__}. Record results in an output's .properties instead."
        )
    properties = {key: dict(artifact.properties) for key, artifact in outputs.items()}
    for key, props in properties.items():
        for name, value in props.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"Output '{key}' property '{name}' is not JSON-serialisable "
                    f"({type(value).__name__}): {exc}. Convert it to plain numbers, strings, "
                    "lists or dicts (e.g. with .tolist() or float())."
                ) from None
    try:
        json.dumps(returned)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"The dict the component returned is not JSON-serialisable: {exc}"
        ) from None
    return {"ok": True, "outputs": properties, "returned": returned}


# Signals the runner holds back while it launches an execution, so an interrupt never lands
# between recording an execution as RUNNING and knowing its process.
DEFERRED_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back inside the block; they are delivered when it ends."""
    if (
        not hasattr(signal, "pthread_sigmask")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def child_main(
    fn: Callable[..., Any],
    kwargs: Mapping[str, Any],
    outputs: Mapping[str, Artifact],
    log_path: str,
    result_path: str,
) -> None:
    """Entry point of an execution's process (started by fork)."""
    _die_with_parent()
    if hasattr(signal, "pthread_sigmask"):  # the runner forks with these deferred
        signal.pthread_sigmask(signal.SIG_UNBLOCK, DEFERRED_SIGNALS)
    _redirect_output(log_path)
    code = 0
    try:
        result = run_component(fn, kwargs, outputs)
    except BaseException as exc:
        code = 1
        if isinstance(exc, SystemExit):
            error = f"The component called sys.exit({exc.code!r})."
        elif isinstance(exc, KeyboardInterrupt):
            error = "The component was interrupted (KeyboardInterrupt)."
        else:
            error = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        result = {"ok": False, "error": error, "traceback": tb}
    _write_atomically(result_path, json.dumps(result))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _redirect_output(log_path: str) -> None:
    """Send file descriptors 1 and 2 (so C libraries too) and Python logging to the log."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this process when the runner dies."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:
        os._exit(1)
