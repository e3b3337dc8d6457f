"""A slice's classification metrics and plot data, from its accumulated :class:`ClassState`.

Every metric is a number or None with the reason (one class only: no ROC AUC; NaN
predictions: nothing that depends on predictions). The conventions are
``sklearn.metrics``'s; see :mod:`conveyor.evaluation.classification`.

Example::

    result = classification_result(state, "Overall", 0, ["accuracy", "roc_auc"], names)
    result.metrics   # {'example_count': 334.0, 'accuracy': 0.98, 'roc_auc': 0.999}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conveyor.evaluation.classification import ClassState
from conveyor.evaluation.curves import BinaryCurve, binary_curve, thin
from conveyor.evaluation.slice_result import SliceResult

__all__ = ["UNSEEN", "classification_result"]

UNSEEN = "(unseen label)"
COUNTS = ("example_count", "weighted_example_count")
PROBABILITY = ("log_loss", "brier_score", "calibration")
RANKING = ("roc_auc", "pr_auc")
PLOTS = ("confusion_matrix", "calibration")


def classification_result(
    state: ClassState, key: str, spec: int, names: list[str], class_names: list[str]
) -> SliceResult:
    """The metrics ``names`` of one slice (``class_names``: display names by class id)."""
    result = SliceResult(key, spec)
    result.set("example_count", state.num_rows)
    if "weighted_example_count" in names:
        result.set("weighted_example_count", state.weight)
    wanted = [n for n in names if n not in COUNTS]
    _notes(result, state)
    if state.nan_rows:
        why = f"{state.nan_rows} of {state.num_rows} predictions are NaN"
        for name in wanted:
            if name not in PLOTS:
                result.set(name, None, why)
        return result
    _hard(result, state, wanted, class_names)
    _probabilities(result, state, wanted)
    _ranking(result, state, wanted, class_names)
    return result


def _notes(result: SliceResult, state: ClassState) -> None:
    if state.unseen_rows:
        result.notes.append(
            f"{state.unseen_rows} rows have a label the model never saw: they count as wrong "
            "in accuracy, precision, recall and F1 and are left out of probability metrics."
        )
    if state.nan_rows:
        result.notes.append(f"{state.nan_rows} of {state.num_rows} predictions are NaN.")


# ---------------------------------------------------------------------- from the confusion matrix
def _per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """tp, support (true), predicted, precision, recall, f1 per class (unseen labels last)."""
    square = np.hstack([confusion, np.zeros((len(confusion), 1))])
    tp, true, predicted = np.diag(square), square.sum(axis=1), square.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(true > 0, tp / true, 0.0)
        f1 = np.where(true + predicted > 0, 2 * tp / (true + predicted), 0.0)
    present = (true > 0) | (predicted > 0)
    return {"tp": tp, "true": true, "predicted": predicted, "precision": precision,
            "recall": recall, "f1": f1, "present": present}  # fmt: skip


def _hard(result: SliceResult, state: ClassState, wanted: list[str], names: list[str]) -> None:
    total = state.confusion.sum()
    if total <= 0:
        for name in wanted:
            if name not in PROBABILITY + RANKING:
                result.set(name, None, "no rows with a positive weight in this slice")
        return
    c = _per_class(state.confusion)
    present, support = c["present"], c["true"]
    values: dict[str, float] = {
        "accuracy": c["tp"].sum() / total,
        "balanced_accuracy": c["recall"][support > 0].mean(),
    }
    for stem in ("precision", "recall", "f1"):
        values[f"{stem}_macro"] = c[stem][present].mean()
        values[f"{stem}_weighted"] = (c[stem] * support)[present].sum() / support[present].sum()
        if state.num_classes == 2:
            values[stem] = c[stem][1]
    tp, true, predicted = c["tp"][present].sum(), support[present].sum(), c["predicted"][present]
    values["precision_micro"] = tp / predicted.sum()
    values["recall_micro"] = tp / true
    values["f1_micro"] = 2 * tp / (true + predicted.sum())
    for name in wanted:
        if name in values:
            result.set(name, values[name])
    if "confusion_matrix" in wanted:
        labels = list(names) + ([UNSEEN] if state.unseen_rows else [])
        rows = state.confusion if state.unseen_rows else state.confusion[:-1]
        result.plots["confusion_matrix"] = {
            "true": labels,
            "predicted": list(names),
            "matrix": rows.round(6).tolist(),
        }


# ---------------------------------------------------------------------- from probabilities
def _probabilities(result: SliceResult, state: ClassState, wanted: list[str]) -> None:
    asked = [n for n in wanted if n in PROBABILITY + RANKING]
    if asked and not state.has_proba:
        why = "the model gives no class probabilities"
    elif asked and state.known_weight <= 0:
        why = "no rows with a label the model knows"
    else:
        why = ""
    if why:
        for name in asked:
            if name not in PLOTS:
                result.set(name, None, why)
        return
    if "log_loss" in wanted:
        result.set("log_loss", state.log_loss_sum / state.known_weight)
    if "brier_score" in wanted:
        halve = 0.5 if state.num_classes == 2 else 1.0
        result.set("brier_score", halve * state.brier_sum / state.known_weight)
    if "calibration" in wanted:
        result.plots["calibration"] = _calibration(state)


def _calibration(state: ClassState) -> dict[str, Any]:
    B = state.bins
    bins = []
    for index, (weight, predicted, hits) in enumerate(state.calibration.tolist()):
        if weight > 0:
            bins.append({"low": index / B, "high": (index + 1) / B, "weight": round(weight, 6),
                         "predicted": predicted / weight, "observed": hits / weight})  # fmt: skip
    kind = "positive class" if state.num_classes == 2 else "confidence (top class)"
    return {"kind": kind, "bins": bins}


# ---------------------------------------------------------------------- rankings
def _ranking(result: SliceResult, state: ClassState, wanted: list[str], names: list[str]) -> None:
    asked = [n for n in wanted if n in RANKING]
    if not asked or not state.has_proba or state.known_weight <= 0:
        return
    labels, scores, weights = state.scores()
    if state.num_classes == 2:
        curves = {names[1]: binary_curve(labels == 1, scores[:, -1], weights)}
    else:
        curves = {name: binary_curve(labels == c, scores[:, c], weights)
                  for c, name in enumerate(names)}  # fmt: skip
    roc = {name: curve for name, curve in curves.items() if curve.defined}
    pr = {name: curve for name, curve in curves.items() if len(curve.tps) and curve.tps[-1] > 0}
    present = [names[c] for c in np.unique(labels).tolist()]
    if "roc_auc" in asked:
        only = f" ({present[0]})" if len(present) == 1 else ""
        why = f"only one class{only} among this slice's labels: ROC AUC needs two"
        _area(result, "roc_auc", roc, lambda c: c.roc_auc(), why)
        result.plots["roc"] = {name: thin(*c.roc()) for name, c in roc.items()}
    if "pr_auc" in asked:
        why = f"no label of the positive class ({names[1]}) in this slice: PR AUC needs some"
        _area(result, "pr_auc", pr, lambda c: c.average_precision(), why)
        result.plots["pr"] = {name: thin(*c.precision_recall()) for name, c in pr.items()}
    if state.num_classes > 2 and 0 < len(roc) < state.num_classes:
        result.notes.append(
            f"ROC AUC and PR AUC average over the classes among this slice's labels: "
            f"{', '.join(roc)}."
        )


def _area(
    result: SliceResult, name: str, curves: dict[str, BinaryCurve], area: Any, why: str
) -> None:
    """The mean area of ``curves`` (one per class, or the positive class's), or None."""
    if curves:
        result.set(name, float(np.mean([area(c) for c in curves.values()])))
    else:
        result.set(name, None, why)
