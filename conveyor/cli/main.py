"""The ``conveyor`` command: run pipelines, read their metadata, collect garbage.

Example::

    conveyor run pipeline.py --max-workers 4
    conveyor compile pipeline.py --target kfp -o pipeline.yaml
    conveyor runs --pipeline penguin
    conveyor executions 20240601-120000-a1b2c3 --json
    conveyor lineage 42
    conveyor show 42 --html stats.html
    conveyor gc --keep-last 5 --dry-run
    conveyor ui --port 8080

Importing this module stays cheap: rich, SQLAlchemy and the runner are imported by the
command that needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor import __version__
from conveyor.types import ARTIFACT_STATES, ConveyorError

if TYPE_CHECKING:
    from rich.console import Console

    from conveyor.metadata import MetadataStore

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status:
    0 done, 1 the pipeline run FAILED (or gc could not remove some files), 2 a usage,
    pipeline-file or metadata error."""
    args = build_parser().parse_args(argv)
    try:
        return args.command(args)
    except ConveyorError as exc:
        print(f"conveyor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conveyor: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor",
        description="Run ML pipelines and read what they made.",
    )
    parser.add_argument("--version", action="version", version=f"conveyor {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--metadata-url",
        metavar="URL",
        help="the metadata store (default: $CONVEYOR_METADATA_URL, else SQLite in $CONVEYOR_HOME)",
    )
    reader = argparse.ArgumentParser(add_help=False, parents=[store])
    reader.add_argument("--json", action="store_true", help="print JSON for machines")

    _add_run(commands)
    from conveyor.cli.serve import add_serve_command

    add_serve_command(commands)
    from conveyor.cli.compile import add_compile_command

    add_compile_command(commands)

    runs = commands.add_parser("runs", parents=[reader], help="list runs, newest first")
    runs.add_argument("--pipeline", metavar="NAME", help="only this pipeline's runs")
    runs.add_argument("--limit", type=int, metavar="N", help="at most N runs")
    runs.set_defaults(command=_runs)

    executions = commands.add_parser(
        "executions", parents=[reader], help="the executions of one run"
    )
    executions.add_argument("run_id", metavar="RUN_ID")
    executions.set_defaults(command=_executions)

    artifacts = commands.add_parser("artifacts", parents=[reader], help="list artifacts")
    artifacts.add_argument("--type", metavar="T", help="artifact type, e.g. Model")
    artifacts.add_argument("--run", metavar="RUN_ID", help="only those this run produced")
    artifacts.add_argument("--pipeline", metavar="NAME", help="only those this pipeline produced")
    artifacts.add_argument(
        "--state",
        type=str.upper,
        choices=ARTIFACT_STATES,
        metavar="S",
        help=f"one of {', '.join(ARTIFACT_STATES)}",
    )
    artifacts.set_defaults(command=_artifacts)

    lineage = commands.add_parser(
        "lineage", parents=[reader], help="what made an artifact, and what was made from it"
    )
    lineage.add_argument("artifact_id", type=int, metavar="ARTIFACT_ID")
    lineage.set_defaults(command=_lineage)

    show = commands.add_parser(
        "show",
        parents=[reader],
        help="one artifact: properties, producer, consumers, files, and a report of its contents",
    )
    show.add_argument("artifact_id", type=int, metavar="ARTIFACT_ID")
    show.add_argument(
        "--html",
        nargs="?",
        const="",
        metavar="PATH",
        help="write the artifact's HTML report to PATH (default: TYPE-ID.html here)",
    )
    show.add_argument(
        "--open", action="store_true", help="open the HTML report in a browser (implies --html)"
    )
    show.set_defaults(command=_show)

    gc = commands.add_parser(
        "gc", parents=[reader], help="delete the files of artifacts no recent run needs"
    )
    gc.add_argument(
        "--keep-last",
        type=int,
        required=True,
        metavar="N",
        help="keep everything the last N runs of each pipeline read or wrote",
    )
    gc.add_argument("--pipeline", metavar="NAME", help="collect this pipeline only")
    gc.add_argument("--dry-run", action="store_true", help="say what would go; delete nothing")
    gc.set_defaults(command=_gc)

    ui = commands.add_parser(
        "ui", parents=[store], help="browse runs, artifacts and lineage in a web browser"
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0: any free one)")
    ui.set_defaults(command=_ui)
    return parser


def _add_run(commands: Any) -> None:
    run = commands.add_parser("run", help="run a pipeline defined in a Python file")
    run.add_argument(
        "pipeline_file",
        metavar="PIPELINE_FILE",
        help="a Python file with a module-level `pipeline` or a `create_pipeline()` function",
    )
    run.add_argument("--max-workers", type=int, metavar="N", help="executions at once")
    run.add_argument("--no-cache", action="store_true", help="re-execute every node")
    run.add_argument("--from", dest="from_node", metavar="NODE", help="start at NODE")
    run.add_argument("--to", dest="to_node", metavar="NODE", help="stop after NODE")
    run.add_argument("--only", metavar="NODE", help="run NODE alone, on its inputs' latest outputs")
    run.add_argument("--resume", metavar="RUN_ID", help="continue a failed run")
    run.add_argument(
        "--metadata-url",
        metavar="URL",
        help="the metadata store (default: $CONVEYOR_METADATA_URL, else the pipeline's own)",
    )
    run.add_argument("--root", metavar="DIR", help="where artifacts go (default: the pipeline's)")
    run.add_argument(
        "--runner",
        choices=("local", "ray"),
        default="local",
        help="where executions run: processes on this machine (default) or Ray tasks",
    )
    run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --runner ray: 'auto', 'ray://HOST:10001' or HOST:PORT (default: a local "
        "Ray instance for the run)",
    )
    run.add_argument(
        "--shared-root",
        action="store_true",
        help="with --runner ray: --root is a folder every node of the cluster mounts",
    )
    run.set_defaults(command=_run)


