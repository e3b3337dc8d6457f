"""The Evaluator's data-parallel pass with Ray Data on a real two-node cluster (a head and a
worker node, separate processes on loopback): under the Ray runner it evaluates each block
of a split on the workers and gives the local runner's metrics; a ``predict_fn`` travels
to the workers, or the split stays in the component's process when it cannot."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest

from conveyor import Input, Output, Param, Pipeline, component
from conveyor.components import Evaluator
from conveyor.evaluation import EvalConfig, SlicingSpec, evaluate
from conveyor.io import distributed, read_table
from conveyor.io.writers import ExamplesWriter
from conveyor.types import Examples, Model

# Ray reads this when imported: set first, a cluster started here stays on loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.cluster_utils")

PENGUINS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "penguin"
FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
SLICES = [SlicingSpec(feature_keys=keys) for keys in ([], ["colony"], ["species", "colony"])]
METRICS = "accuracy f1_macro log_loss brier_score roc_auc pr_auc calibration confusion_matrix"
CONFIG = EvalConfig(label_key="species", slicing_specs=SLICES, metrics=METRICS.split())


@component
def PenguinRows(examples: Output[Examples]):
    """About 1,340 penguin rows (a colony column added) in files of 200 rows: several Ray
    Data blocks in the eval split."""
    table = pcsv.read_csv(PENGUINS / "penguins_processed.csv")
    parts = []
    for copy in range(4):
        shifted = table.set_column(1, "culmen_length_mm",
                                   pc.add(table["culmen_length_mm"], copy * 0.01))  # fmt: skip
        colony = [f"colony-{(i * 7 + copy) % 5}" for i in range(table.num_rows)]
        parts.append(shifted.append_column("colony", pa.array(colony)))
    rows = pa.concat_tables(parts)
    splits = {"train": rows.slice(0, 500), "eval": rows.slice(500)}
    with ExamplesWriter(examples.uri, list(splits), rows.schema, rows_per_file=200) as writer:
        for name, part in splits.items():
            for batch in part.to_batches(max_chunksize=200):
                writer.write(name, batch)
    examples.properties.update(writer.properties())


@component
def PenguinModel(examples: Input[Examples], model: Output[Model], strength: Param[float] = 1.0):
    """A logistic regression on the raw features (``strength``: its C)."""
    from sklearn.linear_model import LogisticRegression

    from conveyor.frameworks import save_model

    train = read_table(examples, "train")
    X = np.column_stack([train[name].to_numpy() for name in FEATURES])
    fitted = LogisticRegression(C=strength, max_iter=500).fit(X, train["species"].to_numpy())
    save_model(fitted, model.uri, features=FEATURES, label="species", class_names=CLASSES)


def evaluation_pipeline(folder: Path, name: str, metadata_url: str) -> Pipeline:
    rows = PenguinRows()
    model = PenguinModel(examples=rows.outputs["examples"])
    weak = PenguinModel(examples=rows.outputs["examples"], strength=0.001).with_id("Weak")
    evaluator = Evaluator(examples=rows.outputs["examples"], model=model.outputs["model"],
                          baseline_model=weak.outputs["model"], eval_config=CONFIG)  # fmt: skip
    nodes = [rows, model, weak, evaluator]
    return Pipeline(name, nodes, root=folder / "root", metadata_url=metadata_url)


@pytest.fixture(scope="module")
def cluster(two_node_cluster):
    """A head and a worker node; Ray Data passes forced for splits of any size."""
    with two_node_cluster(ray_data_always=True) as (cluster, _):
        yield cluster


@pytest.fixture(scope="module")
def runs(cluster, postgres_url, tmp_path_factory, local_and_ray):
    """The same pipeline by the local runner and by the Ray runner on the cluster."""
    tmp = tmp_path_factory.mktemp("ray_data_eval")
    return local_and_ray(evaluation_pipeline, tmp, "eval", cluster, postgres_url)


def output(result, node: str, key: str):
    return result[node].outputs[key][0]


def saved(result, name: str) -> dict:
    """An evaluation file, without the models' URIs (each run has its own root)."""
    found = json.loads(Path(output(result, "Evaluator", "evaluation").uri, name).read_text())
    return {k: v for k, v in found.items() if k not in ("model_uri", "baseline_uri")}


def test_ray_data_evaluator_gives_the_local_runners_metrics(assert_same, runs):
    by_local, by_ray = runs
    assert_same(saved(by_ray, "metrics.json"), saved(by_local, "metrics.json"), rel=1e-12)
    assert_same(saved(by_ray, "diff.json"), saved(by_local, "diff.json"), rel=1e-12)
    # plot points are rounded to 5 digits: the last may differ
    assert_same(saved(by_ray, "plots.json"), saved(by_local, "plots.json"), rel=1e-12, abs=1e-5)
    ours = output(by_ray, "Evaluator", "evaluation").properties
    theirs = output(by_local, "Evaluator", "evaluation").properties
    assert ours["engine"] == "ray-data" and ours["ray_data_splits"] == ["eval"]
    assert "engine" not in theirs
    assert ours["num_examples"] == theirs["num_examples"] == {"eval": 836}
    assert ours["num_slices"] == theirs["num_slices"] > 10
    assert ours["blessed"] == theirs["blessed"]


# ---------------------------------------------------------------------- a predict_fn
@pytest.fixture
def on_cluster(cluster, monkeypatch):
    """This process, as a component's under the Ray runner: every local path shared."""
    monkeypatch.setenv(distributed.ADDRESS_ENV, cluster.address)
    monkeypatch.setenv(distributed.SHARED_PATHS_ENV, os.sep)


@pytest.fixture(scope="module")
def penguin_model(runs):
    by_local, _ = runs
    return (output(by_local, "PenguinRows", "examples").uri,
            output(by_local, "PenguinModel", "model").uri)  # fmt: skip


def test_ray_data_evaluator_sends_a_predict_fn_to_the_workers(
    assert_same, on_cluster, penguin_model
):
    from conveyor.components._ray_data_eval import EvalOnCluster

    examples, model = penguin_model

    def predict_fn(bundle, batch):  # pickled by value: a closure
        return {"probabilities": bundle.predict_proba(batch.select(FEATURES).to_pandas())}

    here = evaluate(examples, model, CONFIG, predict_fn=predict_fn)
    split_pass = EvalOnCluster()
    there = evaluate(examples, model, CONFIG, predict_fn=predict_fn, split_pass=split_pass)
    assert split_pass.splits == ["eval"]
    for a, b in zip(there.candidate, here.candidate, strict=True):
        assert a.slice == b.slice
        assert_same(a.metrics, b.metrics, rel=1e-12)


def test_ray_data_evaluator_keeps_an_unpicklable_predict_fn_here(on_cluster, penguin_model, caplog):
    from conveyor.components._ray_data_eval import EvalOnCluster

    examples, model = penguin_model
    lock = threading.Lock()

    def predict_fn(bundle, batch):
        with lock:
            return bundle.predict_proba(batch.select(FEATURES).to_pandas())

    split_pass = EvalOnCluster()
    with caplog.at_level(logging.INFO, logger="conveyor.components._ray_data_eval"):
        found = evaluate(examples, model, CONFIG, predict_fn=predict_fn, split_pass=split_pass)
    assert split_pass.splits == []
    assert "predict_fn predict_fn cannot be pickled" in caplog.text
    assert found.num_examples == {"eval": 836}
