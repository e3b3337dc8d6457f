"""The load generator of ``bench/serving.py``: N concurrent clients on keep-alive connections
POST request bodies to one URL for a fixed time and record every request's latency.

It runs in its own process, so the server under test never shares an interpreter with its
load. The bodies file holds one JSON body per line, sent in turn. A warm-up (connections
opened, caches filled) is not counted; then every request within ``--seconds`` is timed,
and one JSON line is printed: ``{"requests", "errors", "error", "seconds", "rps", "p50_ms",
"p99_ms", "mean_ms", "client_cpu", "tool"}`` (``client_cpu``: the load generator's CPU time
over the measured wall time; near 1.0 means the client, not the server, set the pace).

Two clients, chosen with ``--tool``: ``wrk`` (C, one thread driving all connections, a Lua
script cycling through the bodies; Debian's ``wrk`` package), about 40 µs of CPU per
request, and ``aiohttp`` (asyncio on uvloop; client ``i`` starts at line ``i``), 0.2 to
0.3 ms. ``auto`` takes wrk when it is on PATH. At one client a request's round trip holds
the client's own time, so the cheaper client lets the server's speed show.

    .venv/bin/python bench/_load.py http://127.0.0.1:8501/v1/models/penguin:predict \\
        bodies.jsonl --clients 8 --seconds 5 --tool wrk
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time

HEADERS = {"Content-Type": "application/json"}

# wrk's script: every thread reads the bodies (args[1]) into ready-made requests and sends
# them in turn; done() prints the figures as one JSON line.
WRK_SCRIPT = r"""
local requests, next_index = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      requests[#requests + 1] =
        wrk.format("POST", nil, {["Content-Type"] = "application/json"}, line)
    end
  end
end
function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %f, ' ..
    '"status_errors": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


class Run:
    """What the clients share: when to count, when to stop, what they saw."""

    def __init__(self, start: float, stop: float) -> None:
        self.start = start
        self.stop = stop
        self.latencies: list[float] = []
        self.errors = 0
        self.error = ""
        self.last_finish = start


async def client(session, url: str, bodies: list[bytes], offset: int, run: Run) -> None:
    index = offset
    while True:
        began = time.perf_counter()
        if began >= run.stop:
            return
        body = bodies[index % len(bodies)]
        index += 1
        try:
            async with session.post(url, data=body, headers=HEADERS) as answer:
                text = await answer.read()
                ok = answer.status == 200
        except Exception as exc:  # aiohttp.ClientError: refused, reset, timed out
            ok, text = False, f"{type(exc).__name__}: {exc}".encode()
        finished = time.perf_counter()
        if began < run.start:
            continue
        if ok:
            run.latencies.append(finished - began)
        else:
            run.errors += 1
            run.error = run.error or text[:300].decode(errors="replace")
        run.last_finish = max(run.last_finish, finished)


async def load(url: str, bodies: list[bytes], clients: int, seconds: float, warmup: float):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        now = time.perf_counter()
        run = Run(now + warmup, now + warmup + seconds)
        await asyncio.sleep(0)
        cpu_at_start: list[float] = []

        async def mark_start() -> None:
            await asyncio.sleep(max(0.0, run.start - time.perf_counter()))
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu_at_start.append(usage.ru_utime + usage.ru_stime)

        await asyncio.gather(
            mark_start(), *(client(session, url, bodies, i, run) for i in range(clients))
        )
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime - cpu_at_start[0]
    return run, cpu


def summary(run: Run, cpu: float) -> dict:
    wall = max(run.last_finish - run.start, 1e-9)
    latencies = sorted(run.latencies)
    count = len(latencies)

    def quantile(q: float) -> float:
        return latencies[min(count - 1, int(q * count))] * 1e3 if count else float("nan")

    return {
        "requests": count,
        "errors": run.errors,
        "error": run.error,
        "seconds": wall,
        "rps": count / wall,
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "mean_ms": sum(latencies) / count * 1e3 if count else float("nan"),
        "client_cpu": cpu / wall,
    }


def wrk(url: str, bodies: str, clients: int, seconds: float, warmup: float) -> dict:
    """The figures of one ``wrk`` run after a warm-up run; its CPU from RUSAGE_CHILDREN."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        base = ["wrk", "-t1", f"-c{clients}", "--timeout", "60s", "-s", script.name]
        if warmup > 0:
            subprocess.run(
                [*base, f"-d{max(1, round(warmup))}s", url, bodies], capture_output=True, check=True
            )
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [*base, f"-d{max(1, round(seconds))}s", url, bodies],
            capture_output=True,
            text=True,
            check=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        os.unlink(script.name)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    wall = figures["duration_us"] / 1e6
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    errors = figures["status_errors"] + figures["socket_errors"]
    return {
        "requests": figures["requests"],
        "errors": errors,
        "error": f"{errors} non-2xx answers or socket errors (wrk)" if errors else "",
        "seconds": wall,
        "rps": figures["requests"] / wall,
        "p50_ms": figures["p50_us"] / 1e3,
        "p99_ms": figures["p99_us"] / 1e3,
        "mean_ms": figures["mean_us"] / 1e3,
        "client_cpu": cpu / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("bodies", help="a file with one JSON request body per line")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--tool", choices=["auto", "wrk", "aiohttp"], default="auto")
    args = parser.parse_args()
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "aiohttp"
    if tool == "wrk":
        result = wrk(args.url, args.bodies, args.clients, args.seconds, args.warmup)
        print(json.dumps({**result, "tool": "wrk"}))
        return
    with open(args.bodies, "rb") as file:
        bodies = [line.rstrip(b"\n") for line in file if line.strip()]
    try:
        import uvloop  # a cheaper event loop leaves more of the machine to the server

        run_loop = uvloop.run
    except ImportError:
        run_loop = asyncio.run
    gc.disable()  # no collector pauses inside the timed requests
    run, cpu = run_loop(load(args.url, bodies, args.clients, args.seconds, args.warmup))
    print(json.dumps({**summary(run, cpu), "tool": "aiohttp"}))


if __name__ == "__main__":
    main()