# ---------------------------------------------------------------------- run
def _run(args: argparse.Namespace) -> int:
    from conveyor.cli.pipeline_file import load_pipeline, resume_command
    from conveyor.orchestration.local_runner import new_run_id

    path = Path(args.pipeline_file).expanduser().resolve()
    pipeline = load_pipeline(path)
    metadata_url = args.metadata_url or os.environ.get("CONVEYOR_METADATA_URL")
    if metadata_url:
        pipeline.metadata_url = metadata_url
    root = None
    if args.root:
        root = args.root if "://" in args.root else str(Path(args.root).expanduser().resolve())
        pipeline.root = root
    # Resume commands name the file the user ran, even when create_pipeline() lives in a
    # module that file imports.
    pipeline.source_file = str(path)

    run_id = args.resume or new_run_id()
    hint = resume_command(path, run_id, metadata_url=args.metadata_url, root=root)
    runner = _runner(args)
    result = runner.run(
        pipeline,
        enable_cache=False if args.no_cache else None,
        from_node=args.from_node,
        to_node=args.to_node,
        only=args.only,
        resume=args.resume,
        run_id=run_id,
        resume_hint=hint + runner.cli_options(),
    )
    return 0 if result.ok else 1


def _runner(args: argparse.Namespace) -> Any:
    from conveyor.orchestration import LocalRunner, RayRunner

    if args.runner == "ray":
        return RayRunner(
            args.ray_address, max_workers=args.max_workers, shared_root=args.shared_root
        )
    if args.ray_address or args.shared_root:
        raise ConveyorError("--ray-address and --shared-root go with --runner ray.")
    return LocalRunner(args.max_workers)


# ---------------------------------------------------------------------- reading
def _runs(args: argparse.Namespace) -> int:
    from conveyor.cli import tables, views

    if args.limit is not None and args.limit < 1:
        raise ConveyorError(f"--limit must be at least 1. Got {args.limit} instead.")
    with _store(args) as store:
        runs = [views.run_view(r) for r in store.runs(args.pipeline, limit=args.limit)]
    return _emit(args, runs, lambda console: tables.render_runs(console, runs))


def _executions(args: argparse.Namespace) -> int:
    from conveyor.cli import tables, views

    with _store(args) as store:
        run = views.run_view(views.require_run(store, args.run_id))
        executions = [views.execution_view(e) for e in store.executions(run_id=args.run_id)]
    return _emit(
        args, executions, lambda console: tables.render_executions(console, run, executions)
    )


def _artifacts(args: argparse.Namespace) -> int:
    from conveyor.cli import tables, views

    with _store(args) as store:
        if args.run is not None:
            views.require_run(store, args.run)
        found = store.artifacts(
            type_name=args.type,
            run_id=args.run,
            pipeline=args.pipeline,
            states=[args.state] if args.state else None,
        )
        artifacts = views.artifact_views(store, found)
    return _emit(args, artifacts, lambda console: tables.render_artifacts(console, artifacts))


def _lineage(args: argparse.Namespace) -> int:
    from conveyor.cli import tables, views
    from conveyor.metadata import lineage

    with _store(args) as store:
        view = views.lineage_view(store, lineage(store, args.artifact_id))
    return _emit(args, view, lambda console: tables.render_lineage(console, view))


def _show(args: argparse.Namespace) -> int:
    from conveyor.cli import tables, views

    with _store(args) as store:
        view = views.show_view(store, args.artifact_id)
        artifact = store.get_artifact(args.artifact_id)
    if args.html is not None or args.open:
        view["report"] = views.write_report(artifact, view, args.html or None)
        if args.open:
            import webbrowser

            webbrowser.open(Path(view["report"]).as_uri())
    return _emit(args, view, lambda console: tables.render_show(console, view, artifact))


def _gc(args: argparse.Namespace) -> int:
    from conveyor.cli import tables, views
    from conveyor.orchestration.gc import collect_garbage

    with _store(args) as store:
        report = collect_garbage(
            store, args.keep_last, pipeline=args.pipeline, dry_run=args.dry_run
        )
    view = views.gc_view(report)
    _emit(args, view, lambda console: tables.render_gc(console, view))
    return 1 if report.errors else 0


def _ui(args: argparse.Namespace) -> int:
    from conveyor.ui import serve

    serve(args.metadata_url, host=args.host, port=args.port)
    return 0


# ---------------------------------------------------------------------- helpers
@contextmanager
def _store(args: argparse.Namespace) -> Iterator[MetadataStore]:
    """The metadata store named by ``--metadata-url``, closed on the way out."""
    from conveyor.metadata import MetadataStore

    store = MetadataStore(args.metadata_url)
    try:
        yield store
    finally:
        store.close()


def _emit(args: argparse.Namespace, data: Any, render: Callable[[Console], None]) -> int:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        from rich.console import Console

        render(Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
