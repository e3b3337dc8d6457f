"""An evaluation's files, and reading them back.

Layout of a ``ModelEvaluation`` (written by the Evaluator)::

    {uri}/metrics.json     everything: per-slice metrics of the candidate (and the baseline),
                           why each undefined metric is undefined, notes, rows left out,
                           labels the model never saw, the config and the blessing
    {uri}/metrics.parquet  one row per (model, slice): model, slice, spec, a column per metric
    {uri}/plots.json       per model and slice: confusion matrix, ROC and PR points, calibration
    {uri}/diff.json        per slice and metric: candidate, baseline, change, relative change

Example::

    from conveyor.evaluation import load_evaluation

    result = load_evaluation(evaluator.outputs["evaluation"])   # or its uri
    result.slices()                    # ['Overall', 'species=Adelie', ...]
    result.metrics()["accuracy"]       # overall
    result.metrics("species=Gentoo")   # one slice
    result.blessed, result.reasons
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from conveyor.evaluation.config import OVERALL, EvalConfig
from conveyor.evaluation.engine import Evaluation
from conveyor.evaluation.slice_result import SliceResult
from conveyor.evaluation.thresholds import Blessing
from conveyor.io import filesystems as fsx
from conveyor.types import ConveyorError

__all__ = ["EvalResult", "diff", "load_evaluation", "write_evaluation"]

FORMAT = 1
METRICS_FILE, PARQUET_FILE, PLOTS_FILE, DIFF_FILE = (
    "metrics.json", "metrics.parquet", "plots.json", "diff.json",
)  # fmt: skip


def write_evaluation(uri: str, evaluation: Evaluation, blessing: Blessing) -> None:
    """Write an evaluation's files into the folder ``uri``."""
    summary = {
        "format": FORMAT,
        "task": evaluation.task,
        "label_key": evaluation.label_key,
        "class_names": evaluation.class_names,
        "splits": evaluation.splits,
        "num_examples": evaluation.num_examples,
        "excluded": evaluation.excluded,
        "unseen_labels": evaluation.unseen_labels,
        "metrics": evaluation.metrics,
        "model_uri": evaluation.model_uri,
        "baseline_uri": evaluation.baseline_uri,
        "config": evaluation.config.to_dict(),
        "slices": [r.to_dict() for r in evaluation.candidate],
        "baseline": None if evaluation.baseline is None else [
            r.to_dict() for r in evaluation.baseline],
        "blessing": blessing.to_dict(),
    }  # fmt: skip
    _write_json(fsx.join(uri, METRICS_FILE), summary)
    plots = {"candidate": {r.slice: r.plots for r in evaluation.candidate}}
    if evaluation.baseline is not None:
        plots["baseline"] = {r.slice: r.plots for r in evaluation.baseline}
    _write_json(fsx.join(uri, PLOTS_FILE), plots)
    _write_json(fsx.join(uri, DIFF_FILE), diff(evaluation.candidate, evaluation.baseline))
    _write_parquet(fsx.join(uri, PARQUET_FILE), evaluation)


