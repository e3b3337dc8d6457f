"""The metrics the Evaluator knows, by name: which task each applies to, which way is better,
and whether it is a number (a threshold can hold it) or plot data.

Example::

    METRICS["f1_macro"].better         # "higher"
    metric_names("regression")         # ['example_count', 'weighted_example_count', 'mse', ...]
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BINARY_ONLY", "METRICS", "MetricInfo", "default_metrics", "metric_names"]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    task: str  # "classification", "regression" or "any"
    better: str | None  # "higher", "lower", or None when neither is (a count, a mean)
    scalar: bool = True  # False for plot data (confusion matrix, calibration)
    description: str = ""


def _averaged(stem: str, what: str) -> list[MetricInfo]:
    return [
        MetricInfo(stem, "classification", "higher", description=f"{what} of class id 1 (binary)"),
        *(
            MetricInfo(
                f"{stem}_{average}",
                "classification",
                "higher",
                description=f"{what}, {average} average over classes",
            )
            for average in ("macro", "micro", "weighted")
        ),
    ]


_ALL = [
    MetricInfo("example_count", "any", None, description="rows evaluated (labelled)"),
    MetricInfo("weighted_example_count", "any", None, description="sum of example weights"),
    MetricInfo("accuracy", "classification", "higher"),
    MetricInfo("balanced_accuracy", "classification", "higher"),
    *_averaged("precision", "precision"),
    *_averaged("recall", "recall"),
    *_averaged("f1", "F1"),
    MetricInfo("roc_auc", "classification", "higher", description="ROC AUC (one-vs-rest macro)"),
    MetricInfo("pr_auc", "classification", "higher", description="average precision (PR AUC)"),
    MetricInfo("log_loss", "classification", "lower"),
    MetricInfo("brier_score", "classification", "lower"),
    MetricInfo("confusion_matrix", "classification", None, scalar=False),
    MetricInfo("calibration", "classification", None, scalar=False),
    MetricInfo("mse", "regression", "lower", description="mean squared error"),
    MetricInfo("rmse", "regression", "lower", description="root mean squared error"),
    MetricInfo("mae", "regression", "lower", description="mean absolute error"),
    MetricInfo("mape", "regression", "lower", description="mean absolute percentage error"),
    MetricInfo("r2", "regression", "higher", description="coefficient of determination"),
    MetricInfo("mean_label", "regression", None),
    MetricInfo("mean_prediction", "regression", None),
]

METRICS: dict[str, MetricInfo] = {info.name: info for info in _ALL}

#: Metrics of the positive class (class id 1): defined for two classes only.
BINARY_ONLY = frozenset({"precision", "recall", "f1"})

_DEFAULTS = {
    "binary": ["example_count", "accuracy", "balanced_accuracy", "precision", "recall", "f1",
               "roc_auc", "pr_auc", "log_loss", "brier_score", "confusion_matrix",
               "calibration"],
    "multiclass": ["example_count", "accuracy", "balanced_accuracy", "precision_macro",
                   "recall_macro", "f1_macro", "roc_auc", "pr_auc", "log_loss", "brier_score",
                   "confusion_matrix", "calibration"],
    "regression": ["example_count", "mse", "rmse", "mae", "mape", "r2", "mean_label",
                   "mean_prediction"],
}  # fmt: skip


def metric_names(task: str | None = None) -> list[str]:
    """Every known metric name, or those for ``task`` ("classification"/"regression")."""
    return [n for n, info in METRICS.items() if task is None or info.task in (task, "any")]


def default_metrics(task: str, num_classes: int | None) -> list[str]:
    """The metrics computed when the config names none."""
    if task == "regression":
        return list(_DEFAULTS["regression"])
    return list(_DEFAULTS["binary" if num_classes == 2 else "multiclass"])
