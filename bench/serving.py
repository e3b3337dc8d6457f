"""The model server under load, against MLflow's scoring server on the same model.

The bundle is the scikit-learn penguin model (a z-score transform of the four raw features,
then LogisticRegression), saved with ``conveyor.frameworks.save_model`` as version 1 of a
model base. Conveyor's server (``conveyor.serving.start_server``, its own process) serves it
on a free loopback port; TF Serving's REST ``:predict`` takes ``{"instances": [...]}`` and
the Open Inference Protocol's ``/infer`` one typed tensor per feature. MLflow's scoring
server (``mlflow models serve --env-manager local``, from another virtualenv: MLflow is no
dependency of Conveyor) serves the same bundle directory through its ``MLmodel`` file and
takes ``{"dataframe_records": [...]}`` on ``/invocations``. Both run with the same number of
workers; both are checked to give the same labels before the load starts.

The load comes from ``bench/_load.py``, a fresh process per measurement: N clients on
keep-alive connections (``wrk`` when installed, else aiohttp; ``--load`` chooses, and both
servers get the same), a warm-up, then ``--seconds`` of requests, each one timed.
Single-row requests at 1, 8 and 64 clients (requests/s, p50, p99), and 256-row requests
(rows/s). Targets: at least 5x MLflow's single-row throughput at one client, and a p50
under 2 ms at one client.

    .venv/bin/python bench/serving.py                                     # Conveyor only
    .venv/bin/python bench/serving.py --mlflow-python /tmp/mlflow-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import print_header

ROOT = Path(__file__).resolve().parents[1]
PENGUIN = ROOT.parent / "shared" / "data" / "penguin" / "penguins_processed.csv"
LOAD = Path(__file__).resolve().parent / "_load.py"
FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
V1, V2, MLFLOW = "v1 :predict", "v2 /infer", "/invocations"
LOADS = {"wrk": "wrk, one thread", "aiohttp": "aiohttp on uvloop"}
MLFLOW_SETUP = (
    "python3 -m venv /tmp/mlflow-venv\n    /tmp/mlflow-venv/bin/pip install mlflow -e '.[sklearn]'"
)


def build_bundle(base: Path) -> list[dict[str, float]]:
    """Save the penguin bundle as ``base/1``; return the raw rows (features only)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import conveyor.transform as tft
    from conveyor.frameworks import save_model
    from conveyor.frameworks.inputs import feature_matrix

    frame = pd.read_csv(PENGUIN)

    def preprocessing_fn(inputs):
        scaled = {k: tft.scale_to_z_score(inputs[k]) for k in FEATURES}
        return scaled | {"species": inputs["species"]}

    fitted = tft.fit(preprocessing_fn, frame)
    transformed = fitted.transform(frame)
    model = LogisticRegression(max_iter=500).fit(
        feature_matrix(transformed, FEATURES), transformed["species"].to_numpy()
    )
    save_model(
        model,
        str(base / "1"),
        features=FEATURES,
        label="species",
        class_names=SPECIES,
        transform=fitted,
    )
    return frame[FEATURES].to_dict("records")


def write_bodies(path: Path, bodies: list[dict]) -> str:
    path.write_text("".join(json.dumps(body) + "\n" for body in bodies))
    return str(path)


def v2_body(row: dict[str, float]) -> dict:
    inputs = [{"name": k, "datatype": "FP64", "shape": [1], "data": [row[k]]} for k in FEATURES]
    return {"inputs": inputs}


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Case:
    """One measurement: ``clients`` concurrent clients POST ``rows``-row bodies to ``url``."""

    server: str
    label: str
    url: str
    bodies: str
    clients: int
    rows: int
    result: dict = field(default_factory=dict)


