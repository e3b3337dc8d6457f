"""The web app: read-only pages over one metadata store, rendered on the server.

Every script, style and plot is served by the app itself (plots are inline SVG), so the
pages work with no network. Artifact reports are the same pages ``conveyor show --html``
writes, embedded in the artifact page.

Example::

    import uvicorn
    from conveyor.ui import create_app

    uvicorn.run(create_app("sqlite:////tmp/metadata.db"), host="127.0.0.1", port=8080)
"""

from __future__ import annotations

import datetime
import functools
import json
import threading
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from conveyor.metadata import MetadataStore
from conveyor.reports import formatting
from conveyor.types import ConveyorError, MetadataError
from conveyor.ui import artifacts, compare, files, runs
from conveyor.ui.walk import ProducerCache

if TYPE_CHECKING:
    import jinja2
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["create_app"]

_STATIC = {
    "ui.css": ("conveyor.ui", "text/css"),
    "ui.js": ("conveyor.ui", "text/javascript"),
    "report.css": ("conveyor.reports", "text/css"),
}
_TEXT_FILES = (".json", ".txt", ".pbtxt", ".log", ".csv", ".yaml", ".yml", ".py", ".md", "MLmodel")
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def create_app(
    metadata_url: str | None = None, *, allowed_hosts: list[str] | None = None
) -> Starlette:
    """The UI over the store at ``metadata_url`` (default: the usual one). Requests whose
    Host header is not in ``allowed_hosts`` (default: loopback names) are refused, so a web
    page elsewhere cannot read the store through a renamed host."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.routing import Route

    store = MetadataStore(metadata_url)
    pages = _Pages(store)
    routes = [
        Route("/", pages.runs_list),
        Route("/runs/{run_id}", pages.run),
        Route("/executions/{execution_id:int}", pages.execution),
        Route("/artifacts/{artifact_id:int}", pages.artifact),
        Route("/artifacts/{artifact_id:int}/report", pages.report),
        Route("/artifacts/{artifact_id:int}/lineage", pages.lineage),
        Route("/artifacts/{artifact_id:int}/files/{path:path}", pages.artifact_file),
        Route("/compare", pages.compare),
        Route("/static/{name}", pages.static),
    ]
    hosts = allowed_hosts or LOCAL_HOSTS
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
        lifespan=_closing(store),
    )
    app.state.store = store
    return app


def _closing(store: MetadataStore) -> Callable[[Any], Any]:
    """A lifespan that closes the store's connections when the server stops."""
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        store.close()

    return lifespan


