"""Where Conveyor keeps things by default. Read from the environment when asked, never at import."""

from __future__ import annotations

import os
from pathlib import Path


def conveyor_home() -> Path:
    """``$CONVEYOR_HOME``, or ``~/.conveyor``."""
    return Path(os.environ.get("CONVEYOR_HOME") or Path.home() / ".conveyor").expanduser()


def default_metadata_url() -> str:
    """``$CONVEYOR_METADATA_URL``, or an SQLite file in the Conveyor home."""
    return os.environ.get("CONVEYOR_METADATA_URL") or f"sqlite:///{conveyor_home() / 'metadata.db'}"


def default_pipeline_root(pipeline_name: str) -> Path:
    return conveyor_home() / "pipelines" / pipeline_name
