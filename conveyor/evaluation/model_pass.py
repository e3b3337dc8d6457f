"""One model's pass over the evaluation data: predict each batch, encode its labels, add
the rows to every slice they belong to, and turn the sums into per-slice results.

Example::

    run = ModelPass(bundle, config, label_key="species", label_type=pa.string(),
                    name="the candidate model")
    sums = ModelSums()
    run.update(sums, batch, rows, slice_ids, weights)  # for every batch
    run.results(sums, slicer)                          # [SliceResult, ...], Overall first
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.evaluation.catalogue import BINARY_ONLY, METRICS, default_metrics, metric_names
from conveyor.evaluation.class_metrics import classification_result
from conveyor.evaluation.classification import ClassificationSlices
from conveyor.evaluation.config import EvalConfig, EvalConfigError
from conveyor.evaluation.labels import MAX_LISTED, LabelEncoder, regression_labels
from conveyor.evaluation.partial import ModelSums
from conveyor.evaluation.predictions import Predictor
from conveyor.evaluation.regression import RegressionSlices, regression_result
from conveyor.evaluation.slice_result import SliceResult
from conveyor.evaluation.slicing import Slicer
from conveyor.types import ConveyorError

__all__ = ["ModelPass", "model_task"]

RANKED = frozenset({"roc_auc", "pr_auc"})


def model_task(bundle: Any) -> str:
    """ "classification" or "regression", from the bundle's manifest."""
    if bundle.task in ("classification", "regression"):
        return bundle.task
    return "classification" if bundle.class_names else "regression"


class ModelPass:
    """Predictions and per-slice sums of one model (see the module docstring)."""

    def __init__(
        self,
        bundle: Any,
        config: EvalConfig,
        *,
        label_key: str,
        label_type: pa.DataType,
        name: str,
        predict_fn: Callable[..., Any] | None = None,
    ) -> None:
        self.bundle = bundle
        self.config = config
        self.label_key = label_key
        self.name = name
        self.task = model_task(bundle)
        names = config.class_names or bundle.class_names
        self.class_names = None if names is None else list(names)
        self.predictor = Predictor(
            bundle, self.task, self.class_names, predict_fn=predict_fn,
            prediction_key=config.prediction_key, name=name,
        )  # fmt: skip
        self.encoder = None
        if self.task == "classification":
            self.encoder = LabelEncoder.for_classes(self.class_names, label_type, label_key)
        self.metrics = self._metric_names(len(self.class_names) if self.class_names else None)

    def update(
        self, sums: ModelSums, batch: pa.RecordBatch, rows: np.ndarray, slice_ids: np.ndarray,
        weights: np.ndarray | None,
    ) -> None:  # fmt: skip
        """Predict ``batch`` and add row ``rows[k]`` to slice ``slice_ids[k]`` of ``sums``."""
        predicted = self.predictor(batch)
        column = batch.column(self.label_key)
        if self.encoder is None:
            labels = regression_labels(column, self.label_key)
        else:
            self._start_classes(predicted)
            labels = self.encoder.encode(column, sums.unseen)
        if sums.slices is None:
            sums.slices = self._new_slices()
        sums.slices.update(rows, slice_ids, labels, predicted, weights)

    def adopt(self, sums: ModelSums) -> None:
        """Take the class count from ``sums`` made elsewhere (a model without class names
        shows it with its first predictions)."""
        if self.encoder is not None and not self.encoder.num_classes and sums.slices is not None:
            self.encoder.widen(sums.slices.num_classes)  # type: ignore[union-attr]
            self.metrics = self._metric_names(self.encoder.num_classes)

    def results(self, sums: ModelSums, slicer: Slicer) -> list[SliceResult]:
        """Every slice's metrics, in the slicer's order."""
        self.adopt(sums)
        slices = sums.slices if sums.slices is not None else self._new_slices()
        specs = slicer.spec_of()
        ids = {slicer.key(i): i for i in range(len(specs))}
        out = []
        for key in slicer.ordered():
            state = slices.state(ids[key])
            if self.task == "regression":
                out.append(regression_result(state, key, specs[key], self.metrics))
            else:
                out.append(classification_result(
                    state, key, specs[key], self.metrics, self.display_names()))  # fmt: skip
        return out

    def display_names(self) -> list[str]:
        names = self.class_names or range(self.encoder.num_classes if self.encoder else 0)
        return [str(n) for n in names]

    @staticmethod
    def unseen_labels(sums: ModelSums) -> dict[str, int]:
        """The most frequent label values the model never saw, with their counts."""
        return dict(sums.unseen.most_common(MAX_LISTED))

    # ------------------------------------------------------------------ set up
    def _metric_names(self, num_classes: int | None) -> list[str]:
        config = self.config
        names = list(config.metrics or default_metrics(self.task, num_classes or 2))
        names += [n for n in config.thresholds if n not in names]
        wrong = [n for n in names if METRICS[n].task not in (self.task, "any")]
        if wrong:
            raise EvalConfigError(
                f"EvalConfig names {', '.join(map(repr, wrong))}, not metrics of "
                f"{self.task}, but {self.name} is a {self.task} model. Metrics for "
                f"{self.task}: {', '.join(metric_names(self.task))}."
            )
        self._check_binary(names, num_classes)
        return ["example_count", *(n for n in names if n != "example_count")]

    def _check_binary(self, names: list[str], num_classes: int | None) -> None:
        binary = [n for n in names if n in BINARY_ONLY]
        if binary and num_classes is not None and num_classes != 2:
            raise EvalConfigError(
                f"EvalConfig names {', '.join(map(repr, binary))}, metrics of the positive class "
                f"of a binary model, but {self.name} has {num_classes} classes. Name their "
                f"averages instead: {', '.join(f'{n}_macro' for n in binary)} (or _micro, "
                "_weighted)."
            )

    def _start_classes(self, predicted: Any) -> None:
        """A model without class names shows its class count with its first predictions."""
        if self.encoder is None or self.encoder.num_classes:
            return
        if predicted.proba is None:
            raise ConveyorError(
                f"{self.name} has no class_names and gives no class probabilities, so its "
                "classes are unknown. Give EvalConfig(class_names=[...])."
            )
        self.encoder.widen(predicted.proba.shape[1])
        self.metrics = self._metric_names(self.encoder.num_classes)

    def _new_slices(self) -> ClassificationSlices | RegressionSlices:
        if self.task == "regression":
            return RegressionSlices()
        return ClassificationSlices(
            self.encoder.num_classes, ranked=bool(RANKED & set(self.metrics)),
            bins=self.config.calibration_bins,
        )  # fmt: skip
