"""TensorFlow Serving's REST API, on raw features.

``POST /v1/models/{name}[/versions/{v}]:predict`` takes the row format, each instance an
object of raw features, or the columnar format, each feature a list of values::

    {"instances": [{"culmen_length_mm": 39.1, "culmen_depth_mm": 18.7, ...}, ...]}
    {"inputs": {"culmen_length_mm": [39.1, 46.5], "culmen_depth_mm": [18.7, 17.9], ...}}

and answers in the same format, as TensorFlow Serving does for a signature with several
named outputs. A classifier gives, per instance, its label, the label's index in the
bundle's class_names and the probabilities in class_names order; a regressor its value::

    {"predictions": [{"prediction": "Adelie", "class_id": 0, "probabilities": [0.99, ...]}]}
    {"outputs": {"prediction": ["Adelie", "Gentoo"], "class_id": [0, 2],
                 "probabilities": [[0.99, ...], [0.01, ...]]}}
    {"predictions": [3.2, 7.5]}     {"outputs": [3.2, 7.5]}           (regression)

``:classify`` (``{"examples": [...], "context": {...}}``) answers TensorFlow Serving's
``{"result": [[["Adelie", 0.99], ["Chinstrap", 0.008], ...], ...]}``; ``:regress`` answers
``{"result": [3.2, ...]}``. Bytes values may be sent as ``{"b64": "..."}``.

Example::

    payload, rows, columnar = parse_predict(body, servable)
    answer = format_predict(outputs, columnar)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.serving.errors import BadRequest
from conveyor.serving.protocols.common import (
    check_column,
    check_keys,
    decode_b64,
    is_text_field,
    kind,
    load_object,
)
from conveyor.serving.servable import Outputs, Payload, Servable

SIGNATURES = ("serving_default", "")
_DT = {
    "double": "DT_DOUBLE",
    "float": "DT_FLOAT",
    "halffloat": "DT_HALF",
    "int64": "DT_INT64",
    "int32": "DT_INT32",
    "int16": "DT_INT16",
    "int8": "DT_INT8",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "bool": "DT_BOOL",
    "string": "DT_STRING",
    "large_string": "DT_STRING",
    "binary": "DT_STRING",
    "large_binary": "DT_STRING",
}


# ---------------------------------------------------------------------- predict
def parse_predict(body: bytes, servable: Servable) -> tuple[Payload, int, bool]:
    """The raw features of a predict request, its number of rows, and whether it came in
    the columnar format."""
    document = load_object(body, "a predict request")
    check_keys(document, ("signature_name", "instances", "inputs"), "The predict request")
    _check_signature(document)
    if ("instances" in document) == ("inputs" in document):
        raise BadRequest(
            "A predict request holds either 'instances' (a list of rows, each an object of "
            "raw features) or 'inputs' (an object of feature columns), not "
            f"{'both' if 'inputs' in document else 'neither'}."
        )
    if "instances" in document:
        rows = parse_rows(document["instances"], servable, "instance")
        return rows, len(rows), False
    columns = parse_columns(document["inputs"], servable)
    return columns, len(next(iter(columns.values()), ())), True


def parse_rows(
    instances: Any, servable: Servable, noun: str, context: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows of raw features, each checked for unknown feature names; b64 values decoded."""
    if not isinstance(instances, list):
        raise BadRequest(
            f"'{noun}s' must be a list of rows (objects of raw features); got {kind(instances)}."
        )
    text = servable.text_fields
    rows = []
    for index, row in enumerate(instances):
        if not isinstance(row, dict):
            raise BadRequest(
                f"{noun.capitalize()} {index} is {kind(row)}; each {noun} must be an object "
                f"of raw features, e.g. {{{', '.join(map(repr, servable.field_by_name))}}}."
            )
        if context:
            row = {**context, **row}
        servable.check_names(row, f"{noun.capitalize()} {index}")
        for field in text:
            if type(row.get(field.name)) is dict:
                row[field.name] = decode_b64(row[field.name], field, f"{noun} {index}")
        rows.append(row)
    return rows


def parse_columns(inputs: Any, servable: Servable) -> dict[str, list[Any]]:
    if not isinstance(inputs, dict):
        raise BadRequest(
            "'inputs' must be an object mapping each raw feature to its list of values; got "
            f"{kind(inputs)}."
        )
    servable.check_names(inputs, "'inputs'")
    columns, lengths = {}, {}
    for name, values in inputs.items():
        field = servable.field_by_name.get(name)
        if field is None:
            continue  # a name the model knows but does not read (its label)
        if not isinstance(values, list):
            raise BadRequest(
                f"'inputs': feature {name!r} must be a list of values, one per row; got "
                f"{kind(values)}."
            )
        if is_text_field(field):
            values = [decode_b64(v, field, f"'inputs' row {i}") for i, v in enumerate(values)]
        check_column(name, values, field)
        columns[name] = values
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{n!r}: {k}" for n, k in lengths.items())
        raise BadRequest(f"'inputs': the features have different numbers of values ({shown}).")
    return columns


