"""ExampleGen's conversion with Ray Data on a real two-node cluster (a head and a worker
node, separate processes on loopback): the same rows, in the same order, in every split,
with the same properties, bad rows and errors as the local path."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from conveyor import LocalRunner, Pipeline, RayRunner
from conveyor.components import CsvExampleGen
from conveyor.components.example_gen import generate_examples
from conveyor.io import distributed, read_table
from conveyor.io.bad_rows import BadInputError
from conveyor.io.writers import file_name
from conveyor.types import Examples

# Ray reads this when imported: set first, a cluster started here stays on loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.cluster_utils")

PENGUINS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "penguin"
ENGINE_KEYS = ("engine", "ray_data_splits")


@pytest.fixture(scope="module")
def cluster(s3_endpoint, two_node_cluster):
    """A head and a worker node; Ray Data passes forced for inputs of any size. Both nodes
    see the S3 endpoint (its settings are in the environment they start with)."""
    with two_node_cluster(ray_data_always=True) as (cluster, _):
        yield cluster


def penguin_files(folder: Path, parts: int = 3, suffix: str = "csv") -> Path:
    """The penguin table cut into ``parts`` files of consecutive rows."""
    table = pcsv.read_csv(PENGUINS / "penguins_processed.csv")
    folder.mkdir(parents=True)
    size = -(-table.num_rows // parts)
    for index in range(parts):
        part = table.slice(index * size, size)
        if suffix == "csv":
            pcsv.write_csv(part, folder / f"part-{index}.csv")
        else:
            pq.write_table(part, folder / f"part-{index}.parquet")
    return folder


def both(tmp_path: Path, monkeypatch, cluster, **options) -> tuple[Examples, Examples]:
    """``generate_examples(**options)`` in this process, then as under the Ray runner."""
    found = []
    for name in ("local", "ray"):
        if name == "ray":
            monkeypatch.setenv(distributed.ADDRESS_ENV, cluster.address)
            monkeypatch.setenv(distributed.SHARED_PATHS_ENV, os.sep)
        examples = Examples(str(tmp_path / name))
        Path(examples.uri).mkdir()
        generate_examples(examples, **options)
        found.append(examples)
    return found[0], found[1]


def assert_same_examples(local: Examples, on_ray: Examples) -> None:
    """Every split holds the same rows in the same order, files named part-00000, ...;
    the properties are the same but for the engine."""
    assert on_ray.properties["engine"] == "ray-data"
    assert on_ray.properties["ray_data_splits"] == local.properties["split_names"]
    assert {k: v for k, v in on_ray.properties.items() if k not in ENGINE_KEYS} == dict(
        local.properties
    )
    for split in local.properties["split_names"]:
        ours, theirs = read_table(on_ray, split), read_table(local, split)
        assert ours.schema == theirs.schema
        assert ours.to_pylist() == theirs.to_pylist()
        assert ours.num_rows == local.properties["num_examples"][split]
        kind = "parquet" if on_ray.properties["payload_format"] == "parquet" else "tfrecord"
        names = sorted(p.name for p in Path(on_ray.uri, f"Split-{split}").iterdir())
        assert names == [file_name(kind, i) for i in range(len(names))]
    assert not [p for p in Path(on_ray.uri).iterdir() if p.name.startswith(".")]


def test_ray_data_example_gen_csv_gives_the_local_rows_in_order(tmp_path, monkeypatch, cluster):
    base = penguin_files(tmp_path / "in")
    local, on_ray = both(tmp_path, monkeypatch, cluster, input_base=str(base))
    assert_same_examples(local, on_ray)
    names = sorted(p.name for p in Path(on_ray.uri, "Split-train").iterdir())
    assert names == [f"part-{i:05d}.parquet" for i in range(3)]  # a file per input file


@pytest.mark.parametrize(
    ("suffix", "options"),
    [
        ("parquet", {"output_config": {"train": 8, "eval": 1, "test": 1},
                     "partition_feature": "species"}),
        ("csv", {"input_config": {"train": "part-*.csv", "eval": "last-*.csv"},
                 "output_format": "tfrecord"}),
        ("csv", {"rows_per_file": 40, "batch_size": 16}),
    ],
)  # fmt: skip
def test_ray_data_example_gen_splits_as_the_local_path(
    tmp_path, monkeypatch, cluster, suffix, options
):
    base = penguin_files(tmp_path / "in", suffix=suffix)
    if "input_config" in options:  # pre-split: the last file is the eval split
        (base / "part-2.csv").rename(base / "last-2.csv")
    local, on_ray = both(tmp_path, monkeypatch, cluster, input_base=str(base), **options)
    assert_same_examples(local, on_ray)


def write_bad_rows(folder: Path) -> Path:
    """Three CSV files, the second and third with rows of the wrong width."""
    folder.mkdir()
    (folder / "a.csv").write_text("x,y\n1,a\n2,b\n3,c\n")
    (folder / "b.csv").write_text("x,y\n4,d\n5,e,extra\n6,f\n")
    (folder / "c.csv").write_text("x,y\n7\n8,h\n")
    return folder


def test_ray_data_example_gen_quarantines_the_local_paths_bad_rows(tmp_path, monkeypatch, cluster):
    base = write_bad_rows(tmp_path / "in")
    local, on_ray = both(tmp_path, monkeypatch, cluster, input_base=str(base),
                         on_bad_rows="quarantine")  # fmt: skip
    assert on_ray.properties["bad_rows"] == 2
    assert on_ray.properties["bad_rows_file"] == str(Path(on_ray.uri, "bad_rows.jsonl"))
    local.properties["bad_rows_file"] = on_ray.properties["bad_rows_file"]
    assert_same_examples(local, on_ray)
    quarantined = [
        [json.loads(line) for line in Path(e.uri, "bad_rows.jsonl").read_text().splitlines()]
        for e in (local, on_ray)
    ]
    assert quarantined[1] == quarantined[0]
    assert [row["file"].rsplit("/", 1)[-1] for row in quarantined[1]] == ["b.csv", "c.csv"]


def test_ray_data_example_gen_fails_on_a_bad_row_as_the_local_path(tmp_path, monkeypatch, cluster):
    base = write_bad_rows(tmp_path / "in")
    messages = []
    for name in ("local", "ray"):
        if name == "ray":
            monkeypatch.setenv(distributed.ADDRESS_ENV, cluster.address)
            monkeypatch.setenv(distributed.SHARED_PATHS_ENV, os.sep)
        (tmp_path / name).mkdir()
        with pytest.raises(BadInputError) as failed:
            generate_examples(Examples(str(tmp_path / name)), input_base=str(base))
        messages.append(str(failed.value))
    assert messages[1] == messages[0]
    assert "b.csv, line 3" in messages[1]  # the first bad row in input order


def test_ray_data_example_gen_widens_a_type_found_past_the_sample(tmp_path, monkeypatch, cluster):
    folder = tmp_path / "in"
    folder.mkdir()
    lines = [f"{i},{i % 97}" for i in range(300_000)]  # past the 2 MiB sample of types
    (folder / "a.csv").write_text("x,y\n" + "\n".join(lines) + "\n1,2.5\n")
    (folder / "b.csv").write_text("x,y\n1,2\n3,4\n")
    local, on_ray = both(tmp_path, monkeypatch, cluster, input_base=str(folder))
    assert read_table(on_ray, "train").schema.field("y").type == pa.float64()
    assert_same_examples(local, on_ray)


# ---------------------------------------------------------------------- under the Ray runner
def test_ray_runner_runs_csv_example_gen_on_ray_data(cluster, postgres_url, tmp_path):
    found = {}
    for name in ("local", "ray"):
        root = tmp_path / name / "root"
        base = penguin_files(root / "input")  # under the shared root: every node reaches it
        nodes = [CsvExampleGen(input_base=str(base))]
        if name == "local":
            pipeline = Pipeline("eg", nodes, root=root, metadata_url=f"sqlite:///{root}.db")
            result = LocalRunner(display="none").run(pipeline)
        else:
            pipeline = Pipeline(f"eg-{time.time_ns()}", nodes, root=root,
                                metadata_url=postgres_url)  # fmt: skip
            result = RayRunner(cluster.address, shared_root=True, display="none").run(pipeline)
        assert result.ok, result.message
        found[name] = result["CsvExampleGen"].outputs["examples"][0]
    local, on_ray = found["local"], found["ray"]
    ours = {k: v for k, v in on_ray.properties.items() if k not in ENGINE_KEYS}
    theirs = dict(local.properties)
    assert on_ray.properties["engine"] == "ray-data"
    assert ours == theirs
    for split in ("train", "eval"):
        assert read_table(on_ray, split).to_pylist() == read_table(local, split).to_pylist()


def test_ray_runner_converts_an_input_in_a_bucket_into_a_bucket(cluster, postgres_url, tmp_path):
    import s3fs

    from conveyor.orchestration.staging import local_copy

    prefix = f"conveyor/example-gen-{time.time_ns()}"
    base = penguin_files(tmp_path / "input")
    for path in sorted(base.iterdir()):
        s3fs.S3FileSystem().put(str(path), f"{prefix}/input/{path.name}")
    local = Examples(str(tmp_path / "local"))
    Path(local.uri).mkdir()
    generate_examples(local, input_base=str(base))
    nodes = [CsvExampleGen(input_base=f"s3://{prefix}/input")]
    pipeline = Pipeline(f"eg-s3-{time.time_ns()}", nodes, root=f"s3://{prefix}/root",
                        metadata_url=postgres_url)  # fmt: skip
    result = RayRunner(cluster.address, display="none").run(pipeline)
    assert result.ok, result.message
    on_ray = result["CsvExampleGen"].outputs["examples"][0]
    assert on_ray.uri.startswith(f"s3://{prefix}/root")
    assert on_ray.properties["engine"] == "ray-data"
    for split in ("train", "eval"):
        assert read_table(on_ray, split).to_pylist() == read_table(local, split).to_pylist()
        names = sorted(Path(local_copy(on_ray.uri), f"Split-{split}").iterdir())
        assert [p.name for p in names] == [f"part-{i:05d}.parquet" for i in range(3)]
    left = [p.rsplit("/", 1)[-1] for p in s3fs.S3FileSystem().ls(on_ray.uri.removeprefix("s3://"))]
    assert sorted(left) == ["Split-eval", "Split-train"]
