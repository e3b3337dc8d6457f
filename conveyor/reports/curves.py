"""Line charts on the unit square (ROC, precision-recall, calibration) as plain geometry,
drawn as inline SVG by the templates. Series are told apart by ``series`` (0, 1, …), which
the stylesheet colours, as in :mod:`conveyor.reports.charts`.

Example::

    chart = curve_chart([("Gentoo", [[0, 0], [0.1, 0.9], [1, 1]])], diagonal=True)
    chart.lines[0].points   # '0,200 20,20 200,0'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CurveChart", "Line", "curve_chart"]

SIZE = 200.0


@dataclass(frozen=True)
class Line:
    label: str
    series: int
    points: str  # SVG polyline points
    dots: list[tuple[float, float, str]]  # (x, y, title) markers, for sparse curves


@dataclass(frozen=True)
class CurveChart:
    lines: list[Line]
    diagonal: str = ""  # "rising" (y = x), "falling" or "" for none
    x_label: str = ""
    y_label: str = ""
    size: float = SIZE


def _xy(x: float, y: float) -> tuple[float, float]:
    clamp = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    return round(clamp[0] * SIZE, 2), round((1.0 - clamp[1]) * SIZE, 2)


def curve_chart(
    series: Sequence[tuple[str, Sequence[Sequence[float]]]],
    *,
    diagonal: str = "",
    x_label: str = "",
    y_label: str = "",
    dots: bool = False,
) -> CurveChart:
    """One line per ``(label, [[x, y], ...])`` with x and y in [0, 1]; ``dots`` marks every
    point (with its coordinates as a tooltip)."""
    lines = []
    for index, (label, points) in enumerate(series):
        if not points:
            continue
        coords = [_xy(x, y) for x, y in points]
        marks = []
        if dots:
            marks = [(cx, cy, f"{label}: ({x:.3g}, {y:.3g})")
                     for (cx, cy), (x, y) in zip(coords, points, strict=True)]  # fmt: skip
        lines.append(Line(label, index, " ".join(f"{x},{y}" for x, y in coords), marks))
    return CurveChart(lines, diagonal, x_label, y_label)
