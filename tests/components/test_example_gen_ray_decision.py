"""When ExampleGen converts its input with Ray Data: the decision and its row estimate (the
conversion itself is tested on a cluster in tests/orchestration/test_ray_data_example_gen.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conveyor.components._ray_data_example_gen import estimate_rows, use_ray_data
from conveyor.io import distributed


def csv_files(folder: Path, rows: int, files: int = 2) -> list[str]:
    folder.mkdir(exist_ok=True)
    uris = []
    for index in range(files):
        path = folder / f"{index}.csv"
        path.write_text("x,name\n" + "".join(f"{i},n{i % 10}\n" for i in range(rows)))
        uris.append(str(path))
    return uris


@pytest.fixture
def under_ray(monkeypatch, tmp_path):
    """This process as a component's under the Ray runner, ``tmp_path`` shared."""
    monkeypatch.setenv(distributed.ADDRESS_ENV, "127.0.0.1:6379")
    monkeypatch.setenv(distributed.SHARED_PATHS_ENV, os.path.realpath(tmp_path))
    monkeypatch.setenv(distributed.MIN_ROWS_ENV, "1000")


def test_use_ray_data_only_under_the_ray_runner(monkeypatch, tmp_path):
    monkeypatch.delenv(distributed.ADDRESS_ENV, raising=False)
    monkeypatch.setenv(distributed.MIN_ROWS_ENV, "0")
    assert not use_ray_data(csv_files(tmp_path, 10), str(tmp_path / "out"), "csv")


def test_use_ray_data_for_enough_rows_in_several_shared_files(under_ray, tmp_path):
    out = str(tmp_path / "out")
    assert use_ray_data(csv_files(tmp_path / "big", 600), out, "csv")
    assert not use_ray_data(csv_files(tmp_path / "small", 400), out, "csv")
    assert not use_ray_data(csv_files(tmp_path / "one", 5000, files=1), out, "csv")


def test_use_ray_data_not_for_files_some_node_cannot_reach(under_ray, monkeypatch, tmp_path):
    uris = csv_files(tmp_path, 600)
    assert not use_ray_data(uris, "/somewhere/else", "csv")
    monkeypatch.setenv(distributed.SHARED_PATHS_ENV, str(tmp_path / "out"))
    assert not use_ray_data(uris, str(tmp_path / "out"), "csv")


def test_use_ray_data_off_or_forced_by_the_threshold(under_ray, monkeypatch, tmp_path):
    uris, out = csv_files(tmp_path, 3), str(tmp_path / "out")
    monkeypatch.setenv(distributed.MIN_ROWS_ENV, "off")
    assert not use_ray_data(uris, out, "csv")
    monkeypatch.setenv(distributed.MIN_ROWS_ENV, "0")
    assert use_ray_data(uris, out, "csv")


def test_estimate_rows_counts_parquet_and_estimates_text(tmp_path):
    table = pa.table({"x": list(range(1234))})
    pq.write_table(table, tmp_path / "a.parquet")
    pq.write_table(table.slice(0, 100), tmp_path / "b.parquet")
    assert estimate_rows([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], "parquet") \
        == 1334  # fmt: skip
    estimated = estimate_rows(csv_files(tmp_path / "csv", 5000), "csv")
    assert 9000 < estimated < 11000
