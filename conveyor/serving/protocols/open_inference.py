"""The Open Inference Protocol (KServe V2) over REST, on raw features.

``POST /v2/models/{name}[/versions/{v}]/infer`` takes one typed tensor per raw feature,
shape ``[N]`` (or ``[N, 1]``; ``[N, K]`` for a list feature), data flat or nested::

    {"inputs": [{"name": "culmen_length_mm", "datatype": "FP64", "shape": [2],
                 "data": [39.1, 46.5]}, ...]}

or a single ``BYTES`` tensor (any name that is not a feature) whose elements are JSON rows,
each an object of raw features (or a list of such objects)::

    {"inputs": [{"name": "instances", "datatype": "BYTES", "shape": [1],
                 "data": ["{\\"culmen_length_mm\\": 39.1, ...}"]}]}

The answer holds typed tensors: ``prediction`` (the label: BYTES for text class names,
INT64 for ids; FP32/FP64 values for a regressor), and for a classifier ``class_id`` (INT64,
``[N]``) and ``probabilities`` (FP32, ``[N, C]``, class_names order). ``outputs`` in the
request picks some of them.

Example::

    request = parse_infer(body, servable)
    answer = format_infer(outputs, servable, request)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from conveyor.serving.errors import BadRequest
from conveyor.serving.protocols.common import check_keys, decode_b64, kind, load_object
from conveyor.serving.protocols.tf_serving import parse_rows
from conveyor.serving.servable import Outputs, Payload, Servable
from conveyor.transform import dtypes

_INTS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FLOATS = ("FP16", "FP32", "FP64")
DATATYPES = ("BOOL", "BYTES", *_INTS, *_FLOATS)
_TENSOR_KEYS = ("name", "datatype", "shape", "data", "parameters")
# The Python types that are always right for a datatype (the rest are checked one by one).
_PLAIN_TYPES = {
    **dict.fromkeys(_FLOATS, (float, int)),
    **dict.fromkeys(_INTS[:4], (int,)),
    "BOOL": (bool,),
    "BYTES": (str,),
}


@dataclass
class InferRequest:
    payload: Payload
    rows: int
    outputs: list[str] | None  # the output names asked for; None: all
    id: str | None


def parse_infer(body: bytes, servable: Servable) -> InferRequest:
    document = load_object(body, "an inference request")
    check_keys(document, ("id", "parameters", "inputs", "outputs"), "The inference request")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"'id' must be a string; got {kind(request_id)}.")
    if not isinstance(document.get("parameters", {}), dict):
        raise BadRequest("'parameters' must be an object.")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(
            "'inputs' must be a non-empty list of tensors, one per raw feature "
            f"({', '.join(map(repr, servable.field_by_name))}); got {kind(inputs)}."
        )
    tensors = [_tensor(t, i) for i, t in enumerate(inputs)]
    wanted = _requested_outputs(document.get("outputs"), servable)
    first = tensors[0]
    if len(tensors) == 1 and first["datatype"] == "BYTES" and _is_rows_tensor(first, servable):
        rows = _json_rows(first, servable)
        return InferRequest(rows, len(rows), wanted, request_id)
    columns, rows = _columns(tensors, servable)
    return InferRequest(columns, rows, wanted, request_id)


def format_infer(outputs: Outputs, servable: Servable, request: InferRequest) -> dict[str, Any]:
    tensors = []
    for name, array in outputs.named().items():
        if request.outputs is not None and name not in request.outputs:
            continue
        datatype = _datatype(array)
        data: Any = array.reshape(-1) if datatype in _FLOATS else array.reshape(-1).tolist()
        tensors.append(
            {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
        )
    answer: dict[str, Any] = {
        "model_name": servable.model_name,
        "model_version": str(servable.version),
        "outputs": tensors,
    }
    if request.id is not None:
        answer["id"] = request.id
    return answer


def metadata(servable: Servable, versions: list[str]) -> dict[str, Any]:
    """``GET /v2/models/{name}[/versions/{v}]``."""
    described = servable.describe()
    return {
        "name": servable.model_name,
        "versions": versions,
        "platform": f"conveyor-{servable.bundle.manifest.get('framework')}",
        "inputs": [
            {
                "name": f.name,
                "datatype": _field_datatype(f.type),
                "shape": [-1, -1] if dtypes.is_list(f.type) else [-1],
            }
            for f in servable.fields
        ],
        "outputs": [
            {
                "name": o["name"],
                "datatype": _OUTPUT_TYPES.get(o["type"], "BYTES"),
                "shape": o["shape"],
            }
            for o in described["outputs"]
        ],
    }


_OUTPUT_TYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "bool": "BOOL"}


# ---------------------------------------------------------------------- tensors
def _tensor(tensor: Any, index: int) -> dict[str, Any]:
    if not isinstance(tensor, dict):
        raise BadRequest(f"Input {index} must be a tensor object; got {kind(tensor)}.")
    check_keys(tensor, _TENSOR_KEYS, f"Input {index}")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"Input {index} needs a 'name' (a string).")
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise BadRequest(
            f"Input {name!r}: 'datatype' must be one of {', '.join(DATATYPES)}; got {datatype!r}."
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadRequest(
            f"Input {name!r}: 'shape' must be a non-empty list of sizes ≥ 0; got {shape!r}."
        )
    if "data" not in tensor:
        raise BadRequest(f"Input {name!r} has no 'data'.")
    data = _flatten(tensor["data"], name)
    if len(data) != math.prod(shape):
        raise BadRequest(
            f"Input {name!r}: shape {shape} holds {math.prod(shape)} values, but 'data' has "
            f"{len(data)}."
        )
    plain = _PLAIN_TYPES.get(datatype)
    if plain is None or not all(type(value) in plain for value in data):
        for value in data:
            _check_value(value, datatype, name)
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def _flatten(data: Any, name: str) -> list[Any]:
    """Tensor data in row-major order, nested or flat (without recursion: JSON may nest
    deeper than Python's stack)."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _check_value(value: Any, datatype: str, name: str) -> None:
    if datatype == "BOOL":
        ok = isinstance(value, bool)
    elif datatype == "BYTES":
        ok = isinstance(value, str) or (isinstance(value, dict) and set(value) == {"b64"})
    elif datatype in _INTS:
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and (value >= 0 or datatype in _INTS[:4])
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise BadRequest(f"Input {name!r} is {datatype}, but holds {kind(value)} {value!r:.40}.")


def _is_rows_tensor(tensor: dict[str, Any], servable: Servable) -> bool:
    name = tensor["name"]
    return name not in servable.field_by_name and name not in servable.ignored


def _json_rows(tensor: dict[str, Any], servable: Servable) -> list[dict[str, Any]]:
    rows: list[Any] = []
    text_field = pa.field(tensor["name"], pa.binary())
    for index, element in enumerate(tensor["data"]):
        where = f"Input {tensor['name']!r}, element {index}"
        text = decode_b64(element, text_field, where)
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"{where}: not a JSON row: {exc}") from None
        rows.extend(value if isinstance(value, list) else [value])
    return parse_rows(rows, servable, "row")


