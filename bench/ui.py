"""The web UI's pages with 1,000 runs in the store: how long each takes to serve.

One real penguin run (``examples/penguin/pipeline.py``, scikit-learn) fills a fresh SQLite
store with real artifacts; then ``--runs`` - 1 more runs are recorded the way the runner
records a fully cached re-run (every node ``CACHED``, pointing at the first run's outputs),
every tenth one failing at the Trainer instead (its downstream nodes never start). Each page
is requested once (the first request, timed apart: it fills the app's caches), then
``--repeats`` times, in-process (Starlette's test client: no sockets); the first, median and
worst wall times and the median CPU time (user + sys of this process, which the machine's
other work disturbs less) are printed. Target: every page under 300 ms with 1,000 runs,
the first request included.

    .venv/bin/python bench/ui.py                 # 1,000 runs, 5 requests a page
    .venv/bin/python bench/ui.py --runs 200 --repeats 3
    .venv/bin/python bench/ui.py --postgres     # a throwaway PostgreSQL server on loopback
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300


def build_store(folder: Path, runs: int, url: str) -> tuple[str, dict]:
    """The store at ``url`` filled with one real penguin run and ``runs - 1`` recorded
    re-runs."""
    sys.path.insert(0, str(ROOT / "examples" / "penguin"))
    from pipeline import create_pipeline

    from conveyor import LocalRunner
    from conveyor.metadata import MetadataStore

    pipeline = create_pipeline(
        root=folder / "root", metadata_url=url, push_destination=folder / "push"
    )
    first = LocalRunner(display="none").run(pipeline)
    assert first.ok, first.message
    store = MetadataStore(url)
    executions = store.executions(run_id=first.run_id)
    started = time.perf_counter()
    for i in range(1, runs):
        _record_rerun(store, first.pipeline, f"rerun-{i:05d}", executions, fail=i % 10 == 0)
    print(f"  recorded {runs - 1} runs in {time.perf_counter() - started:.1f} s")
    store.close()
    return url, {
        "first": first.run_id,
        "failed": "rerun-00010",
        "last": f"rerun-{runs - 1:05d}",
        "evaluation": first["Evaluator"].outputs["evaluation"][0].id,
        "model": first["Trainer"].outputs["model"][0].id,
        "evaluator": first["Evaluator"].execution_id,
    }


def _record_rerun(store, pipeline: str, run_id: str, executions, *, fail: bool) -> None:
    from conveyor.types import Model

    store.create_run(pipeline, run_id, {"trigger": "conveyor run examples/penguin/pipeline.py"})
    by_id = {}
    for e in executions:
        if fail and e.node_id == "Trainer":
            execution_id, _ = store.start_execution(
                pipeline=pipeline,
                run_id=run_id,
                node_id=e.node_id,
                type_name=e.type_name,
                properties=e.properties,
                cache_key=None,
                inputs=_artifacts(store, e.inputs, by_id),
                outputs={"model": Model},
                output_uri=lambda key, i: f"/nonexistent/{key}/{i}",
                log_uri=lambda i: None,
            )
            store.fail_execution(execution_id, "ValueError: the trainer failed")
            break
        store.record_execution(
            pipeline=pipeline,
            run_id=run_id,
            node_id=e.node_id,
            type_name=e.type_name,
            state="CACHED",
            properties={**e.properties, "cached_from": e.execution_id},
            cache_key=e.cache_key,
            inputs=_artifacts(store, e.inputs, by_id),
            outputs=_artifacts(store, e.outputs, by_id),
        )
    store.update_run(run_id, status="FAILED" if fail else "COMPLETE", ended_at=time.time())


def _artifacts(store, mapping: dict[str, list[int]], cache: dict) -> dict:
    missing = [i for ids in mapping.values() for i in ids if i not in cache]
    cache.update({a.id: a for a in store.artifacts(artifact_ids=missing)} if missing else {})
    return {key: [cache[i] for i in ids] for key, ids in mapping.items()}


def pages(ids: dict) -> dict[str, str]:
    return {
        "runs (newest 100)": "/",
        "runs, failed only": "/?status=FAILED",
        "runs, page 5": "/?pipeline=penguin-demo&page=5",
        "run (cached re-run)": f"/runs/{ids['last']}",
        "run (failed, resume)": f"/runs/{ids['failed']}",
        "run (the real one)": f"/runs/{ids['first']}",
        "execution (Evaluator)": f"/executions/{ids['evaluator']}",
        "artifact (evaluation)": f"/artifacts/{ids['evaluation']}",
        "artifact report": f"/artifacts/{ids['evaluation']}/report",
        "artifact (examples #1)": "/artifacts/1",
        "lineage (model)": f"/artifacts/{ids['model']}/lineage",
        "lineage (examples #1)": "/artifacts/1/lineage",
        "compare two runs": f"/compare?run={ids['first']}&run={ids['failed']}",
        "compare two models": f"/compare?artifact={ids['model']}&artifact={ids['model']}",
    }


def measure_pages(url: str, ids: dict, repeats: int) -> list[tuple]:
    """Per page: (label, first request ms, median ms, worst ms, median CPU ms). The first
    request of a page is timed apart: it fills the app's caches (templates, who made each
    artifact)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from conveyor.ui import create_app

    rows = []
    from conveyor.ui.app import environment

    with TestClient(create_app(url), base_url="http://127.0.0.1") as client:
        start = time.perf_counter()
        environment()  # what a fresh server does once, whichever page comes first
        assert client.get("/static/ui.css").status_code == 200
        print(f"  a fresh server's first request: {(time.perf_counter() - start) * 1e3:.0f} ms")
        for label, path in pages(ids).items():
            first = time.perf_counter()
            assert client.get(path).status_code == 200, path
            first = time.perf_counter() - first
            walls, cpus = [], []
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                answer = client.get(path)
                cpus.append(time.process_time() - cpu)
                walls.append(time.perf_counter() - wall)
                assert answer.status_code == 200, path
            figures = (first, _median(walls), max(walls), _median(cpus))
            rows.append((label, *(f * 1e3 for f in figures)))
    return rows


@contextlib.contextmanager
def _database(folder: Path, postgres: bool) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{folder / 'metadata.db'}"
        return
    sys.path.insert(0, str(ROOT))
    from tests.services import start_postgres

    with start_postgres() as server:
        yield server.url


def _median(values: list[float]) -> float:
    """(``statistics`` is this folder's benchmark, not the standard module.)"""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in the store (1000)")
    parser.add_argument("--repeats", type=int, default=5, help="requests a page (5)")
    parser.add_argument(
        "--postgres", action="store_true", help="a throwaway PostgreSQL server, not SQLite"
    )
    args = parser.parse_args()
    kind = "PostgreSQL" if args.postgres else "SQLite"
    print(f"UI pages with {args.runs:,} runs in a {kind} store")
    print(f"  machine : {os.cpu_count()} CPUs; median and worst of {args.repeats} requests\n")
    with tempfile.TemporaryDirectory() as folder, _database(Path(folder), args.postgres) as url:
        url, ids = build_store(Path(folder), args.runs, url)
        rows = measure_pages(url, ids, args.repeats)
    print(f"\n{'page':26}{'first ms':>9}{'median ms':>11}{'worst ms':>10}{'cpu ms':>9}  target")
    for label, first, median, worst, cpu in rows:
        verdict = "PASS" if max(first, median) < TARGET_MS else "FAIL"
        print(
            f"{label:26}{first:9.0f}{median:11.0f}{worst:10.0f}{cpu:9.0f}  {verdict} "
            f"(<{TARGET_MS} ms)"
        )


if __name__ == "__main__":
    main()
