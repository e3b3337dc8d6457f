"""One loaded model version as the server runs it: raw features checked against the
bundle's input signature, a batch of requests run through the transform and the model at
once, and each request's outputs handed back apart.

Outputs of a classifier: ``prediction`` (the label, decoded with the bundle's class_names),
``class_id`` (its index in class_names) and ``probabilities`` (``[C]`` per row, in class_names
order; absent when the model gives none). A regressor's: ``prediction`` alone.

Example::

    servable = Servable("penguin", 1, load_model("/models/penguin/1"))
    [outputs] = servable.predict([[{"culmen_length_mm": 39.1, ...}]])
    outputs.prediction        # array(['Adelie'], dtype='<U9')
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.frameworks.bundle import Bundle
from conveyor.frameworks.inputs import feature_matrix, raw_batch
from conveyor.serving.errors import BadRequest, RequestError
from conveyor.transform import dtypes
from conveyor.transform.fitted import GRAPH_FILE
from conveyor.types import ConveyorError

logger = logging.getLogger(__name__)

#: A request's raw features: a list of rows (dicts) or a dict of columns (lists).
Payload = list[dict[str, Any]] | dict[str, list[Any]]


@dataclass
class Outputs:
    """One request's answer: arrays with a row per input row."""

    prediction: np.ndarray
    class_id: np.ndarray | None = None
    probabilities: np.ndarray | None = None

    def named(self) -> dict[str, np.ndarray]:
        """The outputs present, by name, in the order clients see them."""
        found = {"prediction": self.prediction}
        if self.class_id is not None:
            found["class_id"] = self.class_id
        if self.probabilities is not None:
            found["probabilities"] = self.probabilities
        return found