def measure(case: Case, args: argparse.Namespace) -> Case:
    """Fill ``case.result``: the best (highest throughput) of ``--repeats`` load-generator
    processes."""
    runs = []
    for _ in range(args.repeats):
        options = (
            f"--clients {case.clients} --seconds {args.seconds} --warmup {args.warmup} "
            f"--tool {args.load}"
        )
        command = [sys.executable, str(LOAD), case.url, case.bodies, *options.split()]
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"the load generator failed:\n{out.stdout}\n{out.stderr}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result["errors"]:
            raise SystemExit(f"{result['errors']} failed requests to {case.url}: {result['error']}")
        runs.append(result)
    case.result = max(runs, key=lambda r: r["rps"])
    return case


def cases(server: str, urls: dict[str, str], files: dict[str, str], args) -> list[Case]:
    """Single-row requests at each of ``--clients``, on each protocol in ``urls``; then
    ``--batch-rows``-row requests on the first protocol at each of ``--batch-clients``."""
    out = [
        Case(server, f"{protocol}, 1 row", url, files[protocol], clients, 1)
        for protocol, url in urls.items()
        for clients in args.clients
    ]
    protocol, url = next(iter(urls.items()))
    return out + [
        Case(server, f"{protocol}, {args.batch_rows} rows", url, files["many"], c, args.batch_rows)
        for c in args.batch_clients
    ]


def run_conveyor(base: Path, files: dict[str, str], check: list[dict], args):
    """(labels for ``check``, measured cases) of Conveyor's server on the model base."""
    from conveyor.serving import start_server

    with start_server(model_name="penguin", model_base=str(base), workers=args.workers) as server:
        url = f"{server.url}/v1/models/penguin:predict"
        labels = [p["prediction"] for p in post(url, {"instances": check})["predictions"]]
        urls = {V1: url, V2: f"{server.url}/v2/models/penguin/infer"}
        return labels, [measure(case, args) for case in cases("Conveyor", urls, files, args)]


def mlflow_version(python: str) -> str:
    probe = "import mlflow, conveyor.frameworks.mlflow_pyfunc; print(mlflow.__version__)"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(
            f"{python} cannot import mlflow and conveyor:\n{out.stderr[-2000:]}\n"
            f"Set it up with:\n    {MLFLOW_SETUP}"
        )
    return out.stdout.strip()


