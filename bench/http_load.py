"""Serving over HTTP, and start-up: the production stack on 127.0.0.1, or gunicorn alone, under a bounded load.

    python -m bench.http_load                              # 30 s at 32 connections, 3 runs, trained artifacts
    python -m bench.http_load --stack full gunicorn        # the production stack, then gunicorn alone
    python -m bench.http_load --seconds 10 --repeats 1 --generator locust --artifacts-root DIR
    python -m bench.http_load --rate 420 --connections 128   # paced: the latency at a given load, not at saturation

Run from the repository root. Each run starts a fresh server bound to a free port on 127.0.0.1 (bench/servers.py)
and times process start -> first 200 from /readyz: ``full`` (the default) is what `make serve` and the container
run, deploy/serve.py: nginx in front of ``gunicorn --config gunicorn.conf.py`` (preloaded app, its workers and
threads), with the proxy's per-client limit raised (every connection of the load comes from one address; the limit
still runs); ``gunicorn`` is gunicorn alone, as served before issue 16. Then a load generator replays the
throughput mix of bench/request_mix.py on a fixed number of connections for a fixed time: Debian's wrk
(bench/wrk_mix.lua; the default when installed) or locust headless (bench/locustfile.py; per-endpoint figures
too). Reported: requests/s, p50/p99, errors (socket errors and non-2xx answers), the server's CPU per request (every
process of the stack: nginx, the gunicorn master and workers) and the generator's, and each gunicorn worker's
memory shortly before the load ends: RSS, PSS and USS, where USS (pages only that worker holds) is what a worker
adds beyond what it shares with the preloading master; for the stack, nginx's memory too.

By default every connection sends its next request as soon as the last is answered: the load saturates the
server, requests/s is its capacity, and the latency is mostly time queued behind the other connections (32 of
them, 8 served at once). ``--rate R`` (wrk only) paces the load instead: each connection waits connections / R
seconds before each request, so about R requests a second arrive (a little fewer: the wait does not count the
answer's own time; the achieved rate is what is reported), and p99 is the latency a client sees at that load.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.common import PROJECT_ROOT, median_of, save_json
from bench.request_mix import MIX, make_requests, write_requests
from bench.servers import (
    UNLIMITED_TRAFFIC,
    free_port,
    gunicorn_master,
    nginx_processes,
    start_server,
    stop_process_group,
    wait_until,
)
from config.paths_config import artifacts_root, model_dir

LOCUSTFILE = PROJECT_ROOT / "bench" / "locustfile.py"
WRK_SCRIPT = PROJECT_ROOT / "bench" / "wrk_mix.lua"
MIB = 2**20


def seconds_to_ready(process: subprocess.Popen, port: int, started: float, log_path: Path) -> float:
    """Seconds from ``started`` (just before gunicorn was started) until /readyz answers 200."""
    wait_until(port, "/readyz", process, timeout=120, log_path=log_path, interval=0.02)
    return time.perf_counter() - started


def wait_for_workers(master_pid: int, timeout: float = 10) -> set[int]:
    """The worker pids once every worker has been forked: /readyz answers as soon as the first one is up,
    so wait until the set of workers has not changed for half a second."""
    master, started = psutil.Process(master_pid), time.perf_counter()
    workers, stable_since = set(), time.perf_counter()
    while time.perf_counter() - started < timeout:
        current = {worker.pid for worker in master.children()}
        if current != workers:
            workers, stable_since = current, time.perf_counter()
        elif workers and time.perf_counter() - stable_since >= 0.5:
            break
        time.sleep(0.05)
    return workers


def memory(master_pid: int) -> dict:
    """Master and per-worker memory in MiB: RSS (all resident pages), PSS (shared pages split between the
    processes sharing them) and USS (pages held by this process alone)."""
    master = psutil.Process(master_pid)

    def figures(process: psutil.Process) -> dict:
        info = process.memory_full_info()
        return {"pid": process.pid, "rss_mib": round(info.rss / MIB, 1), "pss_mib": round(info.pss / MIB, 1),
                "uss_mib": round(info.uss / MIB, 1)}

    return {"master": figures(master), "workers": [figures(worker) for worker in master.children()]}


def server_cpu_seconds(top_pid: int) -> float:
    """CPU seconds (user + system) used so far by the server: the process started and everything below it (the
    gunicorn master and its workers, live or recycled; for the stack also nginx).

    gunicorn recycles a worker after ``max_requests``; once the master has reaped it, its CPU time is in the
    master's children times, so the total keeps counting it."""
    total = 0.0
    top = psutil.Process(top_pid)
    for process in [top, *top.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def nginx_rss_mib(process: subprocess.Popen) -> float | None:
    """nginx's memory (master and workers, RSS summed) under the stack; None for gunicorn alone."""
    pids = nginx_processes(process)
    if not pids:
        return None
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return round(total / MIB, 1)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_locust(port: int, seconds: int, connections: int, requests_file: Path, scratch: Path,
               rate: float | None = None) -> dict:
    """A headless locust run (one user per connection); aggregated and per-endpoint figures.

    Read from ``--json-file``, written once the run has ended (the CSV files are only refreshed every
    second, so they can miss the end of a run)."""
    if rate:
        raise ValueError("a paced load (--rate) needs wrk")
    # locust loads bench/locustfile.py by path: the repository root on PYTHONPATH makes `bench` importable there
    env = {**os.environ, "BENCH_REQUESTS_FILE": str(requests_file),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    json_prefix = scratch / f"locust-{port}"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(connections),
               "-r", str(connections), "-t", f"{seconds}s", "--host", f"http://127.0.0.1:{port}",
               "--json-file", str(json_prefix), "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=seconds + 120)
    stats_file = Path(f"{json_prefix}.json")
    if not stats_file.is_file():
        raise RuntimeError(f"locust wrote no statistics (exit {done.returncode}):\n{done.stderr[-3000:]}")
    entries = json.loads(stats_file.read_text(encoding="utf-8"))
    result = _locust_figures(entries)
    result["endpoints"] = {entry["name"]: _locust_figures([entry]) for entry in entries}
    return result


def _locust_figures(entries: list[dict]) -> dict:
    """Requests, errors, requests/s and p50/p99 of locust stats entries merged (response times in ms,
    histogram rounded as locust rounds them)."""
    histogram: dict[float, int] = {}
    for entry in entries:
        for milliseconds, count in entry["response_times"].items():
            histogram[float(milliseconds)] = histogram.get(float(milliseconds), 0) + count
    requests = sum(entry["num_requests"] for entry in entries)
    ends = [entry["last_request_timestamp"] for entry in entries if entry["last_request_timestamp"]]
    span = max(ends, default=0) - min((entry["start_time"] for entry in entries), default=0)

    def percentile(share: float) -> float | None:
        total, wanted = 0, share * sum(histogram.values())
        for milliseconds in sorted(histogram):
            total += histogram[milliseconds]
            if total >= wanted:
                return milliseconds
        return None

    return {"requests": requests, "errors": sum(entry["num_failures"] for entry in entries),
            "requests_per_second": round(requests / span, 1) if span > 0 else None,
            "p50_ms": percentile(0.5), "p99_ms": percentile(0.99),
            "max_ms": round(max((entry["max_response_time"] for entry in entries), default=0), 1)}


def run_wrk(port: int, seconds: int, connections: int, requests_file: Path, scratch: Path,
            rate: float | None = None, tally_header: str | None = None) -> dict:
    """A wrk run (two threads, ``connections`` connections) replaying the mix, saturating or paced at about
    ``rate`` requests/s; its aggregated figures. ``tally_header`` (e.g. X-Served-From): also count the answers by
    that header's value (bench/wrk_mix.lua), under "tally"."""
    command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
               "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}"]
    delay = {"BENCH_DELAY_MS": str(round(1000 * connections / rate))} if rate else {}
    tally = {"BENCH_TALLY_HEADER": tally_header} if tally_header else {}
    done = subprocess.run(command, env={**os.environ, "BENCH_REQUESTS_FILE": str(requests_file), **delay, **tally},
                          capture_output=True, text=True, timeout=seconds + 60)
    line = next((line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result (exit {done.returncode}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return {"requests": raw["requests"],
            # socket errors and non-2xx/3xx answers alike
            "errors": sum(raw[key] for key in raw if key.startswith("errors_")),
            "requests_per_second": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
            "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000, "max_ms": raw["max_us"] / 1000,
            **({"tally": raw["tally"]} if "tally" in raw else {}), "wrk": raw}


GENERATORS = {"wrk": run_wrk, "locust": run_locust}


def default_generator() -> str:
    """wrk when installed (`make bench` installs it): it needs a tenth of locust's CPU, leaving the cores to
    gunicorn."""
    return "wrk" if shutil.which("wrk") else "locust"


def one_run(root: Path, generator: str, seconds: int, connections: int, requests_file: Path, scratch: Path,
            stack: str = "full", rate: float | None = None) -> dict:
    """Start the server, time it to ready, load it, read its memory near the end and its CPU, stop it."""
    port = free_port()
    log_path = scratch / f"{stack}-{port}.log"
    started = time.perf_counter()
    process = start_server(stack, root, port, log_path, traffic=UNLIMITED_TRAFFIC)
    try:
        ready_seconds = seconds_to_ready(process, port, started, log_path)
        master_pid = gunicorn_master(process)
        workers_before = wait_for_workers(master_pid)
        idle_memory = memory(master_pid)
        sampled: dict = {}  # memory under load, read shortly before the load stops, from a timer thread
        timer = threading.Timer(max(seconds - 3, 1),
                                lambda: sampled.update(memory(master_pid), nginx_rss_mib=nginx_rss_mib(process)))
        timer.start()
        server_before, generator_before = server_cpu_seconds(process.pid), children_cpu_seconds()
        try:
            load = GENERATORS[generator](port, seconds, connections, requests_file, scratch, rate)
        finally:
            timer.cancel()
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn died during the load:\n{log_path.read_text()[-3000:]}")
        # CPU per request hardly depends on what else runs on the machine, unlike requests/s: it tells how
        # much of the two cores the server (and the load generator) needs for this mix.
        requests = max(load["requests"], 1)
        server_seconds = server_cpu_seconds(process.pid) - server_before
        load["server_cpu_ms_per_request"] = round(1000 * server_seconds / requests, 3)
        load["generator_cpu_ms_per_request"] = round(1000 * (children_cpu_seconds() - generator_before) / requests, 3)
        # max_requests in gunicorn.conf.py restarts a worker now and then; a restart during the load shows in p99
        workers_after = {worker.pid for worker in psutil.Process(master_pid).children()}
        load["workers_recycled"] = len(workers_after - workers_before)
    finally:
        stop_process_group(process)
    workers = (sampled or idle_memory)["workers"]
    return {"stack": stack, "ready_seconds": round(ready_seconds, 3), **load, "memory_idle": idle_memory,
            "nginx_rss_mib": sampled.get("nginx_rss_mib"),
            "memory_under_load": sampled or None, "workers": len(workers),
            "max_worker_uss_mib": max(worker["uss_mib"] for worker in workers),
            "max_worker_rss_mib": max(worker["rss_mib"] for worker in workers),
            "master_rss_mib": (sampled or idle_memory)["master"]["rss_mib"]}


KEYS = ["requests_per_second", "p50_ms", "p99_ms", "errors", "requests", "ready_seconds", "server_cpu_ms_per_request",
        "generator_cpu_ms_per_request", "max_worker_uss_mib", "max_worker_rss_mib", "master_rss_mib"]


def measure(root: Path, seconds: int = 30, connections: int = 32, repeats: int = 3, seed: int = 42,
            generator: str | None = None, stacks: tuple[str, ...] = ("full",), rate: float | None = None) -> dict:
    """``repeats`` runs of each stack, alternating (full, gunicorn, full, gunicorn, ...) so that both see the same
    machine; the first stack's figures are the result's top level, every stack's under ``stacks``. ``rate``: a
    paced load of about that many requests/s (wrk), else a saturating one."""
    generator = generator or default_generator()
    runs: dict[str, list[dict]] = {stack: [] for stack in stacks}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
        requests_file = write_requests(Path(scratch) / "requests.tsv", make_requests(model_dir(root), 50_000, seed))
        for _ in range(repeats):
            for stack in stacks:
                runs[stack].append(one_run(root, generator, seconds, connections, requests_file, Path(scratch), stack,
                                           rate))
    summary = {stack: {"runs": stack_runs, "median": median_of(stack_runs, KEYS)} for stack, stack_runs in runs.items()}
    first = summary[stacks[0]]
    return {"generator": generator, "seconds": seconds, "connections": connections, "repeats": repeats,
            "rate": rate, "mix": MIX, "stack": stacks[0], "runs": first["runs"], "median": first["median"],
            "stacks": {stack: figures["median"] for stack, figures in summary.items()}}


def measure_startup(root: Path, repeats: int = 3, stack: str = "full") -> dict:
    """Process start -> /readyz 200, the server as in production, ``repeats`` cold starts (no load)."""
    seconds = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        for _ in range(repeats):
            port, started = free_port(), time.perf_counter()
            log_path = Path(scratch) / "server.log"
            process = start_server(stack, root, port, log_path)
            try:
                seconds.append(round(seconds_to_ready(process, port, started, log_path), 3))
            finally:
                stop_process_group(process)
    return {"runs": seconds, "median": median_of([{"ready_seconds": s} for s in seconds], ["ready_seconds"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts-root", type=Path, default=None,
                        help="artifacts root holding model/ (default: ANIME_ARTIFACTS_DIR or artifacts/)")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--generator", choices=sorted(GENERATORS), help="default: wrk if installed, else locust")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stack", nargs="+", choices=["full", "gunicorn"], default=["full"],
                        help="full: the production stack (nginx + gunicorn, default); gunicorn: gunicorn alone")
    parser.add_argument("--rate", type=float, help="pace the load at about this many requests/s (wrk); "
                        "default: saturate the server")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.rate is not None and not args.rate > 0:
        parser.error(f"--rate must be above 0, got {args.rate:g}")
    if args.rate and (args.generator or default_generator()) != "wrk":
        parser.error("--rate needs wrk (make bench installs it)")
    result = measure(args.artifacts_root or artifacts_root(), args.seconds, args.connections, args.repeats, args.seed,
                     args.generator, tuple(args.stack), args.rate)
    print(json.dumps({key: value for key, value in result.items() if key != "runs"}, indent=2))
    if args.output:
        save_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
