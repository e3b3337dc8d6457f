"""The server's Prometheus metrics, served at ``/metrics`` in the text exposition format.

==========================================  ===========================================
``conveyor_serving_requests_total``         requests by route, model and status code
``conveyor_serving_request_seconds``        request latency histogram, by route
``conveyor_serving_batch_rows``             rows per model call (micro-batch size), by model
``conveyor_serving_model_version``          the version each model serves
``conveyor_serving_model_load_failures``    versions that failed to load, by model
==========================================  ===========================================

Each app has its own registry, so several servers in one process do not mix their counts.
With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` (the server does so itself
for ``workers > 1``) and every worker's counts are summed.

Example::

    metrics = Metrics(models=["penguin"])
    metrics.request("v1_predict", "penguin", 200, 0.0012)
    body, content_type = metrics.render()
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_MAX_CACHED = 1024  # (route, model, status) keys; a client naming endless models is not kept


class Metrics:
    """The counters of one server; ``models`` bounds the ``model`` label's values."""

    def __init__(self, models: list[str]) -> None:
        self.models = set(models)
        self.registry = CollectorRegistry()
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._batch_children: dict[str, Any] = {}
        self.requests = Counter(
            "conveyor_serving_requests",
            "Requests answered, by route, model and HTTP status.",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "conveyor_serving_request_seconds",
            "Time from a request's start to its answer.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "conveyor_serving_batch_rows",
            "Rows run through a model in one call (micro-batch size).",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.version = Gauge(
            "conveyor_serving_model_version",
            "The version each model serves.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.load_failures = Counter(
            "conveyor_serving_model_load_failures",
            "Model versions that failed to load.",
            ["model"],
            registry=self.registry,
        )

    def request(self, route: str, model: str, status: int, seconds: float) -> None:
        key = (route, model, status)
        children = self._children.get(key)
        if children is None:  # label lookups cost more than counting: once per key
            known = model if model in self.models else ""
            children = (self.requests.labels(route, known, str(status)), self.latency.labels(route))
            if len(self._children) < _MAX_CACHED:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def batch(self, model: str, rows: int) -> None:
        child = self._batch_children.get(model)
        if child is None:
            child = self._batch_children[model] = self.batch_rows.labels(model)
        child.observe(rows)

    def loaded(self, model: str, version: int, error: str | None) -> None:
        if error is None:
            self.version.labels(model).set(version)
        else:
            self.load_failures.labels(model).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