def run_mlflow(bundle: Path, files: dict[str, str], check: list[dict], tmp: Path, args):
    """(labels for ``check``, measured cases) of MLflow's scoring server on ``bundle``."""
    port = free_port()
    serve = f"-m mlflow models serve --env-manager local -h 127.0.0.1 -p {port} -w {args.workers}"
    command = [args.mlflow_python, *serve.split(), "-m", str(bundle)]
    # MLflow starts its workers with the `uvicorn` it finds on PATH: its own virtualenv's.
    bin_dir = str(Path(args.mlflow_python).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    log_path = tmp / "mlflow.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to end its workers with it
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not ping(f"{base}/ping"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"MLflow's server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        url = f"{base}/invocations"
        labels = post(url, {"dataframe_records": check})["predictions"]
        return labels, [measure(case, args) for case in cases("MLflow", {MLFLOW: url}, files, args)]
    finally:
        stop_group(process)


def ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop_group(process: subprocess.Popen) -> None:
    """End the MLflow server and the workers it started (its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def print_table(results: list[Case]) -> None:
    print(
        f"{'':36}{'clients':>8}{'requests/s':>12}{'rows/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'client CPU':>12}"
    )
    for case in results:
        r = case.result
        print(
            f"{case.server + ' ' + case.label:36}{case.clients:8}{r['rps']:12,.0f}"
            f"{r['rps'] * case.rows:11,.0f}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}"
            f"{r['client_cpu']:12.0%}"
        )


def report(results: list[Case], args: argparse.Namespace) -> None:
    """The Conveyor/MLflow ratios and the targets."""
    found = {(case.server, case.label, case.clients): case.result for case in results}
    many = f"{args.batch_rows} rows"
    one = found.get(("Conveyor", f"{V1}, 1 row", 1))
    mlflow_one = found.get(("MLflow", f"{MLFLOW}, 1 row", 1))
    print()
    if mlflow_one is not None:

        def ratios(what: str, concurrencies: list[int]) -> str:
            parts = []
            for c in concurrencies:
                ours = found[("Conveyor", f"{V1}, {what}", c)]["rps"]
                theirs = found[("MLflow", f"{MLFLOW}, {what}", c)]["rps"]
                parts.append(f"{c} client{'s' if c > 1 else ''} {ours / theirs:.1f}x")
            return ", ".join(parts)

        print(f"Conveyor / MLflow, single-row requests/s: {ratios('1 row', args.clients)}")
        print(f"Conveyor / MLflow, {many} per request, rows/s: {ratios(many, args.batch_clients)}")
    print("Targets")
    if one is None:
        print("  [----] nothing measured at 1 client (--clients without 1)")
        return
    if mlflow_one is not None:
        ratio = one["rps"] / mlflow_one["rps"]
        print(
            f"  [{'PASS' if ratio >= 5 else 'FAIL'}] at least 5x MLflow's single-row throughput "
            f"at 1 client: {one['rps']:,.0f} vs {mlflow_one['rps']:,.0f} requests/s ({ratio:.1f}x)"
        )
    else:
        print(
            "  [----] at least 5x MLflow's single-row throughput: MLflow not measured; pass "
            f"--mlflow-python, the Python of a virtualenv made with:\n    {MLFLOW_SETUP}"
        )
    verdict = "PASS" if one["p50_ms"] < 2 else "FAIL"
    print(f"  [{verdict}] p50 under 2 ms at 1 client: {one['p50_ms']:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-python", help="the Python of a virtualenv with mlflow")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="before each measurement")
    parser.add_argument("--clients", type=numbers, default=[1, 8, 64], help="e.g. 1,8,64")
    parser.add_argument("--batch-clients", type=numbers, default=[1, 8], help="for --batch-rows")
    parser.add_argument("--batch-rows", type=int, default=256)
    parser.add_argument("--workers", type=int, default=1, help="server processes, both servers")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--load",
        choices=["wrk", "aiohttp"],
        default="wrk" if shutil.which("wrk") else "aiohttp",
        help="the load generator (bench/_load.py): wrk when installed, else aiohttp",
    )
    args = parser.parse_args()
    version = mlflow_version(args.mlflow_python) if args.mlflow_python else None

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        base = tmp / "models" / "penguin"
        rows = build_bundle(base)
        many = [rows[i % len(rows)] for i in range(args.batch_rows)]
        check = rows[::40]
        files = {
            V1: write_bodies(tmp / "v1.jsonl", [{"instances": [r]} for r in rows]),
            V2: write_bodies(tmp / "v2.jsonl", [v2_body(r) for r in rows]),
            "many": write_bodies(tmp / "v1-many.jsonl", [{"instances": many}]),
        }
        labels, results = run_conveyor(base, files, check, args)
        if version:
            files = {
                MLFLOW: write_bodies(tmp / "mf.jsonl", [{"dataframe_records": [r]} for r in rows]),
                "many": write_bodies(tmp / "mf-many.jsonl", [{"dataframe_records": many}]),
            }
            theirs, more = run_mlflow(base / "1", files, check, tmp, args)
            if theirs != labels:
                raise SystemExit(f"the servers disagree: {labels} vs {theirs}")
            results += more

    mlflow_note = f"MLflow {version}" if version else "MLflow not measured"
    print_header(
        "Conveyor model server benchmark (scikit-learn penguin bundle, loopback)",
        f"{len(rows)} penguin rows cycled; {args.seconds:g} s per measurement after "
        f"{args.warmup:g} s warm-up;\n            {args.workers} server worker(s) each; "
        f"{mlflow_note}; load: bench/_load.py ({LOADS[args.load]}, keep-alive)",
        args.repeats,
    )
    print_table(results)
    report(results, args)


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


if __name__ == "__main__":
    main()
