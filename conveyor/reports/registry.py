"""Which artifact types have a report, and how each is drawn.

A :class:`ReportView` pairs an artifact type name with two functions: one that renders a
self-contained HTML page and one that builds a short terminal summary. A
:class:`ReportRegistry` holds views by type name; :func:`default_registry` is the one the
``conveyor show`` command reads, with the standard views registered on first use.

Example::

    from conveyor.reports import ReportView, default_registry

    default_registry().register(
        ReportView("TransformGraph", html=graph_page, summary=graph_table)
    )
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.io import filesystems as fsx
from conveyor.types import Artifact, ConveyorError

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["ReportRegistry", "ReportView", "default_registry"]


@dataclass(frozen=True)
class ReportView:
    """How artifacts of one type are shown.

    ``html(artifact)`` returns a whole HTML page that needs nothing from the network;
    ``summary(artifact)`` returns a rich renderable for the terminal (or None to show none).
    Both read the artifact's files and raise :class:`~conveyor.types.ConveyorError` when
    they cannot.
    """

    type_name: str
    html: Callable[[Artifact], str]
    summary: Callable[[Artifact], RenderableType | None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type_name, str) or not self.type_name:
            raise ConveyorError(
                f"The 'type_name' parameter of ReportView must be an artifact type name such "
                f"as 'Schema'. Got {self.type_name!r} instead."
            )
        if not callable(self.html):
            raise ConveyorError(
                f"The 'html' parameter of ReportView({self.type_name!r}) must be a function "
                f"of the artifact. Got {self.html!r} instead."
            )


class ReportRegistry:
    """Report views by artifact type name.

    Example::

        registry = ReportRegistry()
        registry.register(ReportView("Schema", html=schema_page))
        registry.render_html(schema_artifact)
    """

    def __init__(self, views: tuple[ReportView, ...] | list[ReportView] = ()) -> None:
        self._views: dict[str, ReportView] = {}
        for view in views:
            self.register(view)

    def register(self, view: ReportView, *, replace: bool = False) -> None:
        """Add ``view``; a second view for the same type is an error unless ``replace``."""
        if view.type_name in self._views and not replace:
            raise ConveyorError(
                f"A report view for {view.type_name} is already registered; pass replace=True "
                "to swap it."
            )
        self._views[view.type_name] = view

    def type_names(self) -> list[str]:
        return sorted(self._views)

    def has_report(self, type_name: str) -> bool:
        return type_name in self._views

    def view(self, type_name: str) -> ReportView:
        found = self._views.get(type_name)
        if found is None:
            known = ", ".join(self.type_names()) or "none"
            raise ConveyorError(
                f"There is no report for {type_name} artifacts; reports exist for: {known}."
            )
        return found

    def render_html(self, artifact: Artifact) -> str:
        """The artifact's report as one self-contained HTML page."""
        return self.view(artifact.type_name).html(artifact)

    def write_html(self, artifact: Artifact, path: str) -> str:
        """Render the report and write it to ``path`` (parent folders made); returns ``path``.

        Rendering happens before anything is written, so a failure leaves no partial file."""
        page = self.render_html(artifact)
        with fsx.open_file(str(path), "w", encoding="utf-8") as handle:
            handle.write(page)
        return str(path)

    def summary(self, artifact: Artifact) -> RenderableType | None:
        """A short terminal summary, or None when the type has no report or no summary."""
        view = self._views.get(artifact.type_name)
        if view is None or view.summary is None:
            return None
        return view.summary(artifact)


_DEFAULT: ReportRegistry | None = None


def default_registry() -> ReportRegistry:
    """The registry ``conveyor show`` uses: the standard views, built on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ReportRegistry(_standard_views())
    return _DEFAULT


def _standard_views() -> list[ReportView]:
    from conveyor.reports import anomalies, evaluation, schema, statistics

    return [
        ReportView("ExampleStatistics", html=statistics.html, summary=statistics.summary),
        ReportView("Schema", html=schema.html, summary=schema.summary),
        ReportView("ExampleAnomalies", html=anomalies.html, summary=anomalies.summary),
        ReportView("ModelEvaluation", html=evaluation.html, summary=evaluation.summary),
        ReportView(
            "ModelBlessing", html=evaluation.blessing_html, summary=evaluation.blessing_summary
        ),
    ]
