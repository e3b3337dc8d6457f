"""CsvExampleGen against the practical floor: a bare ``pyarrow.csv.read_csv`` of the same file.

Each measurement runs in a fresh Python process, which reports its wall time and its peak
resident memory (its own and its children's: the runner executes the component in a
child process). Targets: CsvExampleGen within 2x of the floor, peak memory under 1 GB.

    .venv/bin/python bench/example_gen.py                 # 1M rows (~130 MB of CSV)
    .venv/bin/python bench/example_gen.py --rows 10000000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import make_taxi

FLOOR = textwrap.dedent(
    """
    import json, resource, sys, time
    import pyarrow.csv as pacsv
    start = time.perf_counter()
    table = pacsv.read_csv(sys.argv[1])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "rows": table.num_rows, "peak_kb": peak}))
    """
)

OURS = textwrap.dedent(
    """
    import json, resource, sys, time
    from conveyor import LocalRunner, Pipeline
    from conveyor.components import CsvExampleGen
    csv_dir, workdir = sys.argv[1], sys.argv[2]
    pipeline = Pipeline("bench", [CsvExampleGen(input_base=csv_dir)], root=workdir + "/root",
                        metadata_url=f"sqlite:///{workdir}/md.db")
    result = LocalRunner(display="none").run(pipeline)
    node = result["CsvExampleGen"]
    assert result.ok, result.message
    peak = max(resource.getrusage(who).ru_maxrss
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    rows = sum(node.outputs["examples"][0].properties["num_examples"].values())
    print(json.dumps({"seconds": node.duration, "rows": rows, "peak_kb": peak}))
    """
)


def measure(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"measurement failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best(code: str, repeats: int, *args: str) -> dict:
    runs = [measure(code, *args) for _ in range(repeats)]
    return {"seconds": min(r["seconds"] for r in runs), "rows": runs[0]["rows"],
            "peak_kb": max(r["peak_kb"] for r in runs)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    csv_path, _ = make_taxi(args.rows)
    size_mb = csv_path.stat().st_size / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        csv_dir = Path(tmp, "input")
        csv_dir.mkdir()
        os.link(csv_path, csv_dir / csv_path.name)
        floor = best(FLOOR, args.repeats, str(csv_path))
        ours = []
        for i in range(args.repeats):
            ours.append(measure(OURS, str(csv_dir), str(Path(tmp, f"run{i}"))))
    ours_best = {"seconds": min(r["seconds"] for r in ours), "rows": ours[0]["rows"],
                 "peak_kb": max(r["peak_kb"] for r in ours)}  # fmt: skip
    assert ours_best["rows"] == floor["rows"], (ours_best, floor)
    ratio = ours_best["seconds"] / floor["seconds"]
    peak_mb = ours_best["peak_kb"] / 1024

    print("Conveyor CsvExampleGen benchmark")
    print(f"  machine : {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"  python  : {platform.python_version()}; input {args.rows:,} rows, {size_mb:.1f} MB CSV"
    )
    print(f"  best of {args.repeats}; each measurement in a fresh process\n")
    print(f"{'':28}{'seconds':>9}{'rows/s':>12}{'peak MB':>10}")
    for label, r in (("pyarrow.csv.read_csv (floor)", floor), ("CsvExampleGen", ours_best)):
        print(f"{label:28}{r['seconds']:9.2f}{r['rows'] / r['seconds']:12,.0f}"
              f"{r['peak_kb'] / 1024:10.0f}")  # fmt: skip
    print(f"\nCsvExampleGen / floor: {ratio:.2f}x")
    print("Targets")
    print(f"  [{'PASS' if ratio <= 2 else 'FAIL'}] within 2x of the floor ({ratio:.2f}x)")
    print(f"  [{'PASS' if peak_mb < 1024 else 'FAIL'}] peak memory under 1 GB ({peak_mb:.0f} MB)")
    print("For scale: TFDV's CSV-to-statistics pass handled 17.6k rows/s on our machines.")


if __name__ == "__main__":
    main()
