"""The ModelEvaluation and ModelBlessing reports: the verdict and every threshold check, the
metrics of every slice (beside the baseline's), and per slice its confusion matrix, ROC, PR
and calibration charts.

Reads the files the Evaluator writes (see :mod:`conveyor.evaluation.results`). An undefined
metric shows a dash whose tooltip says why; with a baseline each figure shows its change,
marked better or worse by the metric's direction.

Example::

    from conveyor.reports import evaluation

    page = evaluation.html(evaluation_artifact)
    rich.print(evaluation.summary(evaluation_artifact))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.evaluation import METRICS, load_evaluation
from conveyor.io import filesystems as fsx
from conveyor.reports import charts, curves, page
from conveyor.reports.formatting import compact, number
from conveyor.types import ConveyorError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from conveyor.evaluation import EvalResult
    from conveyor.types import Artifact

__all__ = ["blessing_html", "blessing_summary", "html", "summary"]

SUMMARY_SLICES = 12
SUMMARY_METRICS = 7


@dataclass(frozen=True)
class Cell:
    value: float | None
    text: str
    why: str = ""  # why the value is undefined
    change: str = ""  # against the baseline
    verdict: str = ""  # "better", "worse" or ""


@dataclass(frozen=True)
class SliceRow:
    key: str
    anchor: str
    cells: list[Cell]


def _cell(name: str, value: float | None, why: str, base: float | None, has_base: bool) -> Cell:
    if value is None:
        return Cell(None, number(None), why or "undefined")
    if not has_base or base is None or value == base:
        return Cell(value, number(value))
    delta = value - base
    better = METRICS[name].better if name in METRICS else None
    verdict = ""
    if delta and better:
        verdict = "better" if (delta > 0) == (better == "higher") else "worse"
    return Cell(value, number(value), change=f"{delta:+.4g}", verdict=verdict)


def _rows(result: EvalResult, names: list[str]) -> list[SliceRow]:
    rows = []
    for index, key in enumerate(result.slices()):
        found = result.result(key)
        base = result.baseline_metrics(key) or {}
        cells = [_cell(n, found.metrics.get(n), found.undefined.get(n, ""), base.get(n),
                       result.has_baseline) for n in names]  # fmt: skip
        rows.append(SliceRow(key, f"slice-{index}", cells))
    return rows


def _scalar_names(result: EvalResult) -> list[str]:
    return list(result.result().metrics)


# ---------------------------------------------------------------------- per-slice plots
def _confusion(plot: dict[str, Any] | None) -> dict[str, Any] | None:
    if not plot:
        return None
    matrix = plot["matrix"]
    biggest = max((v for row in matrix for v in row), default=0) or 1
    rows = [(label, [(number(v), round(0.08 + 0.6 * v / biggest, 3) if v else 0) for v in row])
            for label, row in zip(plot["true"], matrix, strict=True)]  # fmt: skip
    return {"predicted": plot["predicted"], "rows": rows}


def _charts(plots: dict[str, Any]) -> list[tuple[str, curves.CurveChart]]:
    out = []
    if plots.get("roc"):
        out.append(("ROC", curves.curve_chart(list(plots["roc"].items()), diagonal="rising",
                                              x_label="false positive rate",
                                              y_label="true positive rate")))  # fmt: skip
    if plots.get("pr"):
        out.append(("Precision-recall", curves.curve_chart(
            list(plots["pr"].items()), x_label="recall", y_label="precision")))  # fmt: skip
    calibration = plots.get("calibration")
    if calibration and calibration["bins"]:
        points = [[b["predicted"], b["observed"]] for b in calibration["bins"]]
        out.append((f"Calibration ({calibration['kind']})", curves.curve_chart(
            [("observed", points)], diagonal="rising", dots=True,
            x_label="mean predicted", y_label="observed")))  # fmt: skip
    return out


def _weights(plots: dict[str, Any]) -> charts.Chart | None:
    calibration = plots.get("calibration")
    if not calibration or not calibration["bins"]:
        return None
    buckets = [(b["low"], b["high"], b["weight"]) for b in calibration["bins"]]
    return charts.histogram_chart([("predictions", buckets)])


def _details(result: EvalResult) -> list[dict[str, Any]]:
    details = []
    for index, key in enumerate(result.slices()):
        plots = result.plots(key)
        detail = {
            "key": key, "anchor": f"slice-{index}", "notes": result.notes(key),
            "undefined": result.undefined(key), "confusion": _confusion(
                plots.get("confusion_matrix")),
            "charts": _charts(plots), "weights": _weights(plots),
        }  # fmt: skip
        if any(detail[part] for part in ("notes", "undefined", "confusion", "charts", "weights")):
            details.append(detail)  # a slice with nothing more than its row gets no section
    return details


# ---------------------------------------------------------------------- pages
def html(artifact: Artifact) -> str:
    """The evaluation report as a self-contained HTML page."""
    result = load_evaluation(artifact)
    names = _scalar_names(result)
    return page.render(
        "evaluation.html",
        artifact,
        title=f"Evaluation #{artifact.id}" if artifact.id is not None else "Evaluation",
        result=result,
        info=result.summary,
        names=names,
        rows=_rows(result, names),
        details=_details(result),
        checks=result.blessing.checks,
    )


def blessing_html(artifact: Artifact) -> str:
    """The blessing's page: the verdict and every threshold check."""
    blessing = _blessing(artifact)
    return page.render(
        "blessing.html",
        artifact,
        title=f"Blessing #{artifact.id}" if artifact.id is not None else "Blessing",
        blessing=blessing,
        checks=blessing["checks"],
    )


