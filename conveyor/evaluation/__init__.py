"""Model evaluation for any framework: metrics per slice over Arrow batches, thresholds, a
baseline comparison and the blessing; ``load_evaluation`` reads an Evaluator's results.

Importing this package loads neither NumPy nor Arrow; the configuration classes are plain
dataclasses.

Example::

    from conveyor.evaluation import EvalConfig, MetricThreshold, SlicingSpec, load_evaluation

    config = EvalConfig(
        label_key="species",
        slicing_specs=[SlicingSpec(), SlicingSpec(feature_keys=["island"])],
        thresholds={"accuracy": MetricThreshold(lower=0.6)},
    )
    result = load_evaluation(evaluator.outputs["evaluation"])
    result.metrics("island=Biscoe")["accuracy"], result.blessed
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor.evaluation.catalogue import METRICS, default_metrics, metric_names
from conveyor.evaluation.config import (
    ChangeThreshold,
    EvalConfig,
    EvalConfigError,
    MetricThreshold,
    SlicingSpec,
)

if TYPE_CHECKING:
    from conveyor.evaluation.engine import Evaluation, evaluate
    from conveyor.evaluation.results import EvalResult, load_evaluation, write_evaluation
    from conveyor.evaluation.slice_result import SliceResult
    from conveyor.evaluation.thresholds import Blessing, bless

_LAZY = {
    "Evaluation": "conveyor.evaluation.engine",
    "evaluate": "conveyor.evaluation.engine",
    "EvalResult": "conveyor.evaluation.results",
    "load_evaluation": "conveyor.evaluation.results",
    "write_evaluation": "conveyor.evaluation.results",
    "SliceResult": "conveyor.evaluation.slice_result",
    "Blessing": "conveyor.evaluation.thresholds",
    "bless": "conveyor.evaluation.thresholds",
}

__all__ = [
    "METRICS",
    "Blessing",
    "ChangeThreshold",
    "EvalConfig",
    "EvalConfigError",
    "EvalResult",
    "Evaluation",
    "MetricThreshold",
    "SliceResult",
    "SlicingSpec",
    "bless",
    "default_metrics",
    "evaluate",
    "load_evaluation",
    "metric_names",
    "write_evaluation",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
