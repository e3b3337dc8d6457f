"""Transform (analyze + transform) against the practical floor: a bare
``pyarrow.parquet.read_table`` of the same Parquet file.

The input is the taxi-like table of ``bench/datasets.py`` laid out as an Examples folder
(``Split-train/part-00000.parquet``, a hard link), brought in by an Importer. Transform runs
TFX's Chicago taxi ``preprocessing_fn`` (``examples/chicago_taxi/preprocessing.py``: z-scores,
vocabularies, quantile buckets, categorical pass-through, the label) as a one-node pipeline
with LocalRunner; its figure is the Transform node's duration: fit every analyzer over the
split, transform it, write the transformed Parquet and the pre- and post-transform
statistics. A second line runs it with ``disable_statistics=True``. Each measurement runs in
a fresh Python process, which reports its wall time and its peak resident memory (its own and
its children's). Targets: more than 10x faster than tf.Transform on the same
preprocessing_fn (49.1 s for 1M rows on these machines, ../shared/anchors/README.md), and
memory flat as rows grow: the peak at ``--rows`` under 1.5x the peak at ``--base-rows``
(measured too when they differ).

    .venv/bin/python bench/transform.py                               # 1M rows, best of 3
    .venv/bin/python bench/transform.py --rows 10000000 --repeats 1   # and 1M for memory
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

MODULE = Path(__file__).resolve().parents[1] / "examples" / "chicago_taxi" / "preprocessing.py"
# tf.Transform (TFX 1.16) on the same preprocessing_fn over 1M taxi rows, on these machines
# (../shared/anchors/README.md): 49.1 s, 2.1 GB peak. The target is an order of magnitude.
ANCHOR_SECONDS_PER_MILLION = 49.1
SECONDS_PER_MILLION = ANCHOR_SECONDS_PER_MILLION / 10

FLOOR = floor_script("import pyarrow.parquet as pq", "pq.read_table(path)")


def transform_script(disable_statistics: bool) -> str:
    return pipeline_script(
        f"""
        from conveyor import Importer, Pipeline
        from conveyor.components import Transform
        from conveyor.types import Examples
        importer = Importer(sys.argv[1], Examples)
        transform = Transform(examples=importer.outputs["result"], module_file={str(MODULE)!r},
                              disable_statistics={disable_statistics})
        pipeline = Pipeline("bench", [importer, transform], root=workdir + "/root",
                            metadata_url=f"sqlite:///{{workdir}}/md.db")
        """,
        node="Transform",
        output="transformed_examples",
    )


OURS = transform_script(disable_statistics=False)
NO_STATS = transform_script(disable_statistics=True)


def run_size(rows: int, repeats: int, tmp: str) -> tuple[dict, dict, dict]:
    """(floor, ours, ours without statistics) for a ``rows``-row table."""
    _, parquet_path = make_taxi(rows)
    folder = examples_folder(parquet_path, tmp)
    floor, ours, no_stats = best_of_each(
        [(FLOOR, str(parquet_path)), (OURS, str(folder), tmp), (NO_STATS, str(folder), tmp)],
        repeats,
    )
    assert ours["rows"] == no_stats["rows"] == floor["rows"] == rows, (ours, floor)
    return floor, ours, no_stats


def main() -> None:
    args = sizes_arguments(__doc__.splitlines()[0])
    sizes = measure_sizes(args, run_size)
    size_mb = make_taxi(args.rows)[1].stat().st_size / 1e6

    print_header(
        "Conveyor Transform benchmark (TFX's taxi preprocessing_fn)",
        f"{args.rows:,} rows, {size_mb:.1f} MB Parquet, 18 columns -> 17 features",
        args.repeats,
    )
    width = 44
    print(f"{'':{width}}{'seconds':>9}{'rows/s':>12}{'peak MB':>10}")
    for rows, (floor, ours, no_stats) in sizes.items():
        print_row(f"pq.read_table (floor), {rows:,}", floor, width)
        print_row(f"Transform, {rows:,}", ours, width)
        print_row(f"Transform, no statistics, {rows:,}", no_stats, width)
    floor, ours, _ = sizes[args.rows]
    budget = SECONDS_PER_MILLION * args.rows / 1e6
    print(f"\nTransform / floor at {args.rows:,} rows: {ours['seconds'] / floor['seconds']:.2f}x")
    anchor = ANCHOR_SECONDS_PER_MILLION * args.rows / 1e6
    speedup = anchor / ours["seconds"]
    print(f"tf.Transform anchor (49.1 s per million rows, from CSV): {speedup:.1f}x the time "
          "of Transform with statistics")  # fmt: skip
    print("Targets")
    print(f"  [{'PASS' if ours['seconds'] <= budget else 'FAIL'}] more than 10x faster than "
          f"tf.Transform: {args.rows:,} rows in at most {budget:.1f} s, with statistics: "
          f"{ours['seconds']:.2f} s")  # fmt: skip
    print_memory_flat(args, ours["peak_kb"], sizes[args.base_rows][1]["peak_kb"])


if __name__ == "__main__":
    main()
