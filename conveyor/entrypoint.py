"""``python -m conveyor.entrypoint``: execute one node of a pipeline, the way each step of a
compiled Kubeflow pipeline does.

The node's inputs are the outputs its upstream nodes recorded in the same run; caching,
publishing and lineage are the local runner's (see :mod:`conveyor.orchestration.step`).
Exit status: 0 the node completed (or came from the cache), 1 it failed, 2 a usage,
pipeline or metadata error.

Example::

    python -m conveyor.entrypoint examples/penguin/pipeline.py --node Trainer \\
        --run-id 20240601-120000-a1b2c3 \\
        --metadata-url postgresql://md/conveyor --pipeline-root s3://bucket/penguin
    python -m conveyor.entrypoint mypackage.pipeline --node Trainer --run-id ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from conveyor.types import ConveyorError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m conveyor.entrypoint",
        description="Execute one node of a pipeline as part of a run, and record it.",
    )
    parser.add_argument(
        "pipeline",
        metavar="PIPELINE",
        help="a pipeline file (path ending in .py) or an importable module name; it defines "
        "`pipeline` or `create_pipeline()`",
    )
    parser.add_argument("--node", required=True, metavar="NODE_ID", help="the node to execute")
    parser.add_argument("--run-id", required=True, metavar="RUN_ID", help="the run it belongs to")
    parser.add_argument("--metadata-url", metavar="URL", help="the metadata store")
    parser.add_argument(
        "--pipeline-root", metavar="URI", help="where artifacts go (a folder or fsspec URI)"
    )
    parser.add_argument("--no-cache", action="store_true", help="execute even on a cache hit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _execute(args)
    except ConveyorError as exc:
        print(f"conveyor.entrypoint: error: {exc}", file=sys.stderr)
        return 2


def load(pipeline: str):
    """The pipeline a file path or a module name defines."""
    from conveyor.cli.pipeline_file import load_pipeline, load_pipeline_module

    path = Path(pipeline).expanduser()
    if pipeline.endswith(".py") or path.exists():
        return load_pipeline(path.resolve())
    return load_pipeline_module(pipeline)


def _execute(args: argparse.Namespace) -> int:
    from conveyor.orchestration.step import run_step

    pipeline = load(args.pipeline)
    if args.metadata_url:
        pipeline.metadata_url = args.metadata_url
    if args.pipeline_root:
        root = args.pipeline_root
        pipeline.root = root if "://" in root else str(Path(root).expanduser().resolve())
    result = run_step(
        pipeline,
        args.node,
        args.run_id,
        enable_cache=False if args.no_cache else None,
        log_to=sys.stdout,  # where a container's log collector looks
    )
    where = f"execution {result.execution_id}" if result.execution_id else "no execution"
    print(f"{pipeline.name} {args.run_id} {result.node_id}: {result.state} ({where})")
    if not result.ok:
        print(f"{result.node_id} failed: {result.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