class Servable:
    """A bundle ready to answer requests; built (and warmed up) once per loaded version."""

    def __init__(self, model_name: str, version: int, bundle: Bundle) -> None:
        self.model_name = model_name
        self.version = version
        self.bundle = bundle
        self.fields: list[pa.Field] = list(bundle.inputs.fields)
        self.field_by_name = {f.name: f for f in self.fields}
        self.text_fields = [f for f in self.fields if dtypes.is_text(dtypes.element(f.type))]
        self.class_names = bundle.class_names
        self.classifier = bundle.task == "classification"
        self._class_index = {v: i for i, v in enumerate(self.class_names or ())}
        # Raw columns the bundle knows but does not need (its label, inputs only the label
        # uses) are accepted and ignored; any other name is a caller's mistake.
        self.ignored = _known_raw_names(bundle) - set(self.field_by_name)
        self.has_probabilities = self._warm_up()
        self.one_call = self.has_probabilities and self._one_call_agrees()
        from conveyor.serving.compiled import CompiledPath  # it builds on this module

        self.compiled = CompiledPath.build(self)

    # ------------------------------------------------------------------ checks
    def check_names(self, names: Iterable[str], where: str) -> None:
        """A 400 naming the first of ``names`` that is not a raw feature of this model."""
        for name in names:
            if name not in self.field_by_name and name not in self.ignored:
                raise BadRequest(
                    f"{where}: unknown feature {name!r}. Model {self.model_name!r} version "
                    f"{self.version} reads {', '.join(map(repr, self.field_by_name))}."
                )

    def class_id(self, label: Any) -> int:
        """The index of ``label`` in class_names."""
        return self._class_index[label]

    def output_names(self) -> list[str]:
        if not self.classifier:
            return ["prediction"]
        return ["prediction", "class_id"] + (["probabilities"] if self.has_probabilities else [])

    # ------------------------------------------------------------------ predicting
    def predict(self, payloads: Sequence[Payload]) -> list[Outputs | RequestError]:
        """Each payload's outputs, or the error for that payload alone; the rows of all
        payloads go through the transform and the model together."""
        results: list[Outputs | RequestError | None] = [None] * len(payloads)
        batches, owners = [], []
        for index, payload in enumerate(payloads):
            try:
                batches.append(_raw_batch(payload, self.fields))
                owners.append(index)
            except RequestError as exc:
                results[index] = exc
        if batches:
            for index, answer in zip(owners, self._predict_batches(batches), strict=True):
                results[index] = answer
        return results  # type: ignore[return-value]

    def _predict_batches(self, batches: list[pa.RecordBatch]) -> list[Outputs | RequestError]:
        try:
            return self._predict_together(batches)
        except Exception as exc:
            if len(batches) == 1:
                return [self._failure(exc)]
        # One request's rows may upset the transform or the model: answer each on its own.
        answers: list[Outputs | RequestError] = []
        for batch in batches:
            try:
                answers.extend(self._predict_together([batch]))
            except Exception as exc:
                answers.append(self._failure(exc))
        return answers

    def _predict_together(self, batches: list[pa.RecordBatch]) -> list[Outputs | RequestError]:
        joined = batches[0] if len(batches) == 1 else pa.concat_batches(batches)
        X = self._matrix(joined)
        answers: list[Outputs | RequestError | None] = [None] * len(batches)
        keep, start = [], 0
        for index, batch in enumerate(batches):
            size = batch.num_rows
            problem = self._overflow(X[start : start + size])
            if problem:
                answers[index] = BadRequest(problem)
            else:
                keep.append((index, start, size))
            start += size
        if keep:
            rows = np.concatenate([np.arange(s, s + n) for _, s, n in keep])
            outputs = self._run(X if len(rows) == len(X) else X[rows])
            offset = 0
            for index, _, n in keep:
                answers[index] = _slice(outputs, offset, offset + n)
                offset += n
        return answers  # type: ignore[return-value]

    def _matrix(self, batch: pa.RecordBatch) -> np.ndarray:
        transform = self.bundle.inputs.transform
        if transform is not None:
            batch = transform.transform_batch(batch)
        return feature_matrix(batch, self.bundle.features)

    def _overflow(self, X: np.ndarray) -> str | None:
        """Why rows whose values became infinite in the transform cannot be predicted."""
        bad = np.isinf(X)
        if not bad.any():
            return None
        row, column = (int(i[0]) for i in np.nonzero(bad))
        return (
            f"Row {row}: the transformed feature {self._column_name(column)!r} is infinite; "
            "a raw value is far outside what the model was trained on."
        )

    def _column_name(self, column: int) -> str:
        transform = self.bundle.inputs.transform
        offset = 0
        for name in self.bundle.features:
            kind = None if transform is None else transform.transformed_schema.field(name).type
            width = kind.list_size if kind is not None and pa.types.is_fixed_size_list(kind) else 1
            if column < offset + width:
                return name
            offset += width
        return str(column)

    def _run(self, X: np.ndarray) -> Outputs:
        bundle = self.bundle
        if len(X) == 0:
            empty = bundle.predict_transformed(X)
            if not self.classifier:
                return Outputs(empty)
            proba = np.zeros((0, len(self.class_names or ())), dtype=np.float32)
            return Outputs(
                empty,
                np.zeros(0, dtype=np.int64),
                proba if self.has_probabilities else None,
            )
        proba = None
        if self.one_call:  # labels and probabilities from one model call
            both = bundle.predict_with_proba_transformed(X, finite=bool(np.isfinite(X).all()))
            prediction, proba = both  # type: ignore[misc]
        else:
            prediction = bundle.predict_transformed(X)
        if not self.classifier:
            if prediction.ndim == 2 and prediction.shape[1] == 1:
                prediction = prediction[:, 0]
            return Outputs(np.ascontiguousarray(prediction))
        if self._class_index:
            class_id = np.fromiter(
                (self._class_index[v] for v in prediction.tolist()), np.int64, len(prediction)
            )
        else:
            class_id = prediction.astype(np.int64)
        if self.has_probabilities:
            if proba is None:
                proba = bundle.adapter.predict_proba(bundle.model, X)
            proba = np.ascontiguousarray(proba, dtype=np.float32)
        return Outputs(prediction, class_id, proba)

    def _failure(self, exc: Exception) -> RequestError:
        logger.error(
            "Model %r version %d failed on a request: %s: %s",
            self.model_name,
            self.version,
            type(exc).__name__,
            exc,
        )
        return RequestError(
            500,
            f"Model {self.model_name!r} version {self.version} failed: {type(exc).__name__}: {exc}",
        )

    def _warm_up(self) -> bool:
        """Run the model once (first calls compile or allocate), and learn whether it gives
        probabilities. A model that cannot predict a row of zeros is not served."""
        X = np.zeros((1, self.bundle.inputs.width), dtype=np.float32)
        self.bundle.predict_transformed(X)
        if not self.classifier:
            return False
        proba = self.bundle.adapter.predict_proba(self.bundle.model, X)
        if proba is None:
            return False
        proba = np.asarray(proba)
        width = len(self.class_names) if self.class_names else proba.shape[-1]
        return proba.ndim == 2 and proba.shape == (1, width)

    def _one_call_agrees(self) -> bool:
        """Whether the model gives labels and probabilities in one call (see
        :meth:`Bundle.predict_with_proba_transformed`) and, on a fixed sample of rows from
        near zero to far out, exactly the answers of its two calls."""
        scales = np.repeat([0.01, 1.0, 10.0, 1000.0], 64)[:, None]
        sample = np.random.default_rng(0).standard_normal((len(scales), self.bundle.inputs.width))
        X = np.vstack([np.zeros((1, sample.shape[1])), sample * scales]).astype(np.float32)
        try:
            both = self.bundle.predict_with_proba_transformed(X, finite=True)
            if both is None:
                return False
            labels = self.bundle.predict_transformed(X)
            proba = self.bundle.adapter.predict_proba(self.bundle.model, X)
        except Exception:  # the two calls stay the way to answer
            return False
        return bool(np.array_equal(both[0], labels) and np.array_equal(np.asarray(both[1]), proba))

    def describe(self) -> dict[str, Any]:
        """Inputs and outputs, for the metadata endpoints."""
        outputs = []
        for name in self.output_names():
            if name == "probabilities":
                kind, shape = "float32", [-1, len(self.class_names or ()) or -1]
            elif name == "class_id":
                kind, shape = "int64", [-1]
            else:
                kind, shape = self._prediction_type(), [-1]
            outputs.append({"name": name, "type": kind, "shape": shape})
        return {
            "inputs": [
                {
                    "name": f.name,
                    "type": dtypes.to_json(f.type),
                    "required": not f.nullable,
                    "shape": [-1, -1] if dtypes.is_list(f.type) else [-1],
                }
                for f in self.fields
            ],
            "outputs": outputs,
        }

    def _prediction_type(self) -> str:
        if self.class_names:
            return {str: "string", bool: "bool", int: "int64"}.get(
                type(self.class_names[0]), "float64"
            )
        return "int64" if self.classifier else "float32"


