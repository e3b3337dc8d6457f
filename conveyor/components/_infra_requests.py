"""The requests InfraValidator sends a running model server, and what it accepts back: a 200
answer with one prediction per row sent, each with as many probabilities as the bundle has
classes; and the latency of every request.

Example::

    probe = probe_server(server.url, ServingSpec(), RequestSpec(), rows, manifest)
    probe.problems      # [] when every answer was right
    probe.figures()     # {"latency_p50_ms": 3.1, "latency_p99_ms": 7.9, ...}
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The APIs a request can go through: TensorFlow Serving's REST ``:predict`` and the Open
#: Inference Protocol's (KServe V2) ``/infer``.
PROTOCOLS = ("tf_serving", "open_inference")


@dataclass
class Probe:
    """What the requests found: problems (empty when all went well) and timings."""

    problems: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    load_time_s: float | None = None
    num_examples: int = 0

    def figures(self) -> dict[str, Any]:
        latencies = self.latencies_ms
        return {
            "load_time_s": None if self.load_time_s is None else round(self.load_time_s, 3),
            "latency_p50_ms": _percentile(latencies, 0.50),
            "latency_p99_ms": _percentile(latencies, 0.99),
            "num_requests": len(latencies),
            "num_examples": self.num_examples,
        }


def probe_server(
    url: str, serving: Any, request: Any, rows: list[dict[str, Any]], manifest: dict[str, Any]
) -> Probe:
    """Send ``rows`` in requests of ``request.batch_size`` through each protocol of
    ``request``; a protocol stops at its first wrong answer."""
    probe = Probe(num_examples=len(rows))
    size = request.batch_size
    for protocol in request.protocols:
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            path, body = _REQUESTS[protocol](serving.model_name, chunk)
            status, answer, seconds = _post(url + path, body, serving.request_timeout_s + 5)
            problem = _CHECKS[protocol](status, answer, len(chunk), manifest)
            if problem:
                where = f"rows {start}-{start + len(chunk) - 1}"
                probe.problems.append(f"The {protocol} request for {where} failed: {problem}")
                break
            probe.latencies_ms.append(seconds * 1000.0)
    return probe


def _tf_serving_request(name: str, rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    return f"/v1/models/{name}:predict", {"instances": rows}


def _open_inference_request(name: str, rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    tensor = {
        "name": "instances",
        "datatype": "BYTES",
        "shape": [len(rows)],
        "data": [json.dumps(row) for row in rows],
    }
    return f"/v2/models/{name}/infer", {"inputs": [tensor]}


def _post(url: str, body: dict[str, Any], timeout_s: float) -> tuple[int, Any, float]:
    """(status, the decoded answer or its text, seconds taken); status 0 when no answer came."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError as exc:
        return 0, f"no answer ({exc})", time.perf_counter() - started
    seconds = time.perf_counter() - started
    try:
        return status, json.loads(raw), seconds
    except ValueError:
        return status, raw.decode(errors="replace")[:300], seconds


def _check_tf_serving(status: int, answer: Any, n: int, manifest: dict[str, Any]) -> str | None:
    if status != 200:
        return _status_problem(status, answer)
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != n:
        found = len(predictions) if isinstance(predictions, list) else "no"
        return f"{n} rows sent but {found} predictions came back."
    for index, prediction in enumerate(predictions):
        problem = _prediction_problem(prediction, manifest)
        if problem:
            return f"prediction {index}: {problem}"
    return None


def _prediction_problem(prediction: Any, manifest: dict[str, Any]) -> str | None:
    if manifest.get("task") != "classification":
        if isinstance(prediction, bool) or not isinstance(prediction, int | float):
            return f"a regressor's prediction must be a number; got {prediction!r}."
        return None
    if not isinstance(prediction, dict) or "prediction" not in prediction:
        return f"a classifier's prediction must hold 'prediction'; got {prediction!r}."
    names = manifest.get("class_names")
    if names and prediction["prediction"] not in names:
        return f"the label {prediction['prediction']!r} is not one of the classes {names}."
    probabilities = prediction.get("probabilities")
    if names and probabilities is not None and len(probabilities) != len(names):
        return f"{len(probabilities)} probabilities for {len(names)} classes."
    return None


def _check_open_inference(status: int, answer: Any, n: int, manifest: dict[str, Any]) -> str | None:
    if status != 200:
        return _status_problem(status, answer)
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    tensors = {t.get("name"): t for t in outputs or () if isinstance(t, dict)}
    if "prediction" not in tensors:
        return f"the answer holds no 'prediction' tensor: {str(answer)[:200]}"
    names = manifest.get("class_names")
    expected = {"prediction": [n]}
    if names and "probabilities" in tensors:
        expected["probabilities"] = [n, len(names)]
    for name, shape in expected.items():
        tensor = tensors[name]
        size = len(_flat(tensor.get("data")))
        if tensor.get("shape") != shape or size != math.prod(shape):
            return (
                f"tensor {name!r} has shape {tensor.get('shape')} and {size} values; "
                f"expected shape {shape}."
            )
    return None


def _status_problem(status: int, answer: Any) -> str:
    if status == 0:
        return str(answer)
    message = answer.get("error") if isinstance(answer, dict) else None
    return f"status {status}: {message or str(answer)[:300]}"


def _flat(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [] if data is None else [data]
    return [item for value in data for item in _flat(value)]


def _percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile by linear interpolation (NumPy's default), rounded to µs."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 3)


_REQUESTS: dict[str, Callable[[str, list[dict[str, Any]]], tuple[str, dict[str, Any]]]] = {
    "tf_serving": _tf_serving_request,
    "open_inference": _open_inference_request,
}
_CHECKS: dict[str, Callable[[int, Any, int, dict[str, Any]], str | None]] = {
    "tf_serving": _check_tf_serving,
    "open_inference": _check_open_inference,
}
