"""The model server's ASGI app: TensorFlow Serving's REST API under ``/v1``, the Open
Inference Protocol under ``/v2``, Prometheus metrics at ``/metrics``.

===========================================================  =================================
``GET  /v1/models/{name}[/versions/{v}]``                    version states (TF Serving)
``GET  /v1/models/{name}[/versions/{v}]/metadata``           signature
``POST /v1/models/{name}[/versions/{v}]:predict``            ``instances`` or ``inputs``
``POST /v1/models/{name}[/versions/{v}]:classify|:regress``  ``examples``
``GET  /v2``, ``/v2/health/live``, ``/v2/health/ready``      server metadata, health
``GET  /v2/models/{name}[/versions/{v}][/ready]``            model metadata, readiness
``POST /v2/models/{name}[/versions/{v}]/infer``              typed tensors
``GET  /metrics``                                            Prometheus text format
===========================================================  =================================

Every answer is JSON; errors are ``{"error": "..."}`` with 400 for a malformed request,
401 without the token, 404 for an unknown model or version, 413 for a body over the limit,
503 while a model has no version loaded, 504 past the timeout.

Example (in process; :func:`conveyor.serving.start_server` runs it in its own process)::

    app = create_app(ServingConfig(models={"penguin": "/models/penguin"}))
    uvicorn.run(app, host="127.0.0.1", port=8501)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.serving.batching import Batcher
from conveyor.serving.compiled import MAX_ROWS
from conveyor.serving.config import ServingConfig
from conveyor.serving.errors import BadRequest, NotFound, RequestError, Unavailable
from conveyor.serving.metrics import Metrics
from conveyor.serving.protocols import open_inference as v2
from conveyor.serving.protocols import tf_serving as v1
from conveyor.serving.protocols.common import dumps
from conveyor.serving.repository import ModelRepository
from conveyor.serving.security import check_token, read_body

logger = logging.getLogger(__name__)

CONFIG_ENV = "CONVEYOR_SERVE_CONFIG"
_V1_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?:/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:predict|:classify|:regress)?$"
)
Handler = Callable[[Request], Awaitable[Response]]


def create_app(config: ServingConfig) -> Starlette:
    """The server for ``config``; its models load in the background once it starts."""
    return ServingApp(config).app


def create_app_from_env() -> Starlette:
    """The app for a worker process: the settings :func:`conveyor.serving.start_server`
    passed in ``CONVEYOR_SERVE_CONFIG``, else those of :meth:`ServingConfig.from_env`."""
    text = os.environ.get(CONFIG_ENV)
    return create_app(ServingConfig.from_json(text) if text else ServingConfig.from_env())


class ServingApp:
    """The app's state: its models, their batchers and its metrics."""

    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.metrics = Metrics(list(config.models))
        self.repository = ModelRepository(
            config.models, poll_s=config.poll_s, on_load=self.metrics.loaded
        )
        self.batchers: dict[str, Batcher] = {}
        self._token = config.auth_token.encode() if config.auth_token else None
        get, post = ["GET"], ["POST"]
        self.app = _Router(
            routes=[
                Route("/v1/models/{path:path}", self._wrap("v1", self._v1), methods=get + post),
                Route("/v2", self._wrap("v2_server", self._server_metadata), methods=get),
                Route("/v2/health/live", self._wrap("v2_live", self._live, public=True)),
                Route("/v2/health/ready", self._wrap("v2_ready", self._ready, public=True)),
                *self._v2_routes("/v2/models/{name}"),
                *self._v2_routes("/v2/models/{name}/versions/{version}"),
                Route("/metrics", self._wrap("metrics", self._metrics), methods=get),
            ],
            exception_handlers={HTTPException: self._http_error},
            lifespan=self._lifespan,
        )
        self.app.state.serving = self
        v1, infer = self._wrap("v1", self._v1), self._wrap("v2_infer", self._v2_infer)
        for name in config.models:
            self.app.direct[f"/v1/models/{name}:predict"] = (v1, {"path": f"{name}:predict"})
            self.app.direct[f"/v2/models/{name}/infer"] = (infer, {"name": name})

    def _v2_routes(self, prefix: str) -> list[Route]:
        return [
            Route(prefix, self._wrap("v2_model", self._v2_metadata), methods=["GET"]),
            Route(f"{prefix}/ready", self._wrap("v2_model_ready", self._v2_ready)),
            Route(f"{prefix}/infer", self._wrap("v2_infer", self._v2_infer), methods=["POST"]),
        ]

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        for name in self.config.models:
            batcher = Batcher(
                name,
                max_batch_size=self.config.max_batch_size,
                wait_s=self.config.batch_wait_ms / 1000,
                on_batch=lambda rows, name=name: self.metrics.batch(name, rows),
            )
            batcher.start()
            self.batchers[name] = batcher
        self.repository.start()
        try:
            yield
        finally:
            await asyncio.to_thread(self.repository.stop)
            for batcher in self.batchers.values():
                await batcher.close()

    # ------------------------------------------------------------------ plumbing
    def _wrap(self, route: str, handler: Handler, public: bool = False) -> Handler:
        timeout = self.config.timeout_s

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if self._token is not None and not public:
                    check_token(request.headers.get("authorization"), self._token)
                async with asyncio.timeout(timeout):
                    response = await handler(request)
            except RequestError as exc:
                response = _error(exc.status, exc.message)
                if exc.status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
            except TimeoutError:
                response = _error(504, f"No answer within the server's timeout of {timeout} s.")
            except Exception:
                logger.exception("%s %s failed", request.method, request.url.path)
                response = _error(500, "The server failed on this request; see its log.")
            model = request.path_params.get("name") or request.scope.get("conveyor.model", "")
            elapsed = time.perf_counter() - started
            named = request.scope.get("conveyor.route", route)
            self.metrics.request(named, model, response.status_code, elapsed)
            return response

        return endpoint

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        message = {404: "No such route.", 405: "Method not allowed on this route."}.get(
            status, str(getattr(exc, "detail", exc))
        )
        self.metrics.request("other", "", status, 0.0)
        return _error(status, f"{message} ({request.method} {request.url.path})")

    async def _predict(
        self,
        request: Request,
        name: str,
        version: int | None,
        parse: Callable[[bytes, Any], Any],
        rows_of: Callable[[Any], tuple[Any, int]],
    ) -> tuple[Any, Any, Any]:
        """Read, parse and queue one request; its servable, parsed form and outputs."""
        served = self.repository.model(name)
        batcher = self.batchers[name]
        with batcher.coming():
            body = await read_body(request, self.config.max_body_bytes)
            servable = served.get(version)
            parsed = parse(body, servable)
        payload, rows = rows_of(parsed)
        if servable.compiled is not None and rows <= MAX_ROWS:
            # Microseconds, bounded by MAX_ROWS: answered here, without a thread hop.
            outputs = servable.compiled.answer(payload)
            if outputs is not None:
                self.metrics.batch(name, rows)
                return servable, parsed, outputs
        outputs = await batcher.submit(servable, payload, rows)
        return servable, parsed, outputs

    # ------------------------------------------------------------------ /v1
    async def _v1(self, request: Request) -> Response:
        match = _V1_PATH.match(request.path_params["path"])
        if match is None:
            raise NotFound(f"No such route: {request.url.path}.")
        name, tail = match["name"], match["tail"] or ""
        request.scope["conveyor.model"] = name
        request.scope["conveyor.route"] = "v1_" + (tail.strip(":/") or "status")
        if match["label"] is not None:
            raise NotFound(f"Version labels are not served; ask for /versions/{{v}} of {name!r}.")
        version = _version(match["version"])
        expected = "POST" if tail.startswith(":") else "GET"
        if request.method != expected:
            raise RequestError(405, f"{request.url.path} takes {expected}, not {request.method}.")
        if tail == "":
            status = self.repository.model(name).status(version)
            return _json({"model_version_status": status})
        if tail == "/metadata":
            return _json(v1.metadata(self.repository.model(name).get(version)))
        if tail == ":predict":
            _, parsed, outputs = await self._predict(
                request, name, version, v1.parse_predict, lambda p: (p[0], p[1])
            )
            return _json(v1.format_predict(outputs, parsed[2]))
        method = tail[1:]

        def parse(body: bytes, servable: Any) -> Any:
            v1.check_method(servable, method)
            return v1.parse_examples(body, servable, method)

        servable, _, outputs = await self._predict(request, name, version, parse, lambda p: p)
        if method == "classify":
            return _json(v1.format_classify(outputs, servable))
        return _json(v1.format_regress(outputs))

    # ------------------------------------------------------------------ /v2
    async def _server_metadata(self, request: Request) -> Response:
        version = sys.modules["conveyor"].__version__  # loaded: this module is inside it
        return _json({"name": "conveyor", "version": version, "extensions": []})

    async def _live(self, request: Request) -> Response:
        return _json({"live": True})

    async def _ready(self, request: Request) -> Response:
        if self.repository.ready:
            return _json({"ready": True})
        if self._token is not None:  # why a model failed is for those holding the token
            try:
                check_token(request.headers.get("authorization"), self._token)
            except RequestError:
                return _json({"ready": False}, 503)
        models = {
            name: {"ready": served.ready, "error": served.failure}
            for name, served in self.repository.models.items()
        }
        return _json({"ready": False, "models": models}, 503)

    async def _v2_metadata(self, request: Request) -> Response:
        servable = self._servable(request)
        return _json(v2.metadata(servable, [str(servable.version)]))

    async def _v2_ready(self, request: Request) -> Response:
        name = request.path_params["name"]
        served = self.repository.model(name)
        version = _version(request.path_params.get("version"))
        try:
            served.get(version)
        except Unavailable as exc:
            return _json({"name": name, "ready": False, "error": exc.message}, 503)
        return _json({"name": name, "ready": True})

    async def _v2_infer(self, request: Request) -> Response:
        name = request.path_params["name"]
        version = _version(request.path_params.get("version"))
        servable, parsed, outputs = await self._predict(
            request, name, version, v2.parse_infer, lambda p: (p.payload, p.rows)
        )
        return _json(v2.format_infer(outputs, servable, parsed))

    def _servable(self, request: Request) -> Any:
        served = self.repository.model(request.path_params["name"])
        return served.get(_version(request.path_params.get("version")))

    async def _metrics(self, request: Request) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)


class _Router(Starlette):
    """Starlette, but a POST to a model's ``:predict`` or ``/infer`` path goes straight to
    its handler (one dict lookup, where Starlette's routing and middleware cost as much as
    a small model call); every other request takes Starlette's way. The handlers answer
    every error themselves, so nothing is lost."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.direct: dict[str, tuple[Handler, dict[str, str]]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            found = self.direct.get(scope["path"])
            if found is not None:
                endpoint, params = found
                scope["app"] = self
                scope["path_params"] = params
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise BadRequest(f"A model version is a number; got {text!r}.")
    return int(text)


def _json(document: Any, status: int = 200) -> Response:
    return Response(dumps(document), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)
