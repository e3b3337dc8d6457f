"""StatisticsGen against the practical floor: a bare ``pyarrow.parquet.read_table`` of the
same Parquet file.

The input is the taxi-like table of ``bench/datasets.py`` laid out as an Examples folder
(``Split-train/part-00000.parquet``, a hard link). StatisticsGen runs as a one-node pipeline
behind an Importer, with LocalRunner; its figure is the StatisticsGen node's duration. Each
measurement runs in a fresh Python process, which reports its wall time and its peak
resident memory (its own and its children's: the runner executes the component in a child
process). Targets: at most 2 s per million rows, and memory flat as rows grow: the peak at
``--rows`` under 1.5x the peak at ``--base-rows`` (measured too when they differ).

    .venv/bin/python bench/statistics.py                               # 1M rows, best of 3
    .venv/bin/python bench/statistics.py --rows 10000000 --repeats 1   # and 1M for memory
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    best_of_each,
    examples_folder,
    floor_script,
    measure_sizes,
    pipeline_script,
    print_header,
    print_memory_flat,
    print_row,
    sizes_arguments,
)
from datasets import make_taxi

FLOOR = floor_script("import pyarrow.parquet as pq", "pq.read_table(path)")

OURS = pipeline_script(
    """
    from conveyor import Importer, Pipeline
    from conveyor.components import StatisticsGen
    from conveyor.types import Examples
    importer = Importer(sys.argv[1], Examples)
    statistics_gen = StatisticsGen(examples=importer.outputs["result"])
    pipeline = Pipeline("bench", [importer, statistics_gen], root=workdir + "/root",
                        metadata_url=f"sqlite:///{workdir}/md.db")
    """,
    node="StatisticsGen",
    output="statistics",
)


def run_size(rows: int, repeats: int, tmp: str) -> tuple[dict, dict]:
    """(floor, ours) for a ``rows``-row table; ours best of ``repeats`` fresh pipelines."""
    _, parquet_path = make_taxi(rows)
    folder = examples_folder(parquet_path, tmp)
    floor, ours = best_of_each([(FLOOR, str(parquet_path)), (OURS, str(folder), tmp)], repeats)
    assert ours["rows"] == floor["rows"] == rows, (ours, floor)
    return floor, ours


def main() -> None:
    args = sizes_arguments(__doc__.splitlines()[0])
    sizes = measure_sizes(args, run_size)
    size_mb = make_taxi(args.rows)[1].stat().st_size / 1e6

    print_header(
        "Conveyor StatisticsGen benchmark",
        f"{args.rows:,} rows, {size_mb:.1f} MB Parquet, 18 columns",
        args.repeats,
    )
    print(f"{'':36}{'seconds':>9}{'rows/s':>12}{'peak MB':>10}")
    for rows, (floor, ours) in sizes.items():
        print_row(f"pq.read_table (floor), {rows:,}", floor, 36)
        print_row(f"StatisticsGen, {rows:,}", ours, 36)
    floor, ours = sizes[args.rows]
    budget = 2.0 * args.rows / 1e6
    print(
        f"\nStatisticsGen / floor at {args.rows:,} rows: {ours['seconds'] / floor['seconds']:.2f}x"
    )
    print("Targets")
    print(f"  [{'PASS' if ours['seconds'] <= budget else 'FAIL'}] {args.rows:,} rows in at most "
          f"{budget:.1f} s (2 s per million rows): {ours['seconds']:.2f} s")  # fmt: skip
    print_memory_flat(args, ours["peak_kb"], sizes[args.base_rows][1]["peak_kb"])
    print("For scale: TFDV needed 57 s for the statistics of 1M rows (from CSV) on our machines.")


if __name__ == "__main__":
    main()
