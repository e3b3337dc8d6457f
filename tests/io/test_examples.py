"""The Examples access layer: opening, reading, streaming, shuffling, sharding, converting."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conveyor.io.examples import (
    ExamplesSource,
    dataset,
    num_rows,
    open_examples,
    read_table,
    record_batches,
    schema,
    to_numpy,
    to_pandas,
)
from conveyor.types import ConveyorError, Examples

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _rows(ids: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": pa.array([None if i % 10 == 3 else float(i) / 10 for i in ids], pa.float64()),
            "flag": pa.array([bool(i % 2) for i in ids]),
            "island": pa.array([f"island-{i % 3}" for i in ids]),
        }
    )


def write_examples(root: Path, splits: dict[str, list[pa.Table]]) -> str:
    """Lay tables out as an Examples artifact: {root}/Split-{name}/part-{i}.parquet."""
    for name, parts in splits.items():
        folder = root / f"Split-{name}"
        folder.mkdir(parents=True)
        for i, part in enumerate(parts):
            pq.write_table(part, folder / f"part-{i:05d}.parquet", row_group_size=10)
    return str(root)


@pytest.fixture
def examples_uri(tmp_path: Path) -> str:
    """train: ids 0..99 in 4 part files; eval: ids 0..19 in 1 file."""
    train = [_rows(ids) for ids in np.array_split(np.arange(100), 4)]
    return write_examples(tmp_path / "examples", {"train": train, "eval": [_rows(np.arange(20))]})


def _ids(batches) -> list[int]:
    return [int(i) for batch in batches for i in batch.column("id").to_pylist()]


def test_open_examples_finds_format_and_splits_from_files(examples_uri: str) -> None:
    source = open_examples(examples_uri)

    assert source == ExamplesSource(examples_uri, "parquet", ("eval", "train"))
    assert len(source.files("train")) == 4


def test_open_examples_prefers_artifact_properties(examples_uri: str) -> None:
    artifact = Examples(
        examples_uri,
        properties={"split_names": json.dumps(["train"]), "payload_format": "FORMAT_PARQUET"},
    )

    source = open_examples(artifact)

    assert (source.payload_format, source.split_names) == ("parquet", ("train",))


def test_open_examples_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConveyorError, match="No Examples folder"):
        open_examples(str(tmp_path / "nowhere"))


def test_open_examples_folder_without_splits_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConveyorError, match="no Split-\\* folders"):
        open_examples(str(tmp_path))


def test_open_examples_unknown_payload_format_is_an_error(examples_uri: str) -> None:
    with pytest.raises(ConveyorError, match="payload_format 'FORMAT_PROTO'"):
        open_examples(Examples(examples_uri, properties={"payload_format": "FORMAT_PROTO"}))


def test_read_table_empty_split_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "Split-train").mkdir()
    (tmp_path / "Split-train" / "_SUCCESS").touch()
    artifact = Examples(str(tmp_path), properties={"payload_format": "parquet"})

    with pytest.raises(ConveyorError, match="holds no \\*.parquet files"):
        read_table(artifact, "train")


def test_read_table_reads_every_row_in_file_order(examples_uri: str) -> None:
    table = read_table(examples_uri, "train")

    assert table.column_names == ["id", "x", "flag", "island"]
    assert table.column("id").to_pylist() == list(range(100))


def test_read_table_projects_columns_in_the_order_asked(examples_uri: str) -> None:
    table = read_table(Examples(examples_uri), "eval", columns=["x", "id"])

    assert table.column_names == ["x", "id"]
    assert table.num_rows == 20


def test_read_table_unknown_column_names_it_and_lists_columns(examples_uri: str) -> None:
    with pytest.raises(ConveyorError, match="Unknown column 'age'.*Columns: id, x, flag, island"):
        read_table(examples_uri, columns=["id", "age"])


def test_read_table_unknown_split_lists_available_splits(examples_uri: str) -> None:
    with pytest.raises(ConveyorError, match="Unknown split 'test'.*Available splits: eval, train"):
        read_table(examples_uri, "test")


def test_dataset_schema_and_num_rows_describe_the_split(examples_uri: str) -> None:
    assert isinstance(dataset(examples_uri, "train"), ds.Dataset)
    assert schema(examples_uri, "train").names == ["id", "x", "flag", "island"]
    assert num_rows(examples_uri, "train") == 100
    assert num_rows(examples_uri, "eval") == 20


def test_record_batches_are_bounded_by_batch_size(examples_uri: str) -> None:
    batches = list(record_batches(examples_uri, "train", batch_size=7, columns=["id"]))

    assert [b.num_rows for b in batches] == [7] * 14 + [2]
    assert batches[0].schema.names == ["id"]
    assert _ids(batches) == list(range(100))


def test_record_batches_shuffle_is_deterministic_with_a_seed(examples_uri: str) -> None:
    def run(seed: int) -> list[int]:
        return _ids(record_batches(examples_uri, batch_size=8, shuffle=True, seed=seed))

    first = run(seed=7)

    assert first == run(seed=7)
    assert first != run(seed=8)
    assert first != list(range(100))
    assert sorted(first) == list(range(100))


def test_record_batches_shuffle_differs_between_runs_without_a_seed(examples_uri: str) -> None:
    runs = [_ids(record_batches(examples_uri, batch_size=8, shuffle=True)) for _ in range(2)]

    assert runs[0] != runs[1]
    assert sorted(runs[0]) == sorted(runs[1]) == list(range(100))


def test_record_batches_shuffle_buffer_smaller_than_batch_still_mixes(examples_uri: str) -> None:
    batches = list(record_batches(examples_uri, batch_size=16, shuffle_buffer=4, shuffle=True))

    assert [b.num_rows for b in batches] == [16] * 6 + [4]
    assert sorted(_ids(batches)) == list(range(100))


def test_record_batches_repeat_reshuffles_each_epoch(examples_uri: str) -> None:
    ids = _ids(record_batches(examples_uri, batch_size=10, shuffle=True, seed=1, repeat=3))

    epochs = [ids[0:100], ids[100:200], ids[200:300]]
    assert len(ids) == 300
    assert all(sorted(epoch) == list(range(100)) for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_record_batches_repeat_true_never_ends(examples_uri: str) -> None:
    stream = record_batches(examples_uri, "eval", batch_size=15, repeat=True)

    sizes = [next(stream).num_rows for _ in range(6)]

    assert sizes == [15, 5] * 3


@pytest.mark.parametrize("count", [2, 3, 4, 7])
@pytest.mark.parametrize("split", ["train", "eval"])  # 4 files, 1 file
def test_record_batches_shards_are_disjoint_and_complete(
    examples_uri: str, split: str, count: int
) -> None:
    shards = [
        _ids(record_batches(examples_uri, split, batch_size=6, shard=(i, count), shuffle=True))
        for i in range(count)
    ]

    seen = Counter(i for shard in shards for i in shard)
    assert sorted(seen) == list(range(num_rows(examples_uri, split)))
    assert set(seen.values()) == {1}
    assert all(shards)


def test_record_batches_bad_arguments_fail_at_call(examples_uri: str) -> None:
    with pytest.raises(ConveyorError, match="'batch_size' parameter must be an int >= 1"):
        record_batches(examples_uri, batch_size=0)
    with pytest.raises(ConveyorError, match="'shard' parameter must be \\(index, count\\)"):
        record_batches(examples_uri, shard=(2, 2))
    with pytest.raises(ConveyorError, match="'repeat' parameter"):
        record_batches(examples_uri, repeat=0)


def test_to_pandas_returns_a_dataframe(examples_uri: str) -> None:
    frame = to_pandas(examples_uri, "eval", columns=["id", "island"])

    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "island"]
    assert frame["island"].iloc[4] == "island-1"


def test_to_numpy_nulls_become_nan_and_int_label_stays_int(examples_uri: str) -> None:
    X, y = to_numpy(examples_uri, "eval", features=["x", "flag"], label="id")

    assert X.shape == (20, 2) and X.dtype == np.float32
    assert np.isnan(X[3, 0]) and np.isnan(X[13, 0])
    assert X[4].tolist() == pytest.approx([0.4, 0.0])
    assert y.dtype == np.int64 and y.tolist() == list(range(20))


def test_to_numpy_without_label_returns_none(examples_uri: str) -> None:
    X, y = to_numpy(examples_uri, "eval", features=["id"], dtype=np.float64)

    assert X.dtype == np.float64 and X[:, 0].tolist() == list(range(20))
    assert y is None


def test_to_numpy_flattens_single_value_lists(tmp_path: Path) -> None:
    table = pa.table({"a": pa.array([[1.5], [], None, [4.0]]), "y": pa.array([[0], [1], [1], [0]])})
    uri = write_examples(tmp_path / "ex", {"train": [table]})

    X, y = to_numpy(uri, features=["a"], label="y")

    assert X[[0, 3], 0].tolist() == [1.5, 4.0] and np.isnan(X[1:3, 0]).all()
    assert y.tolist() == [0, 1, 1, 0]


def test_to_numpy_string_feature_says_to_encode_it_first(examples_uri: str) -> None:
    with pytest.raises(ConveyorError, match="Feature 'island' is string.*encode it first"):
        to_numpy(examples_uri, features=["x", "island"], label="id")


def test_to_numpy_multi_value_list_feature_is_an_error(tmp_path: Path) -> None:
    uri = write_examples(tmp_path / "ex", {"train": [pa.table({"a": [[1.0, 2.0], [3.0]]})]})

    with pytest.raises(ConveyorError, match="Feature 'a' holds lists \\(row 0 has 2 values\\)"):
        to_numpy(uri, features=["a"])


def test_to_numpy_missing_label_is_an_error(examples_uri: str) -> None:
    with pytest.raises(ConveyorError, match="Unknown label 'species'.*Columns: id, x"):
        to_numpy(examples_uri, features=["x"], label="species")


def test_to_numpy_null_label_is_an_error(examples_uri: str) -> None:
    with pytest.raises(ConveyorError, match="Label 'x' is missing in 2 rows"):
        to_numpy(examples_uri, "eval", features=["id"], label="x")


def _penguin_examples(root: Path) -> str:
    frame = pd.read_csv(SHARED_DATA / "penguin" / "penguins_processed.csv")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    is_eval = np.arange(table.num_rows) % 3 == 0
    train, eval_ = table.filter(~is_eval), table.filter(is_eval)
    half = train.num_rows // 2
    return write_examples(
        root, {"train": [train.slice(0, half), train.slice(half)], "eval": [eval_]}
    )


def test_to_numpy_feeds_scikit_learn_on_penguins(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    uri = _penguin_examples(tmp_path / "penguins")
    features = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]

    X_train, y_train = to_numpy(uri, "train", features=features, label="species")
    X_eval, y_eval = to_numpy(uri, "eval", features=features, label="species")
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)

    assert y_train.dtype == np.int64
    assert model.score(X_eval, y_eval) > 0.8


def test_read_table_reads_tfx_example_gen_output() -> None:
    try:
        import conveyor.io.example_codec  # noqa: F401
    except ImportError:
        pytest.skip("example_codec not yet available")
    uri = str(SHARED_DATA / "tfx_artifacts" / "penguin_examples")

    source = open_examples(uri)
    table = read_table(uri, "eval")

    assert (source.payload_format, source.split_names) == ("tfrecord_example", ("eval", "train"))
    assert "species" in table.column_names
    assert table.num_rows == num_rows(uri, "eval") > 0
    assert _row_count(record_batches(uri, "eval", batch_size=16)) == table.num_rows


def test_to_numpy_reads_tfx_example_gen_output() -> None:
    try:
        import conveyor.io.example_codec  # noqa: F401
    except ImportError:
        pytest.skip("example_codec not yet available")
    uri = str(SHARED_DATA / "tfx_artifacts" / "penguin_examples")
    features = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]

    X, y = to_numpy(uri, "train", features=features, label="species")

    assert X.shape == (len(y), 4) and not np.isnan(X).all()
    assert np.issubdtype(y.dtype, np.integer)


def _row_count(batches) -> int:
    return sum(batch.num_rows for batch in batches)
