"""The penguin example with every framework: one pipeline, one shared ExampleGen → Transform
and a Trainer per framework; each bundle, loaded in a fresh process that has none of the
training code, predicts species names from raw rows and scores ≥ 0.9 on the raw eval split.

The pipeline runs in a child process, as ``conveyor run`` would: its runner forks an
execution per node, which must not happen in a test process that may already hold the
threads of PyTorch or JAX. Only the nodes up to the Trainers run: the fresh processes here
score the raw eval rows as the Evaluator would (``conveyor.load_model(uri).predict(rows)``),
and the main job's test runs the Evaluator, InfraValidator, Pusher and BulkInferrer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conveyor.cli.pipeline_file import load_pipeline
from conveyor.io import read_table
from conveyor.types import ConveyorError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "penguin"
PIPELINE = EXAMPLE / "pipeline.py"
CSV = EXAMPLE / "data" / "labelled" / "penguins_processed.csv"
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
SHARED = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform"]
#: framework (a Trainer module) -> the adapter its bundle names
ADAPTERS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "torch": "torch",
    "keras": "keras",
    "flax": "jax",
}

# Builds the pipeline with every framework up to the Trainers, runs it, reports each node as JSON.
RUN_PIPELINE = """
import importlib.util, json, sys
from conveyor import LocalRunner, Pipeline

path, frameworks, root, metadata_url, report = sys.argv[1:]
spec = importlib.util.spec_from_file_location("penguin_pipeline", path)
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
full = module.create_pipeline(frameworks.split(","), root=root, metadata_url=metadata_url)
training = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform")
nodes = [node for node in full.nodes if node.id in training or node.id.startswith("Trainer.")]
pipeline = Pipeline(full.name, nodes, root=root, metadata_url=metadata_url)
result = LocalRunner(display="none").run(pipeline)
nodes = {
    node_id: {
        "state": node.state,
        "error": node.error,
        "log": node.log_path,
        "outputs": {
            key: [{"uri": a.uri, "properties": a.properties} for a in artifacts]
            for key, artifacts in node.outputs.items()
        },
    }
    for node_id, node in result.nodes.items()
}
with open(report, "w") as handle:
    json.dump({"status": result.status, "message": result.message, "nodes": nodes}, handle)
"""

# What a user runs to serve a bundle: nothing of the example imported, only conveyor.
PREDICT = """
import json, sys
import conveyor

model = conveyor.load_model(sys.argv[1])
with open(sys.argv[2]) as handle:
    rows = json.load(handle)
