"""How much the local runner costs on top of the work: 100 trivial nodes, two shapes.

Run it from the repository root::

    .venv/bin/python bench/orchestration.py [--nodes 100] [--repeats 3] [--workers N]

Each shape (a chain, where every node reads the previous node's output, and a fan-out,
where one source feeds every other node) is run cold (cache enabled, empty store) and then
re-run fully cached, in a fresh root folder with a fresh SQLite store for every repeat; the
best of ``--repeats`` is reported. Two references are measured in the same process: the bare
work (the component functions called directly) and the floor that process isolation alone
sets (one forked process per node doing the same work, joined). See bench/README.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_processes
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path

import sqlalchemy

from conveyor import Input, LocalRunner, Output, Param, Pipeline, component
from conveyor.orchestration import RunResult
from conveyor.types import Artifact

SHAPES = ("chain", "fan-out")
COLD_TARGET_MS = 30.0  # runner overhead per node, on top of the node's work
CACHED_TARGET_S = 1.0  # a fully cached re-run of the whole pipeline


def tiny_work(out: Artifact, upstream: Artifact | None, index: int) -> None:
    """The whole of a node's work: read a few bytes, write a few bytes."""
    seen = Path(upstream.uri, "value.txt").read_text() if upstream is not None else ""
    Path(out.uri, "value.txt").write_text(f"{seen[:16]}{index}\n")


# ``index`` keeps the fan-out's siblings apart: the cache key covers the component, its
# parameters and its inputs, not the node id, so identical siblings would share one entry.
@component
def Step(out: Output[Artifact], upstream: Input[Artifact] | None = None, index: Param[int] = 0):
    """A trivial component: optional input artifact in, a tiny file out."""
    tiny_work(out, upstream, index)


# ---------------------------------------------------------------------- building
def build_pipeline(shape: str, nodes: int, root: Path) -> Pipeline:
    steps = [Step(index=0).with_id("step_000")]
    for i in range(1, nodes):
        upstream = steps[-1] if shape == "chain" else steps[0]
        steps.append(Step(upstream=upstream.outputs["out"], index=i).with_id(f"step_{i:03d}"))
    return Pipeline(
        f"bench-{shape}",
        steps,
        root=root / "root",
        metadata_url=f"sqlite:///{root}/metadata.db",
    )


def upstream_index(shape: str, i: int) -> int | None:
    if i == 0:
        return None
    return i - 1 if shape == "chain" else 0


def make_outputs(shape: str, nodes: int, root: Path) -> list[tuple[Artifact, Artifact | None]]:
    """(output, upstream) artifacts with their folders made, for the references below."""
    outs = []
    for i in range(nodes):
        path = root / f"step_{i:03d}"
        path.mkdir(parents=True)
        outs.append(Artifact(str(path)))
    return [
        (outs[i], outs[j] if (j := upstream_index(shape, i)) is not None else None)
        for i in range(nodes)
    ]


# ---------------------------------------------------------------------- measuring
@dataclass
class ShapeFigures:
    shape: str
    nodes: int
    work_s: float  # bare work, whole pipeline, in-process
    floor_s: float  # one forked process per node, whole pipeline
    cold_s: float
    cached_s: float

    def per_node_ms(self, seconds: float) -> float:
        return 1000 * seconds / self.nodes

    @property
    def cold_overhead_ms(self) -> float:
        return self.per_node_ms(self.cold_s - self.work_s)

    @property
    def floor_overhead_ms(self) -> float:
        return self.per_node_ms(self.floor_s - self.work_s)


def time_bare_work(shape: str, nodes: int) -> float:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        pairs = make_outputs(shape, nodes, Path(tmp))
        start = time.perf_counter()
        for i, (out, upstream) in enumerate(pairs):
            Step.fn(out=out, upstream=upstream, index=i)
        return time.perf_counter() - start


def time_fork_floor(shape: str, nodes: int, workers: int) -> float:
    """Fork, do the work, join: one process per node, the chain one at a time, the fan-out's
    siblings ``workers`` at a time (as the runner schedules them)."""
    mp = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        pairs = make_outputs(shape, nodes, Path(tmp))
        start = time.perf_counter()
        run_forked(mp, [(0, *pairs[0])], 1)
        rest = [(i, *pairs[i]) for i in range(1, nodes)]
        run_forked(mp, rest, 1 if shape == "chain" else workers)
        return time.perf_counter() - start


Job = tuple[int, Artifact, Artifact | None]  # (index, output, upstream)


def run_forked(mp: BaseContext, jobs: list[Job], workers: int) -> None:
    running: dict[int, BaseProcess] = {}
    for index, out, upstream in jobs:
        while len(running) >= workers:
            for sentinel in wait_for_processes(list(running)):
                finish_forked(running.pop(sentinel))
        kwargs = {"out": out, "upstream": upstream, "index": index}
        process = mp.Process(target=Step.fn, kwargs=kwargs)
        process.start()
        running[process.sentinel] = process
    for process in running.values():
        finish_forked(process)