class _Pages:
    """One endpoint per page; the store is read in a worker thread."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.producers = ProducerCache()
        self.lineages = _Memo(64)

    async def runs_list(self, request: Request) -> Response:
        q = request.query_params
        page = int(q["page"]) if q.get("page", "").isdigit() else 0
        return await self._render(
            request,
            "runs.html",
            lambda: runs.runs_list(
                self.store, pipeline=q.get("pipeline"), status=q.get("status"), page=page
            ),
        )

    async def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return await self._render(request, "run.html", lambda: runs.run_detail(self.store, run_id))

    async def execution(self, request: Request) -> Response:
        execution_id = request.path_params["execution_id"]
        return await self._render(
            request, "execution.html", lambda: runs.execution_detail(self.store, execution_id)
        )

    async def artifact(self, request: Request) -> Response:
        artifact_id = request.path_params["artifact_id"]
        return await self._render(
            request, "artifact.html", lambda: artifacts.artifact_detail(self.store, artifact_id)
        )

    async def lineage(self, request: Request) -> Response:
        artifact_id = request.path_params["artifact_id"]
        return await self._render(
            request,
            "lineage.html",
            lambda: self.lineages.get(
                (artifact_id, store_version(self.store)),
                lambda: artifacts.lineage_detail(self.store, artifact_id, self.producers),
            ),
        )

    async def compare(self, request: Request) -> Response:
        q = request.query_params
        picked_runs, picked = q.getlist("run"), q.getlist("artifact")
        if len(picked_runs) == 2:
            return await self._render(
                request, "compare_runs.html", lambda: compare.compare_runs(self.store, *picked_runs)
            )
        if len(picked) == 2 and all(p.isdigit() for p in picked):
            ids = [int(p) for p in picked]
            return await self._render(
                request,
                "compare_artifacts.html",
                lambda: compare.compare_artifacts(self.store, *ids),
            )
        return self._error(
            request,
            400,
            "Pick two runs (?run=A&run=B) or two artifacts (?artifact=ID&artifact=ID) to compare.",
        )

    async def report(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse

        from conveyor import reports

        artifact_id = request.path_params["artifact_id"]
        try:
            artifact = artifacts.require_artifact(self.store, artifact_id)
            page = await run_in_threadpool(reports.render_html, artifact)
        except MetadataError as exc:
            return self._error(request, 404, str(exc))
        except ConveyorError as exc:
            return self._error(request, 422, str(exc))
        return HTMLResponse(page, headers=_HEADERS)

    async def artifact_file(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import FileResponse

        artifact_id, relative = request.path_params["artifact_id"], request.path_params["path"]
        try:
            artifact = await run_in_threadpool(artifacts.require_artifact, self.store, artifact_id)
            path = files.confined_file(artifact.uri, relative)
        except files.FileRefused as exc:
            return self._error(request, exc.status, str(exc))
        except MetadataError as exc:
            return self._error(request, 404, str(exc))
        text = path.name.endswith(_TEXT_FILES)
        kind = "text/plain; charset=utf-8" if text else "application/octet-stream"
        return FileResponse(path, media_type=kind, headers=_HEADERS)

    async def static(self, request: Request) -> Response:
        from starlette.responses import Response

        name = request.path_params["name"]
        if name not in _STATIC:
            return self._error(request, 404, f"No static file {name!r}.")
        package, kind = _STATIC[name]
        return Response(
            _static_text(package, name), media_type=kind, headers={"Cache-Control": "max-age=3600"}
        )

    async def _render(self, request: Request, template: str, read: Callable[[], Any]) -> Response:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse

        try:
            context = await run_in_threadpool(read)
        except MetadataError as exc:
            return self._error(request, 404, str(exc))
        html = environment().get_template(template).render(**context, path=request.url.path)
        return HTMLResponse(html, headers=_HEADERS)

    def _error(self, request: Request, status: int, message: str) -> Response:
        from starlette.responses import HTMLResponse

        html = (
            environment()
            .get_template("error.html")
            .render(status=status, message=message, path=request.url.path)
        )
        return HTMLResponse(html, status_code=status, headers=_HEADERS)


class _Memo:
    """The last ``size`` results by key (a thread may compute a result twice; both agree)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._found: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._found:
                return self._found[key]
        value = make()
        with self._lock:
            if len(self._found) >= self.size:
                self._found.pop(next(iter(self._found)))
            self._found[key] = value
        return value


def store_version(store: MetadataStore) -> tuple[Any, ...] | object:
    """What changes whenever an execution may have been added: the number of runs, the
    newest end, and the runs still going. While any run is going, every call is new."""
    found = store.runs()
    going = [r.run_id for r in found if r.status == "RUNNING"]
    if going:
        return object()
    ends = [r.properties.get("ended_at") or 0 for r in found]
    resumes = [r.properties.get("resumed_at") or 0 for r in found]
    return len(found), max(ends, default=0), max(resumes, default=0)


@functools.cache
def environment() -> jinja2.Environment:
    """The UI's templates, with the report templates behind them (shared macros, styles)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PackageLoader("conveyor.ui", "templates"),
                jinja2.PackageLoader("conveyor.reports", "templates"),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=formatting.number,
        clip=formatting.clip,
        when=when,
        seconds=seconds,
        bytes=size,
        pretty=pretty,
    )
    return env


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def size(count: int | None) -> str:
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def pretty(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, indent=2, sort_keys=True, default=str)
    )


@functools.cache
def _static_text(package: str, name: str) -> str:
    return resources.files(package).joinpath("static", name).read_text("utf-8")
