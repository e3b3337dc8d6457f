"""What the benchmarks share: measuring a snippet in a fresh Python process, and the header
every benchmark prints.

A measured snippet prints one JSON line last: ``{"seconds", "rows", "peak_kb"}``. The peak
covers the process and its children (the runner executes components in child processes).
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
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_PEAK = (
    "peak = max(resource.getrusage(who).ru_maxrss\n"
    "           for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))\n"
)


def floor_script(imports: str, read: str) -> str:
    """A snippet timing ``read`` (an expression of ``path`` = argv[1] giving a table)."""
    return (
        f"import json, resource, sys, time\n{imports}\npath = sys.argv[1]\n"
        f"start = time.perf_counter()\ntable = {read}\n"
        f"seconds = time.perf_counter() - start\n{_PEAK}"
        'print(json.dumps({"seconds": seconds, "rows": table.num_rows, "peak_kb": peak}))\n'
    )


def pipeline_script(build: str, node: str, output: str, imports: str = "") -> str:
    """A snippet that runs the pipeline ``build`` defines (as ``pipeline``, in ``workdir``: a
    fresh folder under argv[-1]) and reports ``node``'s duration and its ``output``'s rows.
    ``imports`` run first, off the clock, as a floor's imports do."""
    return (
        f"import json, resource, sys, tempfile\n{imports}\nfrom conveyor import LocalRunner\n"
        "workdir = tempfile.mkdtemp(dir=sys.argv[-1])\n"
        f"{textwrap.dedent(build)}\n"
        'result = LocalRunner(display="none").run(pipeline)\n'
        "assert result.ok, result.message\n"
        f"node = result[{node!r}]\n{_PEAK}"
        f'rows = sum(node.outputs[{output!r}][0].properties["num_examples"].values())\n'
        'print(json.dumps({"seconds": node.duration, "rows": rows, "peak_kb": peak}))\n'
    )


def measure(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"measurement failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of_each(snippets: list[tuple[str, ...]], repeats: int) -> list[dict]:
    """For each ``(code, *args)``, the fastest of ``repeats`` fresh-process measurements
    with the highest peak. They are measured in turns (one of each, ``repeats`` times), so
    that a slow spell of the machine falls on all of them alike."""
    runs: list[list[dict]] = [[] for _ in snippets]
    for _ in range(repeats):
        for measured, (code, *args) in zip(runs, snippets, strict=True):
            measured.append(measure(code, *args))
    return [{"seconds": min(r["seconds"] for r in measured), "rows": measured[0]["rows"],
             "peak_kb": max(r["peak_kb"] for r in measured)} for measured in runs]  # fmt: skip


def print_header(title: str, source: str, repeats: int) -> None:
    print(title)
    print(f"  machine : {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"  python  : {platform.python_version()}; input {source}")
    print(f"  best of {repeats}; each measurement in a fresh process\n")


def print_row(label: str, result: dict, width: int) -> None:
    print(f"{label:{width}}{result['seconds']:9.2f}{result['rows'] / result['seconds']:12,.0f}"
          f"{result['peak_kb'] / 1024:10.0f}")  # fmt: skip


def examples_folder(parquet_path: Path, tmp: str) -> Path:
    """An Examples folder whose only split is a hard link to ``parquet_path``."""
    folder = Path(tmp, f"examples-{parquet_path.stem}")
    split = folder / "Split-train"
    split.mkdir(parents=True)
    os.link(parquet_path, split / "part-00000.parquet")
    return folder


def sizes_arguments(description: str) -> argparse.Namespace:
    """``--rows``, ``--base-rows`` (measured too, for the memory comparison) and ``--repeats``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--base-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


def measure_sizes(args: argparse.Namespace, run_size: Callable[[int, int, str], T]) -> dict[int, T]:
    """``run_size(rows, repeats, tmp)`` at ``--base-rows`` and ``--rows``."""
    with tempfile.TemporaryDirectory() as tmp:
        return {rows: run_size(rows, args.repeats, tmp) for rows in dict.fromkeys(
            [args.base_rows, args.rows])}  # fmt: skip


def print_memory_flat(args: argparse.Namespace, peak_kb: int, base_peak_kb: int) -> None:
    """The target line: the peak at ``--rows`` under 1.5x the peak at ``--base-rows``."""
    peak, base_peak = peak_kb / 1024, base_peak_kb / 1024
    if args.rows == args.base_rows:
        print(f"  [----] memory flat: run with --rows 10000000 to compare (peak {peak:.0f} MB)")
        return
    ratio = peak / base_peak
    print(f"  [{'PASS' if ratio < 1.5 else 'FAIL'}] memory flat: peak at {args.rows:,} rows "
          f"under 1.5x the peak at {args.base_rows:,} ({peak:.0f} MB vs {base_peak:.0f} MB, "
          f"{ratio:.2f}x)")  # fmt: skip
