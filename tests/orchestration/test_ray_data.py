"""Data-parallel passes with Ray Data on a real two-node cluster (a head and a worker node,
separate processes on loopback): StatisticsGen, Transform and BulkInferrer under the Ray
runner give what the local runner gives, and the map-reduce and map-write helpers."""

from __future__ import annotations

import json
import operator
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from google.protobuf.json_format import MessageToDict

from conveyor import Output, Pipeline, RayRunner, component
from conveyor.components import BulkInferrer, StatisticsGen, Trainer, Transform
from conveyor.io import distributed, open_examples, read_table
from conveyor.io.writers import ExamplesWriter
from conveyor.types import ConveyorError, Examples

# Ray reads this when imported: set first, a cluster started here stays on loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.cluster_utils")

PENGUINS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "penguin"

TRANSFORM_MODULE = """
import conveyor.transform as tft

FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]


def preprocessing_fn(inputs):
    outputs = {key + "_xf": tft.scale_to_z_score(inputs[key]) for key in FEATURES}
    outputs["colony_xf"] = tft.compute_and_apply_vocabulary(inputs["colony"])
    outputs["colony_z"] = tft.scale_to_z_score(outputs["colony_xf"])  # a second pass
    outputs["species_xf"] = inputs["species"]
    return outputs
"""

TRAINER_MODULE = """
from sklearn.linear_model import LogisticRegression

from conveyor.frameworks import save_model

LABEL = "species_xf"


def run_fn(fn_args):
    features = fn_args.data_accessor.feature_names("train", label=LABEL)
    X, y = fn_args.data_accessor.to_numpy("train", features=features, label=LABEL)
    model = LogisticRegression(max_iter=500).fit(X, y)
    save_model(model, fn_args.serving_model_dir, features=features, label=LABEL,
               class_names=["Adelie", "Chinstrap", "Gentoo"])
"""


def penguin_rows(copies: int) -> pa.Table:
    """The penguin table ``copies`` times, each copy shifted a little, plus a string column."""
    table = pcsv.read_csv(PENGUINS / "penguins_processed.csv")
    parts = []
    for copy in range(copies):
        shifted = table.set_column(1, "culmen_length_mm",
                                   pc.add(table["culmen_length_mm"], copy * 0.01))  # fmt: skip
        colony = [f"colony-{(i + copy) % 7}" for i in range(table.num_rows)]
        parts.append(shifted.append_column("colony", pa.array(colony)))
    return pa.concat_tables(parts)


def write_examples(uri: str, splits: dict[str, pa.Table], rows_per_file: int) -> dict:
    first = next(iter(splits.values()))
    with ExamplesWriter(uri, list(splits), first.schema, rows_per_file=rows_per_file) as writer:
        for name, table in splits.items():
            for batch in table.to_batches(max_chunksize=rows_per_file):
                writer.write(name, batch)
    return writer.properties()


@component
def Penguins(examples: Output[Examples]):
    """About 2,700 penguin rows in files of 400 rows: several Ray Data blocks per split."""
    rows = penguin_rows(8)
    train, test = rows.slice(0, 2000), rows.slice(2000)
    examples.properties.update(write_examples(examples.uri, {"train": train, "eval": test}, 400))


def penguin_pipeline(
    folder: Path, name: str, metadata_url: str, root: str | None = None
) -> Pipeline:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transform.py").write_text(TRANSFORM_MODULE)
    (folder / "trainer.py").write_text(TRAINER_MODULE)
    gen = Penguins()
    statistics = StatisticsGen(examples=gen.outputs["examples"])
    transform = Transform(
        examples=gen.outputs["examples"], module_file=str(folder / "transform.py")
    )
    trainer = Trainer(examples=transform.outputs["transformed_examples"],
                      transform_graph=transform.outputs["transform_graph"],
                      module_file=str(folder / "trainer.py"))  # fmt: skip
    inferrer = BulkInferrer(examples=gen.outputs["examples"], model=trainer.outputs["model"])
    nodes = [gen, statistics, transform, trainer, inferrer]
    return Pipeline(name, nodes, root=root or folder / "root", metadata_url=metadata_url)


@pytest.fixture(scope="module")
def cluster(s3_endpoint, two_node_cluster):
    """A head and a worker node; Ray Data passes forced for splits of any size. Both nodes
    see the S3 endpoint (its settings are in the environment they start with)."""
    with two_node_cluster(ray_data_always=True) as (cluster, _):
        yield cluster


@pytest.fixture(scope="module")
def runs(cluster, postgres_url, tmp_path_factory, local_and_ray):
    """The same pipeline by the local runner and by the Ray runner on the cluster."""
    tmp = tmp_path_factory.mktemp("ray_data")
    return local_and_ray(penguin_pipeline, tmp, "penguin", cluster, postgres_url)


def output(result, node: str, key: str):
    return result[node].outputs[key][0]


def without(found, key: str):
    """``found`` (dicts and lists) without ``key`` anywhere."""
    if isinstance(found, dict):
        return {k: without(v, key) for k, v in found.items() if k != key}
    if isinstance(found, list):
        return [without(v, key) for v in found]
    return found