def finish_forked(process: BaseProcess) -> None:
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"A forked reference process exited with {process.exitcode}.")


def time_runner(shape: str, nodes: int, workers: int) -> tuple[float, float]:
    """(cold, cached) seconds for one fresh root and store."""
    runner = LocalRunner(max_workers=workers, display="none")
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        pipeline = build_pipeline(shape, nodes, Path(tmp))
        start = time.perf_counter()
        cold = runner.run(pipeline, enable_cache=True)
        cold_s = time.perf_counter() - start
        check_states(shape, "cold", cold, {"COMPLETE"})
        start = time.perf_counter()
        cached = runner.run(pipeline, enable_cache=True)
        cached_s = time.perf_counter() - start
        check_states(shape, "cached re-run", cached, {"CACHED"})
        return cold_s, cached_s


def check_states(shape: str, which: str, result: RunResult, expected: set[str]) -> None:
    states = {node_id: r.state for node_id, r in result.nodes.items()}
    wrong = {n: s for n, s in states.items() if s not in expected}
    if result.status != "COMPLETE" or wrong:
        sample = ", ".join(f"{n}={s}" for n, s in sorted(wrong.items())[:5])
        raise SystemExit(
            f"The {shape} {which} went wrong: run status {result.status}, expected every node "
            f"{'/'.join(sorted(expected))}; got {sample or 'nothing unexpected'}.\n"
            f"{result.message or ''}"
        )


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeats))


def measure_shape(shape: str, nodes: int, repeats: int, workers: int) -> ShapeFigures:
    runs = [time_runner(shape, nodes, workers) for _ in range(repeats)]
    return ShapeFigures(
        shape=shape,
        nodes=nodes,
        work_s=best_of(repeats, lambda: time_bare_work(shape, nodes)),
        floor_s=best_of(repeats, lambda: time_fork_floor(shape, nodes, workers)),
        cold_s=min(cold for cold, _ in runs),
        cached_s=min(cached for _, cached in runs),
    )


# ---------------------------------------------------------------------- reporting
def print_machine(nodes: int, repeats: int, workers: int) -> None:
    print("Conveyor orchestration benchmark")
    print(f"  machine : {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"  python  : {sys.version.split()[0]} ({platform.python_implementation()}), "
          f"SQLAlchemy {sqlalchemy.__version__}")  # fmt: skip
    print(f"  setup   : {nodes} nodes per pipeline, best of {repeats}, max_workers={workers}, "
          "SQLite store, fork")  # fmt: skip
    print()


def print_table(figures: list[ShapeFigures]) -> None:
    header = ("shape", "work/node", "cold run", "overhead/node", "fork floor/node",
              "overhead/floor", "cached re-run", "cached/node")  # fmt: skip
    rows = [
        (
            f.shape,
            f"{f.per_node_ms(f.work_s):.3f} ms",
            f"{f.cold_s:.2f} s",
            f"{f.cold_overhead_ms:.1f} ms",
            f"{f.floor_overhead_ms:.1f} ms",
            f"{f.cold_overhead_ms / f.floor_overhead_ms:.1f}x",
            f"{f.cached_s:.2f} s",
            f"{f.per_node_ms(f.cached_s):.1f} ms",
        )
        for f in figures
    ]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells))
    print()


def print_targets(figures: list[ShapeFigures]) -> None:
    print("Targets")
    for f in figures:
        verdict(
            f.cold_overhead_ms <= COLD_TARGET_MS,
            f"{f.shape}: cold overhead {f.cold_overhead_ms:.1f} ms/node "
            f"<= {COLD_TARGET_MS:.0f} ms/node",
        )
        verdict(
            f.cached_s <= CACHED_TARGET_S,
            f"{f.shape}: cached re-run of {f.nodes} nodes {f.cached_s:.2f} s "
            f"<= {CACHED_TARGET_S:.0f} s",
        )


def verdict(ok: bool, text: str) -> None:
    print(f"  [{'PASS' if ok else 'FAIL'}] {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100, help="nodes per pipeline (>= 2)")
    parser.add_argument("--repeats", type=int, default=3, help="take the best of this many")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="the runner's max_workers (default: CPU count)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.repeats < 1 or args.workers < 1:
        parser.error("--nodes must be >= 2, --repeats and --workers >= 1")
    print_machine(args.nodes, args.repeats, args.workers)
    figures = [measure_shape(s, args.nodes, args.repeats, args.workers) for s in SHAPES]
    print_table(figures)
    print_targets(figures)
    print()
    print("overhead/node = cold run / nodes - work/node; fork floor/node likewise for a bare")
    print("fork+join per node. The fan-out runs its siblings max_workers at a time.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
