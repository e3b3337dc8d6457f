"""Taxi-like tables of any size for the data benchmarks.

Rows are resampled from the Chicago taxi sample (``../shared/data/chicago_taxi/data.csv``),
floating columns jittered by about 1 %, integer columns kept integer, missing values kept
missing. Written in chunks, so a 10M-row file never sits in memory.

    .venv/bin/python bench/datasets.py --rows 1000000   # bench/.data/taxi-1000000.{csv,parquet}
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
TAXI = HERE.parent.parent / "shared" / "data" / "chicago_taxi" / "data.csv"
OUT = HERE / ".data"
CHUNK = 250_000


def _jitter(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_floating(field.type):
            noise = pa.array(1.0 + rng.normal(0.0, 0.01, len(column)))
            column = pc.round(pc.multiply(column, noise), 6)
        elif pa.types.is_integer(field.type) and field.name in (
            "trip_seconds",
            "trip_start_timestamp",
        ):
            shift = pa.array(rng.integers(-30, 31, len(column)))
            column = pc.max_element_wise(pc.add(column, shift), 0)
        columns.append(column)
    return pa.table(columns, schema=table.schema)


def make_taxi(rows: int, seed: int = 0) -> tuple[Path, Path]:
    """Write (once) and return the CSV and Parquet paths of a ``rows``-row taxi table."""
    OUT.mkdir(exist_ok=True)
    csv_path, parquet_path = OUT / f"taxi-{rows}.csv", OUT / f"taxi-{rows}.parquet"
    if csv_path.exists() and parquet_path.exists():
        return csv_path, parquet_path
    source = pacsv.read_csv(TAXI)
    rng = np.random.default_rng(seed)
    tmp_csv, tmp_parquet = csv_path.with_suffix(".csv.tmp"), parquet_path.with_suffix(".tmp")
    with (
        pacsv.CSVWriter(tmp_csv, source.schema) as csv_writer,
        pq.ParquetWriter(tmp_parquet, source.schema) as parquet_writer,
    ):
        for start in range(0, rows, CHUNK):
            picks = rng.integers(0, source.num_rows, min(CHUNK, rows - start))
            chunk = _jitter(source.take(pa.array(picks)), rng)
            csv_writer.write_table(chunk)
            parquet_writer.write_table(chunk)
    tmp_csv.replace(csv_path)
    tmp_parquet.replace(parquet_path)
    return csv_path, parquet_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    csv_path, parquet_path = make_taxi(args.rows)
    for path in (csv_path, parquet_path):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
