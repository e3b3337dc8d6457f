"""A model's predictions for a batch of raw examples, in the form the metrics take.

By default the bundle predicts (raw features → its transform → the model): class
probabilities for a classifier that gives them, else its predicted classes; numbers for a
regressor. A ``predict_fn(model, batch)`` (the loaded :class:`~conveyor.frameworks.Bundle`
and a ``pyarrow.RecordBatch`` of the examples, every column) replaces that for models the
bundle cannot drive; it returns an array (``[N, C]`` probabilities, ``[N]`` classes or
numbers) or a dict of them, of which ``EvalConfig.prediction_key`` picks one.

Example::

    predictor = Predictor(bundle, "classification", ["Adelie", "Chinstrap", "Gentoo"])
    predictor(batch).proba        # float [N, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.types import ConveyorError

__all__ = ["Predictions", "Predictor"]

#: Entries of a predict_fn's dict tried in turn when no prediction_key is given.
DEFAULT_KEYS = ("probabilities", "predictions", "scores", "outputs")
INVALID = -2  # a class id for a prediction that is not a class (NaN)


@dataclass(frozen=True)
class Predictions:
    """One batch's predictions: ``proba`` [N, C] and ``class_ids`` [N] for a classifier (ids
    are ``INVALID`` where the prediction is NaN), ``values`` [N] for a regressor."""

    proba: np.ndarray | None = None
    class_ids: np.ndarray | None = None
    values: np.ndarray | None = None


class Predictor:
    """Predicts batches with one bundle (see the module docstring)."""

    def __init__(
        self,
        bundle: Any,
        task: str,
        class_names: list[Any] | None,
        *,
        predict_fn: Callable[[Any, pa.RecordBatch], Any] | None = None,
        prediction_key: str | None = None,
        name: str = "the model",
    ) -> None:
        self.bundle = bundle
        self.task = task
        self.class_names = class_names
        self.predict_fn = predict_fn
        self.prediction_key = prediction_key
        self.name = name
        self._has_proba: bool | None = None

    def __call__(self, batch: pa.RecordBatch) -> Predictions:
        raw = self._raw(batch)
        if len(raw) != batch.num_rows:
            raise ConveyorError(
                f"{self._source()} returned {len(raw)} predictions for a batch of "
                f"{batch.num_rows} rows; it must return one per row."
            )
        if self.task == "regression":
            return Predictions(values=_numbers(raw, self._source()))
        if raw.ndim == 2 and raw.shape[1] > 1:
            return self._from_proba(raw.astype(np.result_type(raw.dtype, np.float32)))
        return Predictions(class_ids=self._class_ids(raw.reshape(-1)))

    # ------------------------------------------------------------------ the raw outputs
    def _raw(self, batch: pa.RecordBatch) -> np.ndarray:
        if self.predict_fn is not None:
            return self._pick(self.predict_fn(self.bundle, batch))
        X = self.bundle.to_matrix(batch)
        if self.task == "classification" and self._has_proba is not False:
            try:
                proba = self.bundle.predict_proba_transformed(X)
                self._has_proba = True
                return np.asarray(proba)
            except ConveyorError:
                if self._has_proba:
                    raise
                self._has_proba = False  # the model gives classes only
        return np.asarray(self.bundle.predict_transformed(X))

    def _pick(self, output: Any) -> np.ndarray:
        if isinstance(output, Mapping):
            key = self.prediction_key or next((k for k in DEFAULT_KEYS if k in output), None)
            if key not in output:
                raise ConveyorError(
                    f"{self._source()} returned a dict with {', '.join(map(repr, output))}; "
                    f"EvalConfig's prediction_key ({self.prediction_key!r}) must name one of "
                    "them."
                )
            output = output[key]
        array = np.asarray(output)
        if array.ndim not in (1, 2):
            raise ConveyorError(
                f"{self._source()} returned an array of shape {list(array.shape)}; return "
                "[N] classes or numbers, or [N, C] class probabilities."
            )
        return array

    # ------------------------------------------------------------------ classifiers
    def _from_proba(self, proba: np.ndarray) -> Predictions:
        names = self.class_names
        if names is not None and proba.shape[1] != len(names):
            raise ConveyorError(
                f"{self._source()} returned {proba.shape[1]} class probabilities per row, but "
                f"the classes are {len(names)}: {', '.join(map(str, names))}."
            )
        finite = np.isfinite(proba).all(axis=1)
        ids = np.where(finite, np.argmax(np.where(finite[:, None], proba, 0), axis=1), INVALID)
        return Predictions(proba=proba, class_ids=ids.astype(np.int64))

    def _class_ids(self, predicted: np.ndarray) -> np.ndarray:
        names = self.class_names
        if predicted.dtype.kind == "f":
            ids = np.full(len(predicted), INVALID, dtype=np.int64)
            finite = np.isfinite(predicted)
            ids[finite] = self._class_ids(predicted[finite].astype(np.int64))
            return ids
        if predicted.dtype.kind in "iub" and not _are_ints(names):
            ids = predicted.astype(np.int64)
        else:
            index = {str(n): i for i, n in enumerate(names or ())}
            ids = np.array([index.get(str(v), -1) for v in predicted.tolist()], dtype=np.int64)
        limit = len(names) if names is not None else np.iinfo(np.int64).max
        bad = (ids < 0) | (ids >= limit)
        if bad.any():
            value = predicted[np.flatnonzero(bad)[0]]
            raise ConveyorError(
                f"{self._source()} predicted {value!r}, which is not one of the classes "
                f"({', '.join(map(str, names or ()))})."
            )
        return ids

    def _source(self) -> str:
        if self.predict_fn is not None:
            name = getattr(self.predict_fn, "__name__", "predict_fn")
            return f"predict_fn {name} (for {self.name})"
        return f"{self.name} ({getattr(self.bundle, 'uri', '')})"


def _are_ints(names: list[Any] | None) -> bool:
    return names is not None and all(isinstance(n, int) for n in names)


def _numbers(raw: np.ndarray, source: str) -> np.ndarray:
    if raw.ndim == 2 and raw.shape[1] != 1:
        raise ConveyorError(
            f"{source} returned {raw.shape[1]} numbers per row; a regressor predicts one."
        )
    if raw.dtype.kind not in "iufb":
        raise ConveyorError(f"{source} returned {raw.dtype} values; a regressor predicts numbers.")
    return raw.reshape(-1).astype(np.float64)
