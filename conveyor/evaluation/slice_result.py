"""One model's figures on one slice: metric values (None when undefined, with the reason),
notes on what was left out, and plot data.

Example::

    result = SliceResult("species=Adelie", spec=1)
    result.set("roc_auc", None, "only one class (Adelie) among the labels: ROC AUC needs two")
    result.metrics["roc_auc"], result.undefined["roc_auc"]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SliceResult"]


@dataclass
class SliceResult:
    slice: str
    spec: int = 0  # index of the SlicingSpec that made it (0: Overall)
    metrics: dict[str, float | None] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)  # metric → why it is None
    notes: list[str] = field(default_factory=list)
    plots: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str, value: float | None, reason: str = "") -> None:
        """Record a metric; None (or NaN) needs the reason it is undefined."""
        if value is not None and not math.isfinite(value):
            value = None
            reason = reason or "the value is not finite"
        self.metrics[name] = None if value is None else float(value)
        if value is None:
            self.undefined[name] = reason or "undefined"

    def to_dict(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "spec": self.spec,
            "metrics": self.metrics,
            "undefined": self.undefined,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], plots: dict[str, Any] | None = None) -> SliceResult:
        return cls(
            slice=data["slice"],
            spec=data.get("spec", 0),
            metrics=dict(data.get("metrics", {})),
            undefined=dict(data.get("undefined", {})),
            notes=list(data.get("notes", [])),
            plots=dict(plots or {}),
        )
