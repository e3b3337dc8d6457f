"""The ExampleGen components, run through the pipeline API on real data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conveyor import LatestSpans, LocalRunner, Pipeline, Resolver
from conveyor.components import CsvExampleGen, FileExampleGen, ImportExampleGen, RangeConfig
from conveyor.io import read_table
from conveyor.types import Examples

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PENGUINS = DATA / "penguin" / "penguins_processed.csv"


def run_nodes(tmp_path, *nodes, name="p", **kwargs):
    pipeline = Pipeline(
        name, list(nodes), root=tmp_path / "root", metadata_url=f"sqlite:///{tmp_path / 'md.db'}"
    )
    return LocalRunner(display="none").run(pipeline, **kwargs)


def split_table(examples: Examples, split: str) -> pa.Table:
    return pq.read_table(Path(examples.uri, f"Split-{split}"))


def penguin_dir(tmp_path) -> Path:
    folder = tmp_path / "penguins"
    folder.mkdir()
    shutil.copy(PENGUINS, folder / "data.csv")
    return folder


def test_csv_example_gen_splits_penguins(tmp_path):
    result = run_nodes(tmp_path, CsvExampleGen(input_base=str(penguin_dir(tmp_path))))
    assert result.ok, result.message
    examples = result["CsvExampleGen"].outputs["examples"][0]
    props = examples.properties
    assert props["split_names"] == ["train", "eval"]
    assert props["payload_format"] == "parquet"
    assert props["span"] == 0 and props["version"] is None
    counts = props["num_examples"]
    assert counts["train"] + counts["eval"] == 334
    assert 0.55 < counts["train"] / 334 < 0.78
    train = split_table(examples, "train")
    assert train.schema.field("species").type == pa.int64()
    assert train.schema.field("body_mass_g").type == pa.float64()
    assert sorted(Path(examples.uri, "Split-train").iterdir())[0].name == "part-00000.parquet"


def test_csv_example_gen_split_is_deterministic_and_batch_independent(tmp_path):
    base = str(penguin_dir(tmp_path))
    first = run_nodes(tmp_path, CsvExampleGen(input_base=base), enable_cache=False)
    small = CsvExampleGen(input_base=base, batch_size=7).with_id("small")
    second = run_nodes(tmp_path, small, name="q")
    a = first["CsvExampleGen"].outputs["examples"][0]
    b = second["small"].outputs["examples"][0]
    for split in ("train", "eval"):
        assert (
            split_table(a, split)
            .sort_by("culmen_length_mm")
            .equals(split_table(b, split).sort_by("culmen_length_mm"))
        )


def test_example_gen_output_config_and_partition_feature(tmp_path):
    base = str(penguin_dir(tmp_path))
    node = CsvExampleGen(
        input_base=base, output_config={"train": 8, "eval": 1, "test": 1},
        partition_feature="species",
    )  # fmt: skip
    result = run_nodes(tmp_path, node)
    examples = result["CsvExampleGen"].outputs["examples"][0]
    assert examples.properties["split_names"] == ["train", "eval", "test"]
    species = {
        split: set(split_table(examples, split).column("species").to_pylist())
        for split in ("train", "eval", "test")
    }
    seen = [s for values in species.values() for s in values]
    assert len(seen) == len(set(seen)) == 3  # each species lives in exactly one split


def test_example_gen_pre_split_patterns(tmp_path):
    base = tmp_path / "input"
    (base / "train").mkdir(parents=True)
    (base / "eval").mkdir()
    lines = PENGUINS.read_text().splitlines()
    (base / "train" / "a.csv").write_text("\n".join(lines[:201]) + "\n")
    (base / "eval" / "b.csv").write_text("\n".join([lines[0], *lines[201:]]) + "\n")
    node = CsvExampleGen(input_base=str(base), input_config={"train": "train/*", "eval": "eval/*"})
    examples = run_nodes(tmp_path, node)["CsvExampleGen"].outputs["examples"][0]
    assert examples.properties["num_examples"] == {"train": 200, "eval": 134}


@pytest.mark.parametrize("name", ["penguin_examples", "taxi_examples"])
def test_import_example_gen_reads_tfx_output_keeping_splits(tmp_path, name):
    expected = {"penguin_examples": None, "taxi_examples": {"train": 9909, "eval": 5091}}[name]
    node = ImportExampleGen(input_base=str(DATA / "tfx_artifacts" / name))
    result = run_nodes(tmp_path, node)
    assert result.ok, result.message
    examples = result["ImportExampleGen"].outputs["examples"][0]
    counts = examples.properties["num_examples"]
    assert set(counts) == {"train", "eval"}
    if expected:
        assert counts == expected
    else:
        assert sum(counts.values()) == 334
        table = pa.concat_tables([split_table(examples, s) for s in ("train", "eval")])
        csv_masses = sorted(
            round(float(r.split(",")[4]), 5) for r in PENGUINS.read_text().split()[1:]
        )
        assert sorted(round(v, 5) for v in table.column("body_mass_g").to_pylist()) == csv_masses


def test_example_gen_writes_tfrecord_for_tfx_tools(tmp_path):
    node = CsvExampleGen(input_base=str(penguin_dir(tmp_path)), output_format="tfrecord")
    examples = run_nodes(tmp_path, node)["CsvExampleGen"].outputs["examples"][0]
    assert examples.properties["payload_format"] == "tfrecord_example"
    files = sorted(p.name for p in Path(examples.uri, "Split-train").iterdir())
    assert files == ["data_tfrecord-00000.gz"]
    table = read_table(examples, "train")
    assert table.num_rows == examples.properties["num_examples"]["train"]
    assert set(table.column_names) == {
        "species", "culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"
    }  # fmt: skip


def make_spans(base: Path, spans, versions=(None,)):
    lines = PENGUINS.read_text().splitlines()
    for span in spans:
        for version in versions:
            folder = base / f"span-{span:02d}" / (f"v{version}" if version else "")
            folder.mkdir(parents=True, exist_ok=True)
            rows = lines[1 + 10 * span : 1 + 10 * span + 10 + (version or 0)]
            (folder / "data.csv").write_text("\n".join([lines[0], *rows]) + "\n")


def test_example_gen_latest_span_and_static_range(tmp_path):
    base = tmp_path / "spans"
    make_spans(base, [1, 2, 3])
    latest = CsvExampleGen(input_base=str(base), input_config={"all": "span-{SPAN:2}/*.csv"},
                           output_config=None).with_id("latest")  # fmt: skip
    ranged = CsvExampleGen(
        input_base=str(base), input_config={"all": "span-{SPAN:2}/*.csv"},
        range_config=RangeConfig.static(1, 2),
    ).with_id("ranged")  # fmt: skip
    result = run_nodes(tmp_path, latest, ranged)
    assert result.ok, result.message
    latest_props = result["latest"].outputs["examples"][0].properties
    assert (latest_props["span"], latest_props["num_examples"]["all"]) == (3, 10)
    ranged_props = result["ranged"].outputs["examples"][0].properties
    assert (ranged_props["spans"], ranged_props["num_examples"]["all"]) == ([1, 2], 20)


def test_example_gen_versions_and_dates(tmp_path):
    base = tmp_path / "versions"
    make_spans(base, [4], versions=[1, 2])
    node = CsvExampleGen(input_base=str(base),
                         input_config={"all": "span-{SPAN}/v{VERSION}/data.csv"})  # fmt: skip
    props = run_nodes(tmp_path, node)["CsvExampleGen"].outputs["examples"][0].properties
    assert (props["span"], props["version"], props["num_examples"]["all"]) == (4, 2, 12)

    dated = tmp_path / "dated"
    for day in ("2026-11-23", "2026-11-24"):
        (dated / day).mkdir(parents=True)
        shutil.copy(PENGUINS, dated / day / "data.csv")
    node = CsvExampleGen(input_base=str(dated), input_config={"x": "{YYYY}-{MM}-{DD}/*"}).with_id(
        "d"
    )
    props = run_nodes(tmp_path, node, name="dates")["d"].outputs["examples"][0].properties
    assert props["span"] == 20781  # days from 1970-01-01 to 2026-11-24


def test_latest_spans_resolver_rolls_a_window(tmp_path):
    base = tmp_path / "rolling"
    gen = CsvExampleGen(input_base=str(base), input_config={"all": "span-{SPAN:2}/*.csv"})
    window = Resolver(LatestSpans(2), examples=gen.outputs["examples"]).with_id("window")
    for spans in ([1], [1, 2], [1, 2, 3]):
        make_spans(base, spans)
        result = run_nodes(tmp_path, gen, window)
        assert result.ok, result.message
    assert [a.properties["span"] for a in result["window"].outputs["examples"]] == [3, 2]


def test_example_gen_cache_follows_input_files(tmp_path):
    base = penguin_dir(tmp_path)
    node = CsvExampleGen(input_base=str(base))
    assert run_nodes(tmp_path, node)["CsvExampleGen"].state == "COMPLETE"
    assert run_nodes(tmp_path, node)["CsvExampleGen"].state == "CACHED"
    with open(base / "data.csv", "a") as handle:
        handle.write("0,0.5,0.5,0.5,0.5\n")
    rerun = run_nodes(tmp_path, node)["CsvExampleGen"]
    assert rerun.state == "COMPLETE"
    assert sum(rerun.outputs["examples"][0].properties["num_examples"].values()) == 335


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "matched no files"),
        ("pattern", "matched no files"),
        ("header_only", "has a header but no rows"),
        ("unknown", "format"),
        ("missing", "does not exist"),
    ],
)
def test_example_gen_bad_inputs_fail_before_output(tmp_path, setup, message):
    base = tmp_path / "input"
    base.mkdir()
    config = None
    if setup == "pattern":
        (base / "a.csv").write_text("a,b\n1,2\n")
        config = {"train": "nothing-*.csv"}
    elif setup == "header_only":
        (base / "a.csv").write_text("a,b\n")
    elif setup == "unknown":
        (base / "a.xyz").write_text("???")
    elif setup == "missing":
        base = tmp_path / "absent"
    node = FileExampleGen(input_base=str(base), input_config=config)
    result = run_nodes(tmp_path, node)
    assert result["FileExampleGen"].state == "FAILED"
    assert message in result["FileExampleGen"].error


@pytest.mark.parametrize("mode", ["error", "skip", "quarantine"])
def test_example_gen_bad_rows_policy(tmp_path, mode):
    base = tmp_path / "input"
    base.mkdir()
    (base / "a.csv").write_text("a,b\n1,2\n3,4,5\n6,7\n")
    result = run_nodes(tmp_path, CsvExampleGen(input_base=str(base), on_bad_rows=mode))
    node = result["CsvExampleGen"]
    if mode == "error":
        assert node.state == "FAILED"
        assert "a.csv" in node.error and "line 3" in node.error
        return
    props = node.outputs["examples"][0].properties
    assert props["bad_rows"] == 1 and sum(props["num_examples"].values()) == 2
    if mode == "quarantine":
        rows = [json.loads(x) for x in Path(props["bad_rows_file"]).read_text().splitlines()]
        assert rows[0]["line"] == 3 and rows[0]["file"].endswith("a.csv")


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_file_example_gen_external_formats(tmp_path, fmt):
    base = tmp_path / fmt
    base.mkdir()
    shutil.copy(DATA / "external" / f"taxi.{fmt}", base)
    result = run_nodes(tmp_path, FileExampleGen(input_base=str(base)))
    assert result.ok, result.message
    props = result["FileExampleGen"].outputs["examples"][0].properties
    assert props["input_format"] == fmt and sum(props["num_examples"].values()) > 0


def test_file_example_gen_jsonl(tmp_path):
    base = tmp_path / "json"
    base.mkdir()
    rows = [{"x": i, "y": f"v{i}", "z": None if i % 3 else 1.5} for i in range(30)]
    (base / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples = run_nodes(tmp_path, FileExampleGen(input_base=str(base)))["FileExampleGen"]
    table = read_table(examples.outputs["examples"][0], "train")
    assert table.schema.field("x").type == pa.int64()


def test_example_gen_schema_fixes_types(tmp_path):
    base = penguin_dir(tmp_path)
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "species" type: FLOAT shape { dim { size: 1 } } }\n')
    node = CsvExampleGen(input_base=str(base), schema_file=str(schema))
    examples = run_nodes(tmp_path, node)["CsvExampleGen"].outputs["examples"][0]
    assert split_table(examples, "train").schema.field("species").type == pa.float64()


def test_example_gen_reads_and_writes_s3(s3_endpoint):
    import s3fs

    from conveyor.components.example_gen import generate_examples

    s3fs.S3FileSystem().put(str(PENGUINS), "conveyor/penguin-input/data.csv")
    examples = Examples("s3://conveyor/artifacts/Examples/1")
    generate_examples(examples, input_base="s3://conveyor/penguin-input", format="csv")
    counts = examples.properties["num_examples"]
    assert sum(counts.values()) == 334
    table = read_table("s3://conveyor/artifacts/Examples/1", "eval")
    assert table.num_rows == counts["eval"] and "species" in table.column_names
