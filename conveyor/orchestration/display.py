"""Progress for people: a live table on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from conveyor.orchestration.results import NodeResult

_STYLE = {"COMPLETE": "green", "CACHED": "cyan", "FAILED": "bold red", "SKIPPED": "yellow",
          "RUNNING": "blue", "PENDING": "dim", "ABANDONED": "red"}  # fmt: skip


class Display:
    """Silent; the base of the others."""

    def start(self, pipeline: str, run_id: str, node_ids: list[str]) -> None: ...
    def running(self, node_id: str) -> None: ...
    def finished(self, result: NodeResult) -> None: ...
    def tick(self) -> None: ...
    def close(self) -> None: ...


class PlainDisplay(Display):
    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout

    def _say(self, text: str) -> None:
        print(f"[conveyor {time.strftime('%H:%M:%S')}] {text}", file=self.stream, flush=True)

    def start(self, pipeline: str, run_id: str, node_ids: list[str]) -> None:
        self._say(f"run {run_id} of pipeline {pipeline}: {len(node_ids)} node(s)")

    def running(self, node_id: str) -> None:
        self._say(f"{node_id}: RUNNING")

    def finished(self, result: NodeResult) -> None:
        took = f" ({result.duration:.2f} s)" if result.duration is not None else ""
        extra = f": {result.error}" if result.error else ""
        self._say(f"{result.node_id}: {result.state}{took}{extra}")


class RichDisplay(Display):
    """A table redrawn from the runner's loop (no refresh thread, so forking stays safe)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self.rows: dict[str, list[Any]] = {}
        self.title = ""

    def start(self, pipeline: str, run_id: str, node_ids: list[str]) -> None:
        self.title = f"{pipeline} · run {run_id}"
        self.rows = {n: ["PENDING", None, None] for n in node_ids}
        self.live.start()
        self.tick()

    def running(self, node_id: str) -> None:
        self.rows[node_id] = ["RUNNING", time.time(), None]
        self.tick()

    def finished(self, result: NodeResult) -> None:
        self.rows[result.node_id] = [result.state, result.started_at, result.duration]
        self.tick()

    def tick(self) -> None:
        from rich.table import Table

        table = Table(title=self.title, title_justify="left")
        table.add_column("node")
        table.add_column("state")
        table.add_column("seconds", justify="right")
        for node_id, (state, started, duration) in self.rows.items():
            if duration is None and started is not None:
                duration = time.time() - started
            seconds = f"{duration:.2f}" if duration is not None else ""
            table.add_row(node_id, f"[{_STYLE.get(state, '')}]{state}", seconds)
        self.live.update(table, refresh=True)

    def close(self) -> None:
        self.live.stop()


def make_display(mode: str) -> Display:
    """``auto`` (rich on a terminal, plain otherwise), ``rich``, ``plain`` or ``none``."""
    if mode == "auto":
        mode = "rich" if sys.stdout.isatty() else "plain"
    return {"rich": RichDisplay, "plain": PlainDisplay}.get(mode, Display)()
