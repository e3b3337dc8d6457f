"""``conveyor compile``: turn a pipeline file into a definition another orchestrator runs.

Example::

    conveyor compile pipeline.py --target kfp -o pipeline.yaml --image registry/conveyor:0.1.0

Importing this module is cheap: the kfp SDK is imported when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TARGETS = ("kfp",)


def add_compile_command(commands: Any) -> None:
    """Add ``compile`` to the ``conveyor`` command's subparsers."""
    compile_ = commands.add_parser(
        "compile",
        help="write a pipeline as a Kubeflow Pipelines v2 definition",
        description=(
            "Write PIPELINE_FILE's pipeline for another orchestrator. --target kfp: a Kubeflow "
            "Pipelines v2 YAML in which every node is a container step running "
            "`python -m conveyor.entrypoint` (needs pip install 'conveyor[kfp]')."
        ),
    )
    compile_.add_argument("pipeline_file", metavar="PIPELINE_FILE", help="the pipeline file")
    compile_.add_argument("--target", choices=TARGETS, default="kfp", help="default: kfp")
    compile_.add_argument("-o", "--output", required=True, metavar="PATH", help="file to write")
    compile_.add_argument(
        "--image", metavar="IMAGE", help="the image steps run in (default: conveyor:VERSION)"
    )
    compile_.add_argument(
        "--source",
        metavar="PATH_OR_MODULE",
        help="the pipeline file's path inside the image, or a module name (default: "
        "PIPELINE_FILE as given)",
    )
    compile_.add_argument(
        "--metadata-url", metavar="URL", help="the metadata_url parameter's default"
    )
    compile_.add_argument(
        "--pipeline-root", metavar="URI", help="the pipeline_root parameter's default"
    )
    compile_.set_defaults(command=_compile)


def _compile(args: argparse.Namespace) -> int:
    from conveyor.cli.pipeline_file import load_pipeline
    from conveyor.orchestration.kubeflow import DEFAULT_IMAGE, compile_kfp

    path = Path(args.pipeline_file).expanduser()
    pipeline = load_pipeline(path.resolve())
    written = compile_kfp(
        pipeline,
        args.output,
        image=args.image or DEFAULT_IMAGE,
        source=args.source or args.pipeline_file,
        metadata_url=args.metadata_url,
        pipeline_root=args.pipeline_root,
    )
    print(f"Wrote {pipeline.name} ({len(pipeline.nodes)} steps) for Kubeflow to {written}")
    return 0