print(json.dumps(model.predict(rows).tolist()))
"""


def typical_rows() -> tuple[list[dict[str, float]], list[str]]:
    """For each species, the raw row nearest its mean: any model worth keeping gets these
    right."""
    table = np.loadtxt(CSV, delimiter=",", skiprows=1)
    species, X = table[:, 0].astype(int), table[:, 1:]
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    rows = []
    for label in range(len(SPECIES)):
        members = np.flatnonzero(species == label)
        center = z[members].mean(axis=0)
        nearest = members[np.argmin(((z[members] - center) ** 2).sum(axis=1))]
        rows.append(dict(zip(FEATURES, X[nearest].tolist(), strict=True)))
    return rows, list(SPECIES)


def eval_rows(examples_uri: str) -> tuple[list[dict[str, float]], list[str]]:
    """The raw eval split CsvExampleGen wrote, without the label, and its species names."""
    table = read_table(examples_uri, "eval")
    rows = table.select(FEATURES).to_pylist()
    return rows, [SPECIES[label] for label in table.column("species").to_pylist()]


@pytest.fixture(scope="session")
def penguin_run(tmp_path_factory) -> dict:
    """The pipeline with all six frameworks, run once; then every bundle loaded in its own
    fresh process (all started at once) to predict the raw eval rows and typical rows."""
    tmp = tmp_path_factory.mktemp("penguin_frameworks")
    report = tmp / "run.json"
    command = [
        sys.executable, "-c", RUN_PIPELINE, str(PIPELINE), ",".join(ADAPTERS),
        str(tmp / "root"), f"sqlite:///{tmp}/metadata.db", str(report),
    ]  # fmt: skip
    env = {**os.environ, "CONVEYOR_HOME": str(tmp / "home")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    run = json.loads(report.read_text())
    if run["nodes"]["CsvExampleGen"]["state"] != "COMPLETE":
        return run

    examples_uri = run["nodes"]["CsvExampleGen"]["outputs"]["examples"][0]["uri"]
    rows, species = eval_rows(examples_uri)
    typical, typical_species = typical_rows()
    run["eval_species"], run["typical_species"] = species, typical_species
    rows_file = tmp / "rows.json"
    rows_file.write_text(json.dumps(rows + typical))
    serve_env = {k: v for k, v in env.items() if k != "KERAS_BACKEND"}  # the bundle says
    started = {}
    for framework in ADAPTERS:
        trainer = run["nodes"].get(f"Trainer.{framework}", {})
        if trainer.get("state") != "COMPLETE":
            continue
        uri = trainer["outputs"]["model"][0]["uri"]
        started[framework] = subprocess.Popen(
            [sys.executable, "-c", PREDICT, uri, str(rows_file)],
            env=serve_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    run["served"] = {}
    for framework, process in started.items():
        out, err = process.communicate(timeout=600)
        run["served"][framework] = (process.returncode, out, err)
    return run


def check_framework(run: dict, framework: str) -> None:
    trainer = run["nodes"][f"Trainer.{framework}"]
    assert trainer["state"] == "COMPLETE", (trainer["error"], trainer["log"])
    model = trainer["outputs"]["model"][0]["properties"]
    assert model["framework"] == ADAPTERS[framework]
    assert model["has_transform"] is True
    assert model["label"] == "species" and model["class_names"] == SPECIES
    assert model["features"] == [f"{name}_xf" for name in FEATURES]
    logged = trainer["outputs"]["model_run"][0]["properties"]["metrics"]
    assert logged["eval_accuracy"] >= 0.9  # what run_fn measured on the transformed eval split

    returncode, out, err = run["served"][framework]
    assert returncode == 0, err[-4000:]
    predicted = json.loads(out)
    species, typical = run["eval_species"], run["typical_species"]
    assert len(predicted) == len(species) + len(typical)
    assert set(predicted) <= set(SPECIES)
    on_eval = predicted[: len(species)]
    accuracy = np.mean([p == s for p, s in zip(on_eval, species, strict=True)])
    assert accuracy >= 0.9, f"{framework}: accuracy {accuracy:.3f} on the raw eval split"
    assert predicted[len(species) :] == typical


def test_penguin_frameworks_share_one_transform(penguin_run):
    assert penguin_run["status"] == "COMPLETE", penguin_run["message"]
    nodes = penguin_run["nodes"]
    expected = SHARED + [f"Trainer.{framework}" for framework in ADAPTERS]
    assert sorted(nodes) == sorted(expected)
    assert {nodes[node_id]["state"] for node_id in SHARED} == {"COMPLETE"}
    transform = nodes["Transform"]["outputs"]["transform_graph"][0]["properties"]
    assert sorted(transform["output_features"]) == sorted(
        [f"{name}_xf" for name in FEATURES] + ["species"]
    )


@pytest.mark.parametrize("framework", ["sklearn", "xgboost", "lightgbm", "torch", "keras"])
def test_penguin_framework_trains_and_serves(penguin_run, framework):
    check_framework(penguin_run, framework)


def test_penguin_jax_flax_trains_and_serves(penguin_run):
    check_framework(penguin_run, "flax")


def test_penguin_pipeline_framework_from_environment(monkeypatch):
    monkeypatch.setenv("FRAMEWORK", "torch, flax")
    ids = [node.id for node in load_pipeline(PIPELINE).nodes]
    shipped = ["LatestBlessedModel", "Evaluator", "InfraValidator", "Pusher", "BulkInferrer"]
    per_framework = [f"{node}.{each}" for each in ("torch", "flax")
                     for node in ("Trainer", *shipped)]  # fmt: skip
    assert ids == [*SHARED, "UnlabelledExampleGen", *per_framework]
    pushes = {load_pipeline(PIPELINE).node(f"Pusher.{each}").params["push_destination"]
              for each in ("torch", "flax")}  # fmt: skip
    assert len(pushes) == 2  # each framework's models go to their own folder
    monkeypatch.setenv("FRAMEWORK", "xgboost")
    pipeline = load_pipeline(PIPELINE)
    assert pipeline.name == "penguin-demo"
    assert pipeline.node("Trainer").params["module_file"].endswith("penguin_xgboost.py")


def test_penguin_pipeline_rejects_an_unknown_framework(monkeypatch):
    monkeypatch.setenv("FRAMEWORK", "tensorflow")
    with pytest.raises(ConveyorError, match="sklearn, xgboost, lightgbm, torch, flax, keras"):
        load_pipeline(PIPELINE)
