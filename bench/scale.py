"""StatisticsGen and Transform under the local runner and under the Ray runner with Ray Data.

The input is the taxi-like table of ``bench/datasets.py`` (one Parquet file, row groups of
250,000 rows) laid out as an Examples folder under the pipeline root, brought in by an
Importer; Transform runs TFX's Chicago taxi ``preprocessing_fn`` as ``bench/transform.py``
does. Each runner runs the same pipeline (Importer -> StatisticsGen, Transform; one node at a
time) in a fresh Python process; the figures are the two nodes' durations. Under the Ray
runner both nodes take the data-parallel path: blocks of about 1M rows, each read, added to
partial statistics or accumulators, transformed and written by a Ray Data task, partials
merged in the component's process.

By default the Ray side is a cluster of two nodes on this machine (a head with 1 CPU and a
worker node with 2, separate processes) and PostgreSQL metadata started for the run, so on
one machine the point is the overhead (Ray / local) and the memory of each Ray worker, which
depends on the block size, not on the rows. ``--ray-address``, ``--root`` and
``--metadata-url`` run the Ray side on a real cluster instead (see bench/README.md).

    .venv/bin/python bench/scale.py --rows 1000000     # a quick run
    .venv/bin/python bench/scale.py                    # 10M rows
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import print_header  # noqa: E402
from datasets import make_taxi  # noqa: E402

MODULE = HERE.parent / "examples" / "chicago_taxi" / "preprocessing.py"

RUN = """
import json, resource, sys
from conveyor import Importer, LocalRunner, Pipeline, RayRunner
from conveyor.components import StatisticsGen, Transform
from conveyor.types import Examples
examples, root, metadata_url, address, module = sys.argv[1:6]
importer = Importer(examples, Examples)
statistics_gen = StatisticsGen(examples=importer.outputs["result"])
transform = Transform(examples=importer.outputs["result"], module_file=module)
pipeline = Pipeline(f"scale-{address != 'local'}-{id(root)}", [importer, statistics_gen,
                    transform], root=root, metadata_url=metadata_url)
if address == "local":
    runner = LocalRunner(max_workers=1, display="none")
else:
    runner = RayRunner(address or None, max_workers=1, shared_root="://" not in root,
                       display="none")
