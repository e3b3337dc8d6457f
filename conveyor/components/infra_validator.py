"""InfraValidator: check that a model bundle loads in the real model server and answers real
requests, before it is pushed anywhere a server would pick it up.

The bundle is copied as version 1 into a temporary model base, and the model server
(:func:`conveyor.serving.start_server`) is started over it in a child process on a free
loopback port. Once the server has loaded the bundle (within ``serving_spec.load_timeout_s``),
``request_spec.num_examples`` raw rows of the ``request_spec.split`` split of ``examples``
(only the features the model reads: the label is left out) are sent through TensorFlow
Serving's REST API (and the Open Inference Protocol when asked), in requests of
``request_spec.batch_size`` rows. Every answer must be 200 with one prediction per row (and
one probability per class). The server is then stopped.

A bundle the server cannot load (a changed file fails its hash check, say) or an answer
that is wrong is not blessed, with the reason; the component itself succeeds. Without
``examples`` only loading is checked.

Example::

    infra_validator = InfraValidator(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        serving_spec={"load_timeout_s": 60},
        request_spec={"num_examples": 20, "protocols": ["tf_serving", "open_inference"]},
    )
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from conveyor.components._bundle_files import copy_bundle
from conveyor.components._infra_requests import PROTOCOLS, Probe, probe_server
from conveyor.components._specs import check_names, check_number, with_specs
from conveyor.dsl import Input, Output, Param
from conveyor.io import filesystems as fsx
from conveyor.serving.zygote import uses_model_server
from conveyor.types import (
    ConveyorError,
    Examples,
    InfraBlessing,
    Model,
    PipelineDefinitionError,
)

__all__ = ["InfraValidator", "RequestSpec", "ServingSpec", "validate_infra"]

logger = logging.getLogger(__name__)

RESULT_FILE = "infra_validation.json"
LOG_FILE = "server.log"
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"


@dataclass(frozen=True)
class ServingSpec:
    """How the model server runs for the check.

    ``model_name``: the name it serves the model under. ``load_timeout_s``: the longest the
    bundle may take to load (TFX's ``max_loading_time_seconds``). ``request_timeout_s``: a
    request not answered by then fails. ``workers`` and ``max_batch_size``: as the server
    will run in production.

    Example::

        ServingSpec(load_timeout_s=60, workers=2)
    """

    model_name: str = "model"
    load_timeout_s: float = 120.0
    request_timeout_s: float = 30.0
    workers: int = 1
    max_batch_size: int = 64

    def __post_init__(self) -> None:
        from conveyor.serving.config import check_model_name

        try:
            check_model_name(self.model_name)
        except ConveyorError as exc:
            raise PipelineDefinitionError(f"ServingSpec's model_name: {exc}") from None
        check_number("ServingSpec", "load_timeout_s", self.load_timeout_s)
        check_number("ServingSpec", "request_timeout_s", self.request_timeout_s)
        check_number("ServingSpec", "workers", self.workers, integer=True, minimum=1)
        check_number("ServingSpec", "max_batch_size", self.max_batch_size, integer=True, minimum=1)


@dataclass(frozen=True)
class RequestSpec:
    """What is sent to the server: ``num_examples`` rows of the ``split`` split, in requests
    of ``batch_size`` rows, through each of ``protocols`` (``"tf_serving"``: TensorFlow
    Serving's REST ``:predict``; ``"open_inference"``: KServe V2 ``/infer``).

    Example::

        RequestSpec(num_examples=20, split="eval", protocols=("tf_serving", "open_inference"))
    """

    num_examples: int = 10
    split: str = "eval"
    batch_size: int = 1
    protocols: tuple[str, ...] = ("tf_serving",)

    def __post_init__(self) -> None:
        check_number("RequestSpec", "num_examples", self.num_examples, integer=True, minimum=1)
        check_number("RequestSpec", "batch_size", self.batch_size, integer=True, minimum=1)
        if not isinstance(self.split, str) or not self.split:
            raise PipelineDefinitionError(
                f"The 'split' parameter of RequestSpec must be a split name. Got {self.split!r}."
            )
        protocols = check_names("RequestSpec", "protocols", self.protocols, allowed=PROTOCOLS)
        object.__setattr__(self, "protocols", protocols)


@with_specs(serving_spec=ServingSpec, request_spec=RequestSpec)
@uses_model_server
def InfraValidator(
    model: Input[Model],
    blessing: Output[InfraBlessing],
    examples: Input[Examples] | None = None,
    serving_spec: Param[ServingSpec | None] = None,
    request_spec: Param[RequestSpec | None] = None,
):
    """Serve ``model`` in the model server and send it real requests; see the module
    docstring. ``serving_spec`` and ``request_spec`` take a :class:`ServingSpec` /
    :class:`RequestSpec` or a dict of their fields.

    Properties of ``blessing``: ``blessed``, ``reasons``, ``model_id``, ``load_time_s``,
    ``latency_p50_ms``, ``latency_p99_ms``, ``num_requests``, ``num_examples``. Files:
    ``INFRA_BLESSED`` or ``INFRA_NOT_BLESSED``, ``infra_validation.json`` (the same
    figures) and ``server.log`` (what the server wrote).
    """
    validate_infra(model, blessing, examples, serving_spec, request_spec)


def validate_infra(
    model: Model,
    blessing: InfraBlessing,
    examples: Examples | None = None,
    serving_spec: ServingSpec | None = None,
    request_spec: RequestSpec | None = None,
) -> None:
    """Everything InfraValidator does."""
    from conveyor.frameworks import manifest as mf

    serving = serving_spec or ServingSpec()
    request = request_spec or RequestSpec()
    try:
        manifest = mf.read_manifest(model.uri)
    except ConveyorError as exc:
        _record(blessing, model, Probe(problems=[f"The bundle cannot be served: {exc}"]))
        return
    rows = None if examples is None else sample_rows(examples, request, manifest)
    with tempfile.TemporaryDirectory(prefix="conveyor-infra-") as base:
        copy_bundle(model.uri, os.path.join(base, "1"))
        probe, log = _serve_and_probe(model.uri, base, rows, manifest, serving, request)
    _record(blessing, model, probe, serving, request, log)


def _serve_and_probe(
    model_uri: str,
    base: str,
    rows: list[dict[str, Any]] | None,
    manifest: dict[str, Any],
    serving: ServingSpec,
    request: RequestSpec,
) -> tuple[Probe, str]:
    from conveyor.serving import start_server

    started = time.monotonic()
    try:
        server = start_server(
            model_name=serving.model_name,
            model_base=base,
            workers=serving.workers,
            max_batch_size=serving.max_batch_size,
            timeout_s=serving.request_timeout_s,
            poll_s=0,
            ready_timeout_s=serving.load_timeout_s,
        )
    except ConveyorError as exc:  # the message says where: name the model, not our copy
        return Probe(problems=[str(exc).replace(os.path.join(base, "1"), model_uri)]), ""
    load_time_s = time.monotonic() - started
    logger.info("The model server loaded the bundle in %.2f s at %s", load_time_s, server.url)
    with server:
        probe = probe_server(server.url, serving, request, rows or [], manifest)
    probe.load_time_s = load_time_s
    return probe, server.log()


def sample_rows(
    examples: Examples, request: RequestSpec, manifest: dict[str, Any]
) -> list[dict[str, Any]]:
    """The first ``num_examples`` rows of the split, holding only the model's raw inputs."""
    from conveyor.io import record_batches
    from conveyor.io import schema as split_schema

    available = split_schema(examples, request.split).names
    inputs = manifest["signature"]["inputs"]
    missing = [f["name"] for f in inputs if f.get("required") and f["name"] not in available]
    if missing:
        raise ConveyorError(
            f"Split {request.split!r} of the Examples at {examples.uri} lacks "
            f"{', '.join(map(repr, missing))}, which the model needs (its inputs: "
            f"{', '.join(f['name'] for f in inputs)}). Give examples that hold them, or pick "
            "another split with request_spec={'split': ...}."
        )
    columns = [f["name"] for f in inputs if f["name"] in available]
    batches = record_batches(
        examples, request.split, batch_size=request.num_examples, columns=columns
    )
    batch = next(iter(batches), None)
    if batch is None or batch.num_rows == 0:
        raise ConveyorError(
            f"Split {request.split!r} of the Examples at {examples.uri} holds no rows to send "
            "to the server. Pick another split with request_spec={'split': ...}."
        )
    return [{k: _json_value(v) for k, v in row.items()} for row in batch.to_pylist()]


def _json_value(value: Any) -> Any:
    """A raw value as the REST API takes it: NaN as null, bytes as {"b64": ...}, dates as
    ISO text."""
    import base64
    import math

    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _record(
    blessing: InfraBlessing,
    model: Model,
    probe: Probe,
    serving: ServingSpec | None = None,
    request: RequestSpec | None = None,
    log: str = "",
) -> None:
    blessed = not probe.problems
    figures = {
        "blessed": blessed,
        "reasons": probe.problems,
        "model_id": model.id,
        **probe.figures(),
    }
    blessing.properties.update(figures)
    document = {
        **figures,
        "serving_spec": asdict(serving) if serving else None,
        "request_spec": asdict(request) if request else None,
    }
    with fsx.open_file(fsx.join(blessing.uri, RESULT_FILE), "w") as handle:
        json.dump(document, handle, indent=1)
    with fsx.open_file(fsx.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "w"):
        pass
    if log:
        with fsx.open_file(fsx.join(blessing.uri, LOG_FILE), "w") as handle:
            handle.write(log)
    if blessed:
        logger.info("Model %s is infra-blessed: %s", model.id, probe.figures())
    else:
        logger.warning("Model %s is not infra-blessed: %s", model.id, " ".join(probe.problems))
