"""Where the boxes and arrows of a graph go: a layered left-to-right layout for inline SVG.

A node sits one column right of the furthest node that points at it; within a column, nodes
keep the order they were given. Good enough for pipelines and lineage, which are small and
mostly a chain with branches.

Example::

    drawing = layout([Box("a", "CsvExampleGen"), Box("b", "StatisticsGen")], [("a", "b")])
    drawing.width, drawing.boxes[1].x, drawing.arrows[0].path
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Arrow", "Box", "Drawing", "layout"]

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 165, 48, 38, 16, 10


@dataclass
class Box:
    """One node: ``key`` identifies it in edges; ``label``/``detail`` are its two lines;
    ``state`` becomes its CSS class; ``href`` makes it a link."""

    key: str
    label: str
    detail: str = ""
    state: str = ""
    href: str | None = None
    kind: str = "node"
    x: float = 0
    y: float = 0
    width: float = BOX_W
    height: float = BOX_H


@dataclass
class Arrow:
    source: str
    target: str
    label: str = ""
    path: str = ""


@dataclass
class Drawing:
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    width: float = 0
    height: float = 0


def layout(
    boxes: Sequence[Box],
    edges: Sequence[tuple[str, str] | tuple[str, str, str]],
    *,
    direction: str = "right",
) -> Drawing:
    """Place ``boxes`` in layers by their longest path from a source, layers left to right
    (``direction="right"``) or top to bottom (``"down"``); route ``edges`` between them."""
    if direction not in ("right", "down"):
        raise ValueError(f"direction must be 'right' or 'down'. Got {direction!r} instead.")
    keys = {b.key for b in boxes}
    arrows = [Arrow(*e) for e in edges if e[0] in keys and e[1] in keys and e[0] != e[1]]
    layer = _columns([b.key for b in boxes], [(a.source, a.target) for a in arrows])
    slots: dict[int, int] = {}
    for box in boxes:
        depth = layer[box.key]
        slot = slots.get(depth, 0)
        slots[depth] = slot + 1
        col, row = (depth, slot) if direction == "right" else (slot, depth)
        box.x = MARGIN + col * (BOX_W + GAP_X)
        box.y = MARGIN + row * (BOX_H + GAP_Y)
    by_key = {b.key: b for b in boxes}
    for arrow in arrows:
        arrow.path = _curve(by_key[arrow.source], by_key[arrow.target])
    bows = 130 if direction == "down" else 0  # room for edges that bow out to the right
    width = max((b.x + b.width for b in boxes), default=0) + MARGIN + bows
    height = max((b.y + b.height for b in boxes), default=0) + MARGIN
    return Drawing(list(boxes), arrows, width, max(height, BOX_H))


def _columns(keys: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path depth of each key; a cycle (never in a DAG) is cut where it is met."""
    parents: dict[str, list[str]] = {k: [] for k in keys}
    for source, target in edges:
        parents[target].append(source)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(key: str) -> int:
        if key in depth:
            return depth[key]
        if key in visiting:
            return 0
        visiting.add(key)
        depth[key] = 1 + max((visit(p) for p in parents[key]), default=-1)
        visiting.discard(key)
        return depth[key]

    for key in keys:
        visit(key)
    return depth


def _curve(source: Box, target: Box) -> str:
    if target.x >= source.x + source.width:  # a later column: side to side
        x1, y1 = source.x + source.width, source.y + source.height / 2
        x2, y2 = target.x, target.y + target.height / 2
        mid = (x1 + x2) / 2
        return f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
    if abs(target.x - source.x) < 1 and target.y > source.y + source.height + GAP_Y + 1:
        # same column, rows apart: bow out to the right rather than run over the boxes between
        x, y1, y2 = (
            source.x + source.width,
            source.y + source.height / 2,
            target.y + target.height / 2,
        )
        bow = x + min(120.0, 24 + (y2 - y1) / 6)
        return f"M{x:.0f},{y1:.0f} C{bow:.0f},{y1:.0f} {bow:.0f},{y2:.0f} {x:.0f},{y2:.0f}"
    x1, y1 = source.x + source.width / 2, source.y + source.height  # bottom to top
    x2, y2 = target.x + target.width / 2, target.y
    mid = (y1 + y2) / 2
    return f"M{x1:.0f},{y1:.0f} C{x1:.0f},{mid:.0f} {x2:.0f},{mid:.0f} {x2:.0f},{y2:.0f}"