def split_statistics(uri: str, split: str) -> dict:
    from conveyor.validation import files

    found = files.load_statistics(files.split_uri(uri, split))  # a mean of 0 is a field too:
    return MessageToDict(found, always_print_fields_with_no_presence=True)


def statistics(result, node: str = "StatisticsGen", key: str = "statistics") -> dict:
    uri = output(result, node, key).uri
    return {split: split_statistics(uri, split) for split in ("train", "eval")}


def test_ray_data_statistics_equal_the_local_runners(assert_same, runs):
    by_local, by_ray = runs
    assert_same(statistics(by_ray), statistics(by_local))
    properties = output(by_ray, "StatisticsGen", "statistics").properties
    assert properties["engine"] == "ray-data"
    assert properties["ray_data_splits"] == ["train", "eval"]
    assert "engine" not in output(by_local, "StatisticsGen", "statistics").properties


def test_ray_data_transform_fits_and_writes_what_the_local_runner_does(assert_same, runs):
    by_local, by_ray = runs

    def constants(result) -> dict:
        uri = output(result, "Transform", "transform_graph").uri
        return json.loads(Path(uri, "transform_fn", "graph.json").read_text())["values"]

    assert_same(constants(by_ray), constants(by_local))
    local_rows = output(by_local, "Transform", "transformed_examples")
    ray_rows = output(by_ray, "Transform", "transformed_examples")
    for split in ("train", "eval"):
        assert_same(
            read_table(ray_rows, split).to_pylist(), read_table(local_rows, split).to_pylist()
        )
        names = sorted(p.name for p in Path(ray_rows.uri, f"Split-{split}").iterdir())
        assert names == [f"part-{i:05d}.parquet" for i in range(len(names))]
        assert len(names) > 1  # one file per block, renamed in order
    assert ray_rows.properties["engine"] == "ray-data"
    local_props = {k: v for k, v in local_rows.properties.items()}
    ray_props = {
        k: v for k, v in ray_rows.properties.items() if k not in ("engine", "ray_data_splits")
    }
    assert ray_props == local_props
    assert output(by_ray, "Transform", "transform_graph").properties["engine"] == "ray-data"
    # Transformed values differ in their last bits (so do two local runs: the threads merge
    # in any order); a value on a histogram bucket's edge may change bucket.
    post = [statistics(run, "Transform", "post_transform_stats") for run in (by_ray, by_local)]
    assert_same(*[without(found, "histograms") for found in post])
    pre = [output(run, "Transform", "pre_transform_stats").uri for run in (by_ray, by_local)]
    assert_same(split_statistics(pre[0], "train"), split_statistics(pre[1], "train"))


@pytest.fixture(scope="module")
def in_a_bucket(cluster, postgres_url, tmp_path_factory):
    """The pipeline by the Ray runner with its root in the S3 bucket: the components work
    on staged copies, their Ray Data passes on the bucket itself."""
    tmp = tmp_path_factory.mktemp("ray_data_s3")
    bucket = f"s3://conveyor/ray-data-{time.time_ns()}"
    pipeline = penguin_pipeline(tmp, f"penguin-s3-{time.time_ns()}", postgres_url, root=bucket)
    # Not from the cache, which holds the same executions' outputs in the other runs' roots.
    result = RayRunner(cluster.address, display="none").run(pipeline, enable_cache=False)
    assert result.ok, result.message
    return result, bucket


def test_ray_data_with_an_object_store_root_reads_and_writes_the_bucket(
    assert_same, runs, in_a_bucket
):
    from conveyor.orchestration.staging import local_copy

    by_local, _ = runs
    by_ray, bucket = in_a_bucket
    for node, key in [
        ("StatisticsGen", "statistics"),
        ("Transform", "transformed_examples"),
        ("Transform", "transform_graph"),
        ("BulkInferrer", "inference_result"),
    ]:
        found = output(by_ray, node, key)
        assert found.uri.startswith(bucket) and found.properties["engine"] == "ray-data", node
    assert_same(statistics(by_ray), statistics(by_local))

    def constants(uri: str) -> dict:
        return json.loads(Path(uri, "transform_fn", "graph.json").read_text())["values"]

    graph = output(by_ray, "Transform", "transform_graph").uri
    assert_same(
        constants(local_copy(graph)),
        constants(output(by_local, "Transform", "transform_graph").uri),
    )
    for node, key in [("Transform", "transformed_examples"), ("BulkInferrer", "inference_result")]:
        for split in ("train", "eval"):
            ours = read_table(output(by_ray, node, key), split).to_pylist()
            assert_same(ours, read_table(output(by_local, node, key), split).to_pylist())