def diff(
    candidate: list[SliceResult], baseline: list[SliceResult] | None
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per slice and metric: the candidate's value, the baseline's, and the change."""
    if baseline is None:
        return {}
    theirs = {r.slice: r.metrics for r in baseline}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for result in candidate:
        other = theirs.get(result.slice, {})
        rows = {}
        for name, value in result.metrics.items():
            base = other.get(name)
            change = None if value is None or base is None else value - base
            relative = None if change is None or not base else change / abs(base)
            rows[name] = {"candidate": value, "baseline": base, "change": change,
                          "relative_change": relative}  # fmt: skip
        out[result.slice] = rows
    return out


def _write_json(uri: str, data: Any) -> None:
    with fsx.open_file(uri, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, separators=(",", ":"), allow_nan=False))


def _write_parquet(uri: str, evaluation: Evaluation) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    models = [("candidate", evaluation.candidate)]
    if evaluation.baseline is not None:
        models.append(("baseline", evaluation.baseline))
    rows = [(name, r) for name, results in models for r in results]
    names = list(dict.fromkeys(m for _, r in rows for m in r.metrics))
    columns = {
        "model": pa.array([name for name, _ in rows], pa.string()),
        "slice": pa.array([r.slice for _, r in rows], pa.string()),
        "spec": pa.array([r.spec for _, r in rows], pa.int32()),
    }
    for metric in names:
        columns[metric] = pa.array([r.metrics.get(metric) for _, r in rows], pa.float64())
    with fsx.open_file(uri, "wb") as handle:
        pq.write_table(pa.table(columns), handle)


# ---------------------------------------------------------------------- reading back
def load_evaluation(uri_or_artifact: Any) -> EvalResult:
    """The results of an Evaluator run: a ``ModelEvaluation`` artifact or its uri."""
    uri = str(getattr(uri_or_artifact, "uri", uri_or_artifact))
    path = fsx.join(uri, METRICS_FILE)
    if not fsx.exists(path):
        raise ConveyorError(
            f"{uri} holds no {METRICS_FILE}, so it is not an evaluation written by the "
            "Evaluator. Pass a ModelEvaluation artifact (evaluator.outputs['evaluation']) or "
            "its uri."
        )
    with fsx.open_file(path, "r", encoding="utf-8") as handle:
        summary = json.load(handle)
    plots_path = fsx.join(uri, PLOTS_FILE)
    plots: dict[str, Any] = {}
    if fsx.exists(plots_path):
        with fsx.open_file(plots_path, "r", encoding="utf-8") as handle:
            plots = json.load(handle)
    return EvalResult(uri, summary, plots)


class EvalResult:
    """An evaluation read back (see :func:`load_evaluation`)."""

    def __init__(self, uri: str, summary: dict[str, Any], plots: dict[str, Any]) -> None:
        self.uri = uri
        self.summary = summary
        candidate_plots = plots.get("candidate", {})
        self._candidate = {
            r["slice"]: SliceResult.from_dict(r, candidate_plots.get(r["slice"]))
            for r in summary["slices"]
        }
        baseline_plots = plots.get("baseline", {})
        self._baseline = None if summary.get("baseline") is None else {
            r["slice"]: SliceResult.from_dict(r, baseline_plots.get(r["slice"]))
            for r in summary["baseline"]
        }  # fmt: skip
        self.blessing = Blessing.from_dict(summary["blessing"])

    def __repr__(self) -> str:
        verdict = "blessed" if self.blessed else "not blessed"
        return f"EvalResult({self.uri!r}, {len(self._candidate)} slices, {verdict})"

    # ------------------------------------------------------------------ what people ask
    @property
    def blessed(self) -> bool:
        return self.blessing.blessed

    @property
    def reasons(self) -> list[str]:
        """Every failed threshold, explained (empty when blessed)."""
        return list(self.blessing.reasons)

    @property
    def skipped(self) -> list[str]:
        """Thresholds not checked (change thresholds with no baseline)."""
        return list(self.blessing.skipped)

    @property
    def has_baseline(self) -> bool:
        return self._baseline is not None

    @property
    def config(self) -> EvalConfig:
        return EvalConfig.from_dict(self.summary["config"])

    def slices(self) -> list[str]:
        """The slice keys, "Overall" first."""
        return list(self._candidate)

    def metrics(self, slice: str | None = None) -> dict[str, float | None]:
        """Metric name → value (None when undefined) on ``slice`` (Overall when None)."""
        return dict(self.result(slice).metrics)

    def undefined(self, slice: str | None = None) -> dict[str, str]:
        """Metric name → why it is undefined on ``slice``."""
        return dict(self.result(slice).undefined)

    def notes(self, slice: str | None = None) -> list[str]:
        return list(self.result(slice).notes)

    def plots(self, slice: str | None = None) -> dict[str, Any]:
        """Plot data on ``slice``: confusion_matrix, roc, pr, calibration (those computed)."""
        return dict(self.result(slice).plots)

    def baseline_metrics(self, slice: str | None = None) -> dict[str, float | None] | None:
        """The baseline model's metrics on ``slice``, or None without a baseline."""
        if self._baseline is None:
            return None
        found = self._baseline.get(slice or OVERALL)
        return None if found is None else dict(found.metrics)

    def diff(self, slice: str | None = None) -> dict[str, dict[str, float | None]]:
        """Metric → candidate, baseline, change, relative_change on ``slice`` (empty
        without a baseline)."""
        result = self.result(slice)
        baseline = None if self._baseline is None else list(self._baseline.values())
        return diff([result], baseline).get(result.slice, {})

    def result(self, slice: str | None = None) -> SliceResult:
        """The candidate's :class:`SliceResult` on ``slice`` (Overall when None)."""
        key = OVERALL if slice is None else slice
        found = self._candidate.get(key)
        if found is None:
            close = difflib.get_close_matches(str(key), list(self._candidate), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConveyorError(
                f"The evaluation at {self.uri} has no slice {key!r}.{hint} Slices: "
                f"{', '.join(self._candidate)}."
            )
        return found

    def baseline_result(self, slice: str | None = None) -> SliceResult | None:
        return None if self._baseline is None else self._baseline.get(slice or OVERALL)