def _raw_batch(payload: Payload, fields: list[pa.Field]) -> pa.RecordBatch:
    try:
        return raw_batch(payload, fields)
    except ConveyorError as exc:
        raise BadRequest(str(exc)) from None
    except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
        raise BadRequest(f"{_culprit(payload, fields)} cannot be read: {exc}") from None


def _culprit(payload: Payload, fields: list[pa.Field]) -> str:
    """Which feature Arrow could not convert (looked for only once a conversion failed)."""
    for field in fields:
        try:
            raw_batch(payload, [field])
        except Exception:
            return f"Feature {field.name!r}"
    return "The features"


def _slice(outputs: Outputs, start: int, stop: int) -> Outputs:
    return Outputs(
        outputs.prediction[start:stop],
        None if outputs.class_id is None else outputs.class_id[start:stop],
        None if outputs.probabilities is None else outputs.probabilities[start:stop],
    )


def _known_raw_names(bundle: Bundle) -> set[str]:
    names = {f.name for f in bundle.inputs.fields}
    if bundle.label:
        names.add(bundle.label)
    transform = bundle.manifest.get("transform")
    root = bundle.uri
    if transform and "://" not in root:
        try:
            with open(os.path.join(root, transform, GRAPH_FILE), "rb") as handle:
                names.update(f["name"] for f in json.load(handle)["raw_schema"])
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("Could not read the raw schema of the transform in %s", root)
    return names