def _blessing(artifact: Artifact) -> dict[str, Any]:
    path = fsx.join(artifact.uri, "blessing.json")
    if not fsx.exists(path):
        raise ConveyorError(
            f"{artifact.uri} holds no blessing.json, so it is not a blessing the Evaluator wrote."
        )
    with fsx.open_file(path, "r", encoding="utf-8") as handle:
        return json.load(handle)


# ---------------------------------------------------------------------- terminal
def summary(artifact: Artifact) -> RenderableType:
    """The verdict, then the main metrics of the first slices (with the baseline's change)."""
    from rich.console import Group
    from rich.table import Table

    result = load_evaluation(artifact)
    names = _scalar_names(result)[:SUMMARY_METRICS]
    table = Table(title_justify="left")
    table.add_column("slice", no_wrap=True)
    for name in names:
        table.add_column(name, justify="right")
    for row in _rows(result, names)[:SUMMARY_SLICES]:
        table.add_row(row.key, *(_terminal_cell(c) for c in row.cells))
    parts: list[Any] = [*_verdict(result.blessed, result.reasons, result.skipped), table]
    hidden = len(result.slices()) - SUMMARY_SLICES
    if hidden > 0:
        parts.append(f"  … {hidden} more slices (conveyor show --html for all of them)")
    parts += _undefined_lines(result)
    return Group(*parts)


def blessing_summary(artifact: Artifact) -> RenderableType:
    from rich.console import Group

    data = _blessing(artifact)
    return Group(*_verdict(data["blessed"], data["reasons"], data["skipped"]))


def _verdict(blessed: bool, reasons: list[str], skipped: list[str]) -> list[Any]:
    from rich.text import Text

    lines: list[Any] = [Text("Blessed", style="bold green") if blessed
                        else Text("Not blessed", style="bold red")]  # fmt: skip
    lines += [Text(f"  ✗ {reason}", style="red") for reason in reasons]
    lines += [Text(f"  - {note}", style="yellow") for note in skipped]
    return lines


def _terminal_cell(cell: Cell) -> Any:
    from rich.text import Text

    if cell.value is None:
        return Text(cell.text, style="dim")
    text = Text(compact(cell.value))
    if cell.change:
        style = {"better": "green", "worse": "red"}.get(cell.verdict, "dim")
        text.append(f" ({cell.change})", style=style)
    return text


def _undefined_lines(result: EvalResult) -> list[Any]:
    from rich.text import Text

    reasons = result.undefined()
    return [Text(f"  {name} undefined on Overall: {why}", style="dim")
            for name, why in reasons.items()]  # fmt: skip