result = runner.run(pipeline)
assert result.ok, result.message
who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
peak = max(resource.getrusage(w).ru_maxrss for w in who)
stats, graph = result["StatisticsGen"], result["Transform"]
print(json.dumps({
    "StatisticsGen": stats.duration, "Transform": graph.duration, "peak_kb": peak,
    "rows": stats.outputs["statistics"][0].properties["num_examples"],
    "transformed": graph.outputs["transformed_examples"][0].properties["num_examples"],
    "engine": [stats.outputs["statistics"][0].properties.get("engine", "local"),
               graph.outputs["transformed_examples"][0].properties.get("engine", "local")],
}))
"""


def run(examples: str, root: str, metadata_url: str, address: str, env: dict) -> dict:
    args = [examples, root, metadata_url, address, str(MODULE)]
    out = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True,
                         env=env)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"the {address or 'ray'} run failed:\n{out.stdout}\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class RayMemory:
    """Samples the resident memory of this machine's Ray processes: each worker's peak."""

    def __init__(self) -> None:
        self.peaks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RayMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            for process in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                kind = _kind(process.info["cmdline"] or [])
                if kind and process.info["memory_info"] is not None:
                    rss = process.info["memory_info"].rss
                    seen, before = self.peaks.get(process.info["pid"], (kind, 0))
                    kind = seen if seen != "other Ray worker" else kind  # what it was busy as
                    self.peaks[process.info["pid"]] = (kind, max(before, rss))

    def by_kind(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for kind, rss in self.peaks.values():
            found.setdefault(kind, []).append(rss)
        return found


def _kind(cmdline: list[str]) -> str | None:
    text = " ".join(cmdline)
    if "conveyor.io._ray_driver" in text:
        return "Ray Data driver"
    if text.startswith("ray::conveyor-"):
        return "component process"
    if text.startswith("ray::") and "Map(" in text:
        return "Ray Data worker"
    if text.startswith("ray::IDLE") or text.startswith("ray::"):
        return "other Ray worker"
    return None


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--ray-address", help="a running cluster (default: one started here)")
    parser.add_argument("--root", help="the Ray run's pipeline root")
    parser.add_argument("--metadata-url", help="the Ray run's store (default: PostgreSQL here)")
    parser.add_argument("--examples", help="an Examples URI every node reads (default: taxi)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory() as tmp:
        _, parquet = make_taxi(args.rows)
        root = args.root or f"{tmp}/ray-root"
        examples = args.examples or _examples_under(Path(tmp, "ray-root", "input"), parquet)
        load_before = os.getloadavg()
        local = run(examples, f"{tmp}/local-root", f"sqlite:///{tmp}/local.db", "local",
                    os.environ.copy())  # fmt: skip
        with _Cluster(args) as (address, metadata_url), RayMemory() as memory:
            env = {**os.environ, "CONVEYOR_RAY_DATA_MIN_ROWS": "0"}
            on_ray = run(examples, root, metadata_url, address, env)
        load_after = os.getloadavg()
    _report(args, parquet, local, on_ray, memory, (load_before, load_after))


def _examples_under(folder: Path, parquet: Path) -> str:
    split = folder / "Split-train"
    split.mkdir(parents=True)
    os.link(parquet, split / "part-00000.parquet")
    return str(folder)


class _Cluster:
    """A head and a worker node on this machine and PostgreSQL, unless given."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cluster = self.postgres = None

    def __enter__(self) -> tuple[str, str]:
        address, url = self.args.ray_address, self.args.metadata_url
        if url is None:
            sys.path.insert(0, str(HERE.parent / "tests"))
            from services import start_postgres

            self.postgres = start_postgres()
            url = self.postgres.url
        if address is None:
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            from ray import cluster_utils

            self.cluster = cluster_utils.Cluster(
                initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
            )
            self.cluster.add_node(num_cpus=2)
            self.cluster.wait_for_nodes()
            address = self.cluster.address
        return address, url

    def __exit__(self, *exc: object) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()
        if self.postgres is not None:
            self.postgres.stop()


def _report(args, parquet, local, on_ray, memory, loads) -> None:
    where = args.ray_address or "a head (1 CPU) and a worker node (2 CPUs) on this machine"
    print_header(
        "Conveyor scale-out benchmark: local runner vs Ray runner with Ray Data",
        f"{args.rows:,} rows, {parquet.stat().st_size / 1e6:.1f} MB Parquet (taxi-like)",
        1,
    )
    print(f"  cluster : {where}")
    print(f"  load    : 1-min load average {loads[0][0]:.2f} before, {loads[1][0]:.2f} after\n")
    print(f"{'':16}{'local s':>10}{'Ray s':>10}{'Ray/local':>11}  Ray engine")
    for i, node in enumerate(("StatisticsGen", "Transform")):
        ratio = on_ray[node] / local[node]
        print(
            f"{node:16}{local[node]:10.2f}{on_ray[node]:10.2f}{ratio:10.2f}x  {on_ray['engine'][i]}"
        )
    same = on_ray["rows"] == local["rows"] and on_ray["transformed"] == local["transformed"]
    print(f"\nRows seen and written, local vs Ray: {'the same' if same else 'DIFFERENT'} "
          f"({local['rows']} / {on_ray['rows']})")  # fmt: skip
    print(f"Peak memory, local runner (driver and component processes): "
          f"{local['peak_kb'] / 1024:.0f} MB")  # fmt: skip
    print("Peak memory, Ray runner, per process on this machine:")
    for kind, peaks in sorted(memory.by_kind().items()):
        mb = sorted(p / 2**20 for p in peaks)
        print(f"  {kind:18} {len(mb):3d} process(es), max {mb[-1]:6.0f} MB, "
              f"min {mb[0]:6.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