def _columns(tensors: list[dict[str, Any]], servable: Servable) -> tuple[dict[str, Any], int]:
    servable.check_names((t["name"] for t in tensors), "Inputs")
    columns: dict[str, list[Any]] = {}
    rows = None
    for tensor in tensors:
        name, shape = tensor["name"], tensor["shape"]
        field = servable.field_by_name.get(name)
        if field is None:
            continue  # the label, or a raw column only the label uses
        if name in columns:
            raise BadRequest(f"Input {name!r} is given twice.")
        listed = _check_datatype(field.type, field.name, tensor["datatype"])
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1 and not listed):
            raise BadRequest(
                f"Input {name!r}: shape {shape} does not fit a feature of one value per row; "
                "send shape [N] or [N, 1]."
            )
        if rows is not None and shape[0] != rows:
            raise BadRequest(
                f"Input {name!r} has {shape[0]} rows, but the inputs before it have {rows}."
            )
        rows = shape[0]
        data = tensor["data"]
        if any(isinstance(v, dict) for v in data):
            data = [decode_b64(v, field, f"Input {name!r}") for v in data]
        if listed:
            width = shape[1] if len(shape) == 2 else 1
            data = [data[i * width : (i + 1) * width] for i in range(rows)]
        columns[name] = data
    return columns, rows or 0


def _check_datatype(kind_: pa.DataType, name: str, datatype: str) -> bool:
    """Whether a feature of ``kind_`` is a list; a 400 unless ``datatype`` may stand for it."""
    allowed, listed = _datatypes_for(kind_)
    if datatype not in allowed:
        raise BadRequest(
            f"Input {name!r} is {datatype}, but the feature is "
            f"{dtypes.describe(kind_)}; send {_field_datatype(kind_)}."
        )
    return listed


@functools.cache
def _datatypes_for(kind_: pa.DataType) -> tuple[tuple[str, ...], bool]:
    """The datatypes a feature of ``kind_`` takes, and whether it is a list."""
    element = dtypes.element(kind_)
    if pa.types.is_boolean(element):
        allowed: tuple[str, ...] = ("BOOL",)
    elif pa.types.is_integer(element):
        allowed = _INTS
    elif pa.types.is_floating(element):
        allowed = _INTS + _FLOATS
    else:
        allowed = ("BYTES",)
    return allowed, dtypes.is_list(kind_)


def _field_datatype(kind_: pa.DataType) -> str:
    kind_ = dtypes.element(kind_)
    if pa.types.is_boolean(kind_):
        return "BOOL"
    if pa.types.is_integer(kind_) or pa.types.is_floating(kind_):
        return {pa.float16(): "FP16", pa.float32(): "FP32", pa.float64(): "FP64"}.get(
            kind_, str(kind_).upper()
        )
    return "BYTES"


def _datatype(array: np.ndarray) -> str:
    if array.dtype.kind == "b":
        return "BOOL"
    if array.dtype.kind in "iu":
        return "INT64" if array.dtype.kind == "i" else "UINT64"
    if array.dtype.kind == "f":
        return {2: "FP16", 4: "FP32"}.get(array.dtype.itemsize, "FP64")
    return "BYTES"


def _requested_outputs(outputs: Any, servable: Servable) -> list[str] | None:
    if outputs is None:
        return None
    names = servable.output_names()
    if not isinstance(outputs, list):
        raise BadRequest(f"'outputs' must be a list of {{\"name\": ...}}; got {kind(outputs)}.")
    wanted = []
    for index, out in enumerate(outputs):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise BadRequest(f"Output {index} must be an object with a 'name'.")
        if out["name"] not in names:
            raise BadRequest(
                f"Unknown output {out['name']!r}; this model gives {', '.join(map(repr, names))}."
            )
        wanted.append(out["name"])
    return wanted
