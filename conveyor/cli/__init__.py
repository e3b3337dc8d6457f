"""The ``conveyor`` command line: ``conveyor run``, ``runs``, ``executions``, ``artifacts``,
``lineage``, ``show`` and ``gc``. Every reading command takes ``--json``."""

from __future__ import annotations

from typing import Any

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    # Imported on use, so `python -m conveyor.cli.main` does not find it already loaded.
    if name == "main":
        from conveyor.cli.main import main

        return main
    raise AttributeError(f"module 'conveyor.cli' has no attribute {name!r}")
