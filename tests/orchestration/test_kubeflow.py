"""``conveyor compile --target kfp``: the penguin pipeline as a Kubeflow Pipelines v2
definition that the kfp SDK loads back, one container step per node, wired as the DAG; one
of its steps, run here as KFP would run it, records its execution."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.cli.main import main
from conveyor.cli.pipeline_file import load_pipeline
from conveyor.metadata import MetadataStore
from conveyor.orchestration.kubeflow import DEFAULT_IMAGE, compile_kfp
from conveyor.types import ConveyorError

kfp_components = pytest.importorskip("kfp.components")

PENGUIN = Path(__file__).resolve().parents[2] / "examples" / "penguin" / "pipeline.py"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[Path, dict]:
    """The penguin pipeline compiled by the command line, and its spec as loaded by kfp."""
    out = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    argv = ["compile", str(PENGUIN), "--target", "kfp", "-o", str(out), "--image", "reg/cv:1"]
    assert main(argv) == 0
    component = kfp_components.load_component_from_file(str(out))
    from google.protobuf.json_format import MessageToDict

    return out, MessageToDict(component.pipeline_spec)


def test_compile_kfp_has_one_step_per_node_wired_as_the_dag(compiled):
    _, spec = compiled
    pipeline = load_pipeline(PENGUIN)
    tasks = spec["root"]["dag"]["tasks"]
    by_node = {t["taskInfo"]["name"]: t for t in tasks.values()}
    assert sorted(by_node) == sorted(n.id for n in pipeline.nodes)
    name_of = {t["taskInfo"]["name"]: key for key, t in tasks.items()}
    for node in pipeline.nodes:
        wanted = sorted(name_of[u.id] for u in node.upstream_nodes)
        assert sorted(by_node[node.id].get("dependentTasks", [])) == wanted, node.id
    assert by_node["Evaluator"]["dependentTasks"]  # Trainer, Resolver, ExampleGen at least


def test_compile_kfp_steps_run_the_entrypoint_in_the_image(compiled):
    _, spec = compiled
    executors = spec["deploymentSpec"]["executors"]
    tasks = spec["root"]["dag"]["tasks"]
    for task in tasks.values():
        component = spec["components"][task["componentRef"]["name"]]
        container = executors[component["executorLabel"]]["container"]
        assert container["image"] == "reg/cv:1"
        assert container["command"] == ["python", "-m", "conveyor.entrypoint"]
        args = container["args"]
        assert args[0] == str(PENGUIN)
        assert args[args.index("--node") + 1] == task["taskInfo"]["name"]
        assert task["inputs"]["parameters"]["run_id"]["runtimeValue"]["constant"] == (
            "{{$.pipeline_job_uuid}}"
        )
        assert task["cachingOptions"] == {}  # KFP's cache off: the metadata store caches
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert sorted(parameters) == ["metadata_url", "pipeline_root"]
    assert all(p["parameterType"] == "STRING" for p in parameters.values())


def test_compile_kfp_step_runs_locally_as_kfp_would(compiled, tmp_path):
    _, spec = compiled
    [task] = [t for t in spec["root"]["dag"]["tasks"].values()
              if t["taskInfo"]["name"] == "CsvExampleGen"]  # fmt: skip
    label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
    container = spec["deploymentSpec"]["executors"][label]["container"]
    url = f"sqlite:///{tmp_path}/md.db"
    values = {"run_id": "job-1", "metadata_url": url, "pipeline_root": str(tmp_path / "root")}
    args = [re.sub(r"\{\{\$\.inputs\.parameters\['(\w+)'\]\}\}", lambda m: values[m[1]], a)
            for a in container["args"]]  # fmt: skip
    command = [sys.executable, *container["command"][1:], *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    store = MetadataStore(url)
    try:
        [execution] = store.executions(run_id="job-1")
        [examples] = store.artifacts(run_id="job-1")
    finally:
        store.close()
    assert (execution.node_id, execution.state) == ("CsvExampleGen", "COMPLETE")
    assert examples.uri.startswith(str(tmp_path / "root"))
    assert sorted(p.name for p in Path(examples.uri).iterdir()) == ["Split-eval", "Split-train"]


def test_compile_kfp_defaults_and_refusals(tmp_path, caplog):
    pipeline = load_pipeline(PENGUIN)
    out = compile_kfp(
        pipeline,
        tmp_path / "p.yaml",
        source="penguin_pipeline",
        metadata_url="postgresql://md/conveyor",
        pipeline_root="s3://b/p",
    )
    text = Path(out).read_text()
    assert f"image: {DEFAULT_IMAGE}" in text and "- penguin_pipeline" in text
    assert "defaultValue: postgresql://md/conveyor" in text and "defaultValue: s3://b/p" in text
    assert "local to one machine" not in caplog.text
    compile_kfp(pipeline, tmp_path / "local.yaml")
    assert "local to one machine" in caplog.text and "--metadata-url" in caplog.text
    with pytest.raises(ConveyorError, match="'image' parameter of compile_kfp"):
        compile_kfp(pipeline, tmp_path / "q.yaml", image="")


def test_compile_kfp_without_the_sdk_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kfp", None)
    with pytest.raises(ConveyorError, match=r"pip install 'conveyor\[kfp\]'"):
        compile_kfp(load_pipeline(PENGUIN), tmp_path / "p.yaml")


def test_compile_kfp_requests_the_nodes_resources(tmp_path):
    from conveyor import Output, Pipeline, component
    from conveyor.types import Model

    @component
    def Train(model: Output[Model]):
        pass

    heavy = (
        Train()
        .with_id("Heavy")
        .with_options(resources={"num_cpus": 2.5, "memory": 2**30, "num_gpus": 1})
    )
    plain = Train().with_id("Plain")
    pipeline = Pipeline("sized", [heavy, plain], root=tmp_path / "root")
    out = compile_kfp(pipeline, tmp_path / "sized.yaml", source="/app/sized.py")
    from google.protobuf.json_format import MessageToDict

    spec = MessageToDict(kfp_components.load_component_from_file(out).pipeline_spec)
    containers = {
        task["taskInfo"]["name"]: spec["deploymentSpec"]["executors"][
            spec["components"][task["componentRef"]["name"]]["executorLabel"]
        ]["container"]
        for task in spec["root"]["dag"]["tasks"].values()
    }
    resources = containers["Heavy"]["resources"]
    assert resources["resourceCpuRequest"] == "2500m"
    assert resources["resourceMemoryRequest"] == str(2**30)
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "1"
    assert "resources" not in containers["Plain"]

    half = Train().with_id("Half").with_options(resources={"num_gpus": 0.5})
    with pytest.raises(ConveyorError, match="whole GPUs"):
        compile_kfp(Pipeline("half", [half], root=tmp_path / "r"), tmp_path / "h.yaml",
                    source="/app/h.py")  # fmt: skip