def format_predict(outputs: Outputs, columnar: bool) -> dict[str, Any]:
    named = outputs.named()
    if len(named) == 1:  # a regressor: TensorFlow Serving's single unnamed output
        values = _values(outputs.prediction)
        return {"outputs": values} if columnar else {"predictions": values}
    lists = {name: _values(array) for name, array in named.items()}
    if columnar:
        return {"outputs": lists}
    probabilities = named.get("probabilities")
    predictions = []
    for i, (label, class_id) in enumerate(zip(lists["prediction"], lists["class_id"], strict=True)):
        one: dict[str, Any] = {"prediction": label, "class_id": class_id}
        if probabilities is not None:
            one["probabilities"] = probabilities[i]
        predictions.append(one)
    return {"predictions": predictions}


# ---------------------------------------------------------------------- classify, regress
def parse_examples(body: bytes, servable: Servable, method: str) -> tuple[Payload, int]:
    document = load_object(body, f"a {method} request")
    check_keys(document, ("signature_name", "context", "examples"), f"The {method} request")
    _check_signature(document)
    if "examples" not in document:
        raise BadRequest(f"A {method} request needs 'examples': a list of rows.")
    context = document.get("context") or {}
    if not isinstance(context, dict):
        raise BadRequest(f"'context' must be an object of raw features; got {kind(context)}.")
    rows = parse_rows(document["examples"], servable, "example", context)
    return rows, len(rows)


def check_method(servable: Servable, method: str) -> None:
    if method == "classify" and not (servable.classifier and servable.has_probabilities):
        raise BadRequest(
            f"Model {servable.model_name!r} is not a classifier with probabilities; use :predict."
        )
    if method == "regress" and servable.classifier:
        raise BadRequest(
            f"Model {servable.model_name!r} is a classifier; use :classify or :predict."
        )


def format_classify(outputs: Outputs, servable: Servable) -> dict[str, Any]:
    names = servable.class_names or list(range(outputs.probabilities.shape[1]))  # type: ignore[union-attr]
    scores = outputs.probabilities.tolist()  # type: ignore[union-attr]
    return {"result": [[[n, s] for n, s in zip(names, row, strict=True)] for row in scores]}


def format_regress(outputs: Outputs) -> dict[str, Any]:
    return {"result": _values(outputs.prediction)}


# ---------------------------------------------------------------------- status, metadata
def metadata(servable: Servable) -> dict[str, Any]:
    """``GET /v1/models/{name}[/versions/{v}]/metadata``: the signature in TensorFlow
    Serving's shape, and the bundle's own description under ``conveyor``."""
    manifest = servable.bundle.manifest
    described = servable.describe()
    inputs = {
        f.name: _tensor_info(f.name, f.type, pa.types.is_list(f.type)) for f in servable.fields
    }
    outputs = {}
    for out in described["outputs"]:
        dtype = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}.get(
            out["type"], pa.float64() if out["type"] == "float64" else pa.string()
        )
        outputs[out["name"]] = _tensor_info(out["name"], dtype, len(out["shape"]) == 2)
    signature = {
        "inputs": inputs,
        "outputs": outputs,
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {
            "name": servable.model_name,
            "signature_name": "",
            "version": str(servable.version),
        },
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
        "conveyor": {
            "framework": manifest.get("framework"),
            "framework_version": manifest.get("framework_version"),
            "task": manifest.get("task"),
            "label": manifest.get("label"),
            "class_names": servable.class_names,
            "features": manifest.get("features"),
            **described,
        },
    }


def _tensor_info(name: str, dtype: pa.DataType, two_d: bool) -> dict[str, Any]:
    element = dtype.value_type if pa.types.is_list(dtype) else dtype
    dims = [{"size": "-1", "name": ""}] * (2 if two_d else 1)
    return {
        "dtype": _DT.get(str(element), "DT_INVALID"),
        "tensor_shape": {"dim": dims, "unknown_rank": False},
        "name": name,
    }


def _check_signature(document: dict[str, Any]) -> None:
    name = document.get("signature_name", "serving_default")
    if name not in SIGNATURES:
        raise BadRequest(
            f"Unknown signature_name {name!r}; the only signature is 'serving_default'."
        )


def _values(array: np.ndarray) -> Any:
    if array.dtype.kind in "fc":
        return array  # serialized by orjson straight from NumPy
    return array.tolist()
