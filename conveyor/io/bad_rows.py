"""What to do with input rows that cannot be read: fail, skip, or quarantine them.

Readers report each bad row with its file, line and reason. With ``on_bad_rows="error"``
(the default) the first one stops the run; ``"skip"`` counts them and goes on;
``"quarantine"`` also writes them to a JSON-lines side file for later inspection.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import IO, Any

from conveyor.types import ConveyorError

ON_BAD_ROWS = ("error", "skip", "quarantine")


class BadInputError(ConveyorError):
    """Input data that cannot be read: names the file, where in it, and why."""


@dataclass(frozen=True)
class BadRow:
    file: str
    line: int | None
    reason: str
    text: str | None = None

    def describe(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


class BadRows:
    """Collects bad rows under one policy; see the module docstring."""

    def __init__(self, mode: str = "error", quarantine_file: IO[str] | None = None) -> None:
        if mode not in ON_BAD_ROWS:
            raise ConveyorError(
                f"The 'on_bad_rows' parameter must be one of {', '.join(ON_BAD_ROWS)}. "
                f"Got {mode!r} instead."
            )
        if mode == "quarantine" and quarantine_file is None:
            raise ConveyorError("on_bad_rows='quarantine' needs a file to write bad rows to.")
        self.mode = mode
        self.quarantine_file = quarantine_file
        self.count = 0
        self.reasons: Counter[str] = Counter()
        self.samples: list[BadRow] = []

    def add(self, row: BadRow) -> None:
        """Record a bad row; in ``error`` mode, raise :class:`BadInputError` for it."""
        if self.mode == "error":
            raise BadInputError(
                f"Bad input row in {row.describe()}. Fix the data, give a schema that fits it, "
                "or pass on_bad_rows='skip' or 'quarantine' to set such rows aside."
            )
        self.count += 1
        self.reasons[row.reason.split(":")[0]] += 1
        if len(self.samples) < 20:
            self.samples.append(row)
        if self.quarantine_file is not None:
            record = {"file": row.file, "line": row.line, "reason": row.reason, "text": row.text}
            self.quarantine_file.write(json.dumps(record) + "\n")

    def summary(self) -> dict[str, Any]:
        """What goes into the Examples artifact's properties."""
        return {"bad_rows": self.count, "bad_row_reasons": dict(self.reasons)}