def test_ray_data_bulk_inferrer_predicts_every_row_in_order(runs):
    from conveyor.frameworks import load_model

    _, by_ray = runs
    inferred = output(by_ray, "BulkInferrer", "inference_result")
    assert inferred.properties["engine"] == "ray-data"
    bundle = load_model(output(by_ray, "Trainer", "model").uri)
    examples = output(by_ray, "Penguins", "examples")
    for split in ("train", "eval"):
        raw = read_table(examples, split)
        predicted = read_table(inferred, split)
        assert predicted.num_rows == raw.num_rows
        assert predicted["prediction"].to_pylist() == list(bundle.predict(raw))
        proba = np.column_stack([predicted[f"probability_{c}"] for c in bundle.class_names])
        np.testing.assert_allclose(proba, bundle.predict_proba(raw), rtol=1e-6)


# ---------------------------------------------------------------------- the helpers
@pytest.fixture
def on_cluster(cluster, monkeypatch):
    """This process, as a component's under the Ray runner: every local path shared."""
    monkeypatch.setenv(distributed.ADDRESS_ENV, cluster.address)
    monkeypatch.setenv(distributed.SHARED_PATHS_ENV, os.sep)


@pytest.fixture
def examples(tmp_path) -> str:
    uri = str(tmp_path / "examples")
    write_examples(uri, {"train": penguin_rows(3)}, 250)
    return uri


def test_map_reduce_merges_one_partial_per_file_in_order(on_cluster, examples):
    source = open_examples(examples)
    rows = distributed.map_reduce(
        source, "train", list, lambda acc, batch: acc.append(batch.num_rows), operator.add,
        batch_size=100,
    )  # fmt: skip
    assert rows == [100, 100, 50] * 4 + [2]  # 1,002 rows in files of 250, in order
    firsts = distributed.map_reduce(
        source, "train", list, lambda acc, batch: acc.append(batch[0][0].as_py()), operator.add,
        columns=["culmen_length_mm"],
    )  # fmt: skip
    table = read_table(examples, "train")
    assert firsts == [table["culmen_length_mm"][i].as_py() for i in range(0, 1002, 250)]


def test_map_write_writes_rows_in_order_under_part_names(on_cluster, examples, tmp_path):
    source = open_examples(examples)
    schema = pa.schema([("doubled", pa.float64())])

    def double(batch: pa.RecordBatch) -> pa.Table:
        return pa.table({"doubled": pc.multiply(batch["body_mass_g"], 2.0)})

    class Count:
        def create(self) -> list:
            return [0]

        def add(self, acc: list, batch: pa.RecordBatch, mapped: pa.Table) -> None:
            acc[0] += mapped.num_rows

    written = distributed.map_write(source, "train", double, str(tmp_path / "out"), schema,
                                    extras=Count())  # fmt: skip
    expected = [2 * v for v in read_table(examples, "train")["body_mass_g"].to_pylist()]
    folder = tmp_path / "out" / "Split-train"
    assert sorted(p.name for p in folder.iterdir()) == [Path(f).name for f in written.files]
    assert pq.read_table([str(f) for f in written.files]).column(0).to_pylist() == expected
    assert written.extras == [[250]] * 4 + [[2]]
    assert written.rows == len(expected)


def test_map_write_failing_in_a_block_says_why_and_leaves_no_hidden_files(
    on_cluster, examples, tmp_path
):
    def fail(batch: pa.RecordBatch) -> pa.Table:
        raise ConveyorError("the model cannot read feature 'x'")

    schema = pa.schema([("y", pa.int64())])
    with pytest.raises(ConveyorError, match="cannot read feature 'x'"):
        distributed.map_write(open_examples(examples), "train", fail, str(tmp_path / "out"), schema)
    assert list((tmp_path / "out" / "Split-train").iterdir()) == []


def test_use_ray_data_only_under_the_ray_runner_for_big_shared_splits(examples, monkeypatch):
    source = open_examples(examples)
    monkeypatch.delenv(distributed.ADDRESS_ENV, raising=False)
    assert not distributed.use_ray_data(source, "train", "StatisticsGen")
    monkeypatch.setenv(distributed.ADDRESS_ENV, "127.0.0.1:6379")
    monkeypatch.setenv(distributed.SHARED_PATHS_ENV, os.sep)
    monkeypatch.setenv(distributed.MIN_ROWS_ENV, "0")
    assert distributed.use_ray_data(source, "train", "StatisticsGen")
    monkeypatch.setenv(distributed.MIN_ROWS_ENV, "100000")
    assert not distributed.use_ray_data(source, "train", "StatisticsGen")
    monkeypatch.setenv(distributed.MIN_ROWS_ENV, "off")
    assert not distributed.use_ray_data(source, "train", "StatisticsGen")
    monkeypatch.setenv(distributed.MIN_ROWS_ENV, "0")
    monkeypatch.setenv(distributed.SHARED_PATHS_ENV, "/elsewhere")
    assert not distributed.use_ray_data(source, "train", "StatisticsGen")
    monkeypatch.setenv(distributed.MIN_ROWS_ENV, "many")
    with pytest.raises(ConveyorError, match="CONVEYOR_RAY_DATA_MIN_ROWS must be"):
        distributed.min_rows()
