"""Compile a pipeline into a Kubeflow Pipelines v2 definition (needs ``pip install
conveyor[kfp]``).

Every node becomes a container step that runs ``python -m conveyor.entrypoint`` on that
node (see :mod:`conveyor.entrypoint`): the step finds its inputs in the metadata store,
reuses the cache, publishes its outputs under the pipeline root and records its lineage,
as the local runner would. Steps depend on each other as the nodes do. The metadata URL
and the pipeline root are pipeline parameters; the run id is the KFP job's id.

Example::

    compile_kfp(pipeline, "pipeline.yaml", image="registry.example.com/conveyor:0.1.0",
                source="/app/pipeline.py")
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from conveyor import __version__
from conveyor.dsl import Node, Pipeline
from conveyor.types import ConveyorError

__all__ = ["DEFAULT_IMAGE", "compile_kfp"]

#: The image ``docker build -t conveyor:VERSION .`` makes from the repository's Dockerfile.
DEFAULT_IMAGE = f"conveyor:{__version__}"
ENTRYPOINT = ["python", "-m", "conveyor.entrypoint"]

logger = logging.getLogger(__name__)


def compile_kfp(
    pipeline: Pipeline,
    package_path: str | Path,
    *,
    image: str = DEFAULT_IMAGE,
    source: str | None = None,
    metadata_url: str | None = None,
    pipeline_root: str | None = None,
) -> str:
    """Write ``pipeline`` as a KFP v2 pipeline definition (YAML) to ``package_path``.

    ``image``: the image every step runs in (a container component's own ``image`` wins).
    ``source``: the pipeline file's path inside the image, or an importable module name
    (default: the pipeline's source file as it is here). ``metadata_url`` and
    ``pipeline_root``: the parameters' defaults (default: the pipeline's own); a run can set
    others. Returns ``package_path``.
    """
    kfp_dsl, compiler = _import_kfp()
    source = source or pipeline.source_file
    if not source:
        raise ConveyorError(
            f"Pipeline {pipeline.name} was not defined in a file, so its steps cannot load it. "
            "Pass source= the pipeline file's path inside the image, or a module name."
        )
    if not isinstance(image, str) or not image:
        raise ConveyorError(f"The 'image' parameter of compile_kfp must be a non-empty string. "
                            f"Got {image!r} instead.")  # fmt: skip
    _check_names(pipeline)
    steps = {node.id: _step(kfp_dsl, node, image, source) for node in pipeline.order}
    metadata_url = metadata_url or pipeline.metadata_url
    pipeline_root = pipeline_root or pipeline.root
    if metadata_url.startswith("sqlite") or "://" not in pipeline_root:
        logger.warning(
            "The compiled pipeline's default metadata_url (%s) or pipeline_root (%s) is local "
            "to one machine, while each Kubeflow step runs in its own pod: give a run a "
            "PostgreSQL URL and an object store or shared volume (or compile with "
            "--metadata-url and --pipeline-root).",
            metadata_url,
            pipeline_root,
        )
    function = _pipeline_function(kfp_dsl, pipeline, steps, metadata_url, pipeline_root)
    definition = kfp_dsl.pipeline(
        name=_kfp_name(pipeline.name), description=f"Conveyor pipeline {pipeline.name}"
    )(function)
    compiler.Compiler().compile(definition, str(package_path))
    return str(package_path)


def _pipeline_function(
    kfp_dsl: Any, pipeline: Pipeline, steps: dict[str, Any], metadata_url: str, root: str
) -> Any:
    """The function ``kfp.dsl.pipeline`` turns into the DAG: one task per node."""

    def kfp_pipeline(metadata_url: str = metadata_url, pipeline_root: str = root):
        tasks: dict[str, Any] = {}
        for node in pipeline.order:
            task = steps[node.id](
                run_id=kfp_dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                metadata_url=metadata_url,
                pipeline_root=pipeline_root,
            )
            task.set_display_name(node.id)
            task.set_caching_options(False)  # the metadata store caches; KFP must not
            if node.retries:
                task.set_retry(node.retries, backoff_duration=f"{int(node.retry_backoff)}s")
            _request_resources(task, node.resources)
            for up in node.upstream_nodes:
                task.after(tasks[up.id])
            tasks[node.id] = task

    kfp_pipeline.__name__ = _identifier(pipeline.name)
    # kfp reads parameter types from real annotations, not the strings this module's
    # `from __future__ import annotations` leaves.
    kfp_pipeline.__annotations__ = dict.fromkeys(("metadata_url", "pipeline_root"), str)
    return kfp_pipeline


def _request_resources(task: Any, resources: dict[str, float]) -> None:
    """The node's ``resources`` as the pod's requests: CPUs (in millicores), memory (bytes)
    and NVIDIA GPUs (a whole number, as a limit: Kubernetes has no GPU requests)."""
    if "num_cpus" in resources:
        task.set_cpu_request(f"{round(resources['num_cpus'] * 1000)}m")
    if "memory" in resources:
        task.set_memory_request(str(int(resources["memory"])))
    gpus = resources.get("num_gpus", 0)
    if gpus:
        if gpus != int(gpus):
            raise ConveyorError(
                f"Kubernetes gives a pod whole GPUs, but a node asks for num_gpus={gpus:g}. "
                "Ask for a whole number in with_options(resources=...)."
            )
        task.set_accelerator_type("nvidia.com/gpu")
        task.set_accelerator_limit(int(gpus))


def _step(kfp_dsl: Any, node: Node, image: str, source: str) -> Any:
    """A KFP container component that runs ``node`` through the entrypoint."""
    step_image = getattr(node.component, "image", None) or image

    def step(run_id: str, metadata_url: str, pipeline_root: str):
        return kfp_dsl.ContainerSpec(
            image=step_image,
            command=ENTRYPOINT,
            args=[source, "--node", node.id, "--run-id", run_id,
                  "--metadata-url", metadata_url, "--pipeline-root", pipeline_root],
        )  # fmt: skip

    step.__name__ = _identifier(node.id)
    step.__annotations__ = dict.fromkeys(("run_id", "metadata_url", "pipeline_root"), str)
    return kfp_dsl.container_component(step)


def _identifier(name: str) -> str:
    """KFP names components after their function: keep to characters a name may hold."""
    return "".join(c if c.isalnum() else "_" for c in name).lower()


def _check_names(pipeline: Pipeline) -> None:
    seen: dict[str, str] = {}
    for node in pipeline.order:
        other = seen.setdefault(_identifier(node.id), node.id)
        if other != node.id:
            raise ConveyorError(
                f"Nodes {other} and {node.id} of pipeline {pipeline.name} get the same Kubeflow "
                "task name (names are lower-cased, other characters become '_'). Rename one "
                "with .with_id('...')."
            )


def _kfp_name(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).lower()


def _import_kfp() -> tuple[Any, Any]:
    try:
        from kfp import compiler
        from kfp import dsl as kfp_dsl
    except ImportError as exc:
        raise ConveyorError(
            f"Compiling for Kubeflow Pipelines needs the kfp SDK, which is not installed "
            f"({exc}). Install it with: pip install 'conveyor[kfp]'"
        ) from None
    return kfp_dsl, compiler
