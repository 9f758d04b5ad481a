"""The whole pipeline at full size, then its served model (issue 14): every stage's wall time, CPU time and peak
RSS, where the time goes inside each, training throughput, and serving: start-up, memory per worker, in-process
and HTTP latency of every endpoint, HTTP throughput.

    python -m bench.full_size --rows 109224747 --max-users 8000    # make bench-full: the full-size synthetic file
    python -m bench.full_size --rows 10000000                      # make bench-quick's pipeline part
    python -m bench.full_size --raw-dir ~/kaggle/anime-2020        # the real Kaggle files instead
    python -m bench.full_size --rows 10000000 --sampling           # + the evaluation-sample stability check

Run from the repository root. A synthetic animelist.csv (bench/synthetic_animelist.py) is generated into a scratch
folder under ``--workdir`` (default: the system temp dir; 2.0 GB at full size), next to the artifacts root the
pipeline writes; both are deleted at the end unless ``--keep``. Each stage of ``pipeline/training_pipeline.py``
(ingest, process, train, evaluate, refit) runs as its own process, as ``--stage`` runs it, through
bench/stage_probe.py: wall time (process start to exit, imports included), CPU seconds and peak RSS (the
kernel's ``ru_maxrss`` of that process, from ``wait4``) per stage; inside each, its named steps (choosing the
hybrid's settings, each NCF fit, each EASE inversion, the publication of a model, ...) and a sampled profile.
Publishing happens inside train (the evaluation model) and refit (the served model): its seconds are the exit of
``publish_model``/``atomic_directory`` (load checks and the rename) plus the writes before it, shown apart.
The load average before and after each stage and the CPU seconds other processes used meanwhile are recorded:
the machine may be shared.

Serving (unless ``--skip-serving``): the published model under gunicorn as production runs it (bench/servers.py):
cold starts to /readyz 200, the HTTP mix (bench/http_load.py: wrk or locust; requests/s, p50/p99, memory per
worker), per-endpoint HTTP latency on one keep-alive connection (every API endpoint, the pages and the probes), and
in-process latency (bench/serving_latency.py's kinds, engine alone and through Flask, plus the pages).

Writes bench/results/full_size-<rows>.json (everything) and .md (the tables) and prints the tables.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# As under gunicorn (gunicorn.conf.py): one BLAS thread per process for the serving figures, set before numpy.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from bench.common import PROJECT_ROOT, RESULTS_DIR, machine, now, save_json  # noqa: E402

STAGES = ("ingest", "process", "train", "evaluate", "refit")
GB = 1e9
# Issue 14's budgets on 2 cores: the whole pipeline at full size and at 10 M rows.
BUDGETS = {"full": {"seconds": 1800, "peak_rss_gb": 10.0}, "10M": {"seconds": 300, "peak_rss_gb": 6.0}}
STACK_NAMES = {"full": "nginx + gunicorn (production stack)", "gunicorn": "gunicorn alone"}
SERVING_TARGETS = {"ready_seconds": 15.0, "worker_mb": 300.0, "p99_ms": {"hybrid": 20.0, "favourites": 20.0},
                   "http_rps": 400.0, "http_p99_ms": 100.0}
# The pipeline made tiny for tests/test_bench.py: every code path in seconds, figures meaningless.
SMOKE_CONFIG = {
    "model": {"embedding_size": 8, "jit_compile": False},
    "training": {"epochs": 2, "verbose": 0},
    "hybrid": {"item_item": {"values": ["any"], "regularisation": [200], "neighbours": [None]},
               "weights": [1.0], "similar_users": [20]},
    "evaluation": {"baselines": {"item_knn": {"values": ["any"], "shrink": [0], "neighbours": [50]},
                                 "als": {"values": ["any"], "factors": [8], "regularization": [10], "alpha": [5],
                                         "iterations": [2]}}},
}


# ------------------------------------------------------------------------------------------------------- stages
class TreeMemory:
    """The summed RSS of a process and its descendants, sampled twice a second from this process."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                root = psutil.Process(self.pid)
                total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            except psutil.Error:
                continue
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=2)
        return self.peak


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all processes, every core)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def run_stage(stage: str, pipeline_args: list[str], root: Path, scratch: Path, timeout: float) -> dict[str, Any]:
    """One stage in a fresh process through bench/stage_probe.py; its figures and the probe's report."""
    report_path, log_path = scratch / f"{stage}.probe.json", scratch / f"{stage}.log"
    env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(variable, None)  # the pipeline uses every core, as a user's run does
    command = [sys.executable, "-m", "bench.stage_probe", "--stage", stage, "--report", str(report_path), "--",
               *pipeline_args]
    load_before, busy_before = os.getloadavg(), busy_cpu_seconds()
    print(f"[{time.strftime('%H:%M:%S')}] {stage}: {' '.join(pipeline_args) or '(defaults)'}", flush=True)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    memory = TreeMemory(process.pid)
    deadline = started + timeout
    while True:  # wait4 gives this child's own rusage (peak RSS, CPU), not a running maximum over all children
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.1)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    tree_peak = memory.stop()
    busy = busy_cpu_seconds() - busy_before
    cpu = usage.ru_utime + usage.ru_stime
    result = {"stage": stage, "args": pipeline_args, "returncode": process.returncode, "wall_seconds": round(wall, 2),
              "cpu_seconds": round(cpu, 1), "peak_rss_bytes": usage.ru_maxrss * 1024, "tree_peak_rss_bytes": tree_peak,
              "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "other_processes_cpu_seconds": round(max(busy - cpu, 0.0), 1), "log": str(log_path)}
    if report_path.is_file():
        result["probe"] = json.loads(report_path.read_text(encoding="utf-8"))
    if process.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"stage {stage} failed ({process.returncode}) after {wall:.0f} s:\n{tail}")
    print(f"    {wall:.1f} s wall, {cpu:.0f} CPU s, peak RSS {usage.ru_maxrss * 1024 / GB:.2f} GB, "
          f"load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    return result


def write_overlay(path: Path, overlay: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(overlay, sort_keys=False), encoding="utf-8")
    return path


def run_pipeline(raw_dir: Path, root: Path, scratch: Path, overlay: dict[str, Any],
                 min_user_ratings: int | None, timeout: float) -> dict[str, Any]:
    common = ["--config", str(write_overlay(scratch / "overlay.yaml", overlay))] if overlay else []
    stages = {}
    for stage in STAGES:
        args = list(common)
        if stage == "ingest":
            args += ["--raw-dir", str(raw_dir)]
        if stage == "process" and min_user_ratings is not None:
            args += ["--min-user-ratings", str(min_user_ratings)]
        stages[stage] = run_stage(stage, args, root, scratch, timeout)
    return stages


# ------------------------------------------------------------------------------------------------------- serving
def endpoint_requests(model_dir: Path, per_kind: int, seed: int) -> dict[str, list[Any]]:
    """Per endpoint kind, ``per_kind`` valid requests: the throughput mix's API kinds (bench/request_mix.py), every
    page and probe of the soak's valid mix (by their labels, whatever the mix holds), and the OpenAPI document."""
    import random

    from bench.request_mix import THROUGHPUT, Request, ServedModel, SoakMix

    model = ServedModel.from_folder(model_dir)
    rng = random.Random(seed)
    kinds: dict[str, Any] = {kind: (lambda r, build=build: build(model, r)) for kind, (_, build) in THROUGHPUT.items()}
    for build in SoakMix(model).valid:
        kind = build(random.Random(0)).kind
        if kind.startswith(("page", "probe")):
            kinds[kind] = build
    kinds["openapi"] = lambda r: Request("openapi", "GET", "/api/openapi.json")
    return {kind: [build(rng) for _ in range(per_kind)] for kind, build in kinds.items()}


def _percentiles(milliseconds: list[float]) -> dict[str, float]:
    values = np.array(milliseconds)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2),
            "max_ms": round(float(values.max()), 2), "requests": len(values)}


def http_endpoint_latency(root: Path, per_kind: int, warmup: int, seed: int, scratch: Path,
                          stack: str = "full") -> dict[str, Any]:
    """The server as in production (bench/servers.py: nginx in front of gunicorn, or gunicorn alone), its
    per-client rate limit lifted; each endpoint's requests one after another on one keep-alive connection (no
    queueing: the latency of the request itself, network stack, proxy and gunicorn included)."""
    from bench.servers import UNLIMITED_TRAFFIC, free_port, start_server, stop_process_group, wait_until
    from config.paths_config import model_dir

    requests = endpoint_requests(model_dir(root), per_kind + warmup, seed)
    port, log_path = free_port(), scratch / f"{stack}-endpoints.log"
    process = start_server(stack, root, port, log_path, traffic=UNLIMITED_TRAFFIC if stack == "full" else None)
    results: dict[str, Any] = {}
    try:
        wait_until(port, "/readyz", process, timeout=300, log_path=log_path)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for kind, batch in requests.items():
            timings, statuses = [], {}
            for index, request in enumerate(batch):
                started = time.perf_counter()
                connection.request(request.method, request.path, body=request.body, headers=request.headers)
                response = connection.getresponse()
                response.read()
                if index >= warmup:
                    timings.append((time.perf_counter() - started) * 1000)
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            results[kind] = {**_percentiles(timings), "statuses": statuses}
        connection.close()
    finally:
        stop_process_group(process)
    return results


def serving_child(folder: Path, requests: int, warmup: int, seed: int) -> dict[str, Any]:
    """In process (no network): bench/serving_latency.py's API kinds, engine alone and through Flask, then every
    page and probe through Flask; the process's memory after loading and after the requests."""
    from application import create_app
    from bench import serving_latency
    from src.web.state import EXTENSION_KEY

    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    app = create_app({"ARTIFACTS_DIR": str(folder)})
    load_seconds = time.perf_counter() - started
    engine = app.extensions[EXTENSION_KEY].recommender
    if engine is None:
        raise RuntimeError(f"no model to serve in {folder}: {app.extensions[EXTENSION_KEY].reason}")
    rss_loaded = process.memory_info().rss
    client = app.test_client()
    api = serving_latency.measure_engine(engine, client, requests, warmup, seed)
    pages: dict[str, Any] = {}
    for kind, batch in endpoint_requests(folder, requests + warmup, seed).items():
        if kind in serving_latency.KINDS:
            continue  # measured above, engine and Flask apart
        timings = []
        for index, request in enumerate(batch):
            began = time.perf_counter()
            response = client.open(request.path, method=request.method, data=request.body, headers=request.headers)
            if response.status_code != request.expected:
                raise RuntimeError(f"{request.method} {request.path} answered {response.status_code}")
            if index >= warmup:
                timings.append((time.perf_counter() - began) * 1000)
        pages[kind] = _percentiles(timings)
    return {"load_seconds": round(load_seconds, 2), "rss_before_load_bytes": rss_before,
            "rss_after_load_bytes": rss_loaded, "rss_after_requests_bytes": process.memory_info().rss,
            "n_users": engine.n_users, "n_anime": engine.n_anime, "api": api["median"], "pages": pages,
            "requests_per_kind": requests, "warmup_per_kind": warmup}


def measure_serving(root: Path, scratch: Path, settings: dict[str, Any]) -> dict[str, Any]:
    from bench import http_load
    from config.paths_config import model_dir

    results: dict[str, Any] = {"model_bytes": _folder_bytes(model_dir(root).resolve())}
    print(f"[{time.strftime('%H:%M:%S')}] serving: cold starts", flush=True)
    results["startup"] = {stack: http_load.measure_startup(root, settings["startup_repeats"], stack)
                          for stack in settings["stacks"]}
    print(f"[{time.strftime('%H:%M:%S')}] serving: in process", flush=True)
    report = scratch / "serving-child.json"
    done = subprocess.run([sys.executable, "-m", "bench.full_size", "--serving-child", str(model_dir(root)),
                           "--requests", str(settings["requests"]), "--output", str(report)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"in-process serving failed:\n{done.stderr[-3000:]}")
    results["in_process"] = json.loads(report.read_text(encoding="utf-8"))
    print(f"[{time.strftime('%H:%M:%S')}] serving: HTTP per endpoint", flush=True)
    results["http_endpoints"] = http_endpoint_latency(root, settings["endpoint_requests"], 20, 42, scratch,
                                                      settings["stacks"][0])
    print(f"[{time.strftime('%H:%M:%S')}] serving: HTTP mix", flush=True)
    load_before = os.getloadavg()
    mix = http_load.measure(root, settings["http_seconds"], settings["http_connections"], settings["http_repeats"],
                            stacks=tuple(settings["stacks"]))
    results["http_mix"] = {key: value for key, value in mix.items() if key != "runs"}
    results["http_mix"]["runs"] = [{key: value for key, value in run.items() if key not in ("wrk",)}
                                   for run in mix["runs"]]
    results["http_mix"]["load_average_before"] = [round(v, 2) for v in load_before]
    # The saturating load measures capacity; its latency is mostly queueing behind the other connections. The
    # target's "p99 at 400 requests/s" is measured at that load, paced (Poisson arrivals), on the production stack.
    if http_load.default_generator() != "wrk":
        print("serving: wrk is not installed, so the paced load is skipped (make bench-full installs it)", flush=True)
        return results
    print(f"[{time.strftime('%H:%M:%S')}] serving: HTTP mix paced at {settings['paced_rate']:g} requests/s", flush=True)
    paced = http_load.measure(root, settings["http_seconds"], settings["paced_connections"],
                              settings["http_repeats"], stacks=(settings["stacks"][0],), rate=settings["paced_rate"])
    results["http_paced"] = {key: value for key, value in paced.items() if key != "runs"}
    return results


def _folder_bytes(folder: Path) -> dict[str, int]:
    files = {path.name: path.stat().st_size for path in sorted(folder.iterdir()) if path.is_file()}
    return {"total": sum(files.values()), **files}


# ------------------------------------------------------------------------------------------------------- report
def pipeline_outcome(root: Path) -> dict[str, Any]:
    """What the run produced: the processed summary, the served model's manifest figures, the evaluation."""
    from config import paths_config

    def read(path: Path) -> dict[str, Any]:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    summary = read(paths_config.processed_dir(root) / "summary.json")
    served = read(paths_config.model_dir(root) / "manifest.json")
    evaluated = read(paths_config.evaluation_model_dir(root) / "manifest.json")
    metrics = read(paths_config.reports_dir(root) / "metrics.json")
    keep = ("users", "anime", "catalogue", "interactions", "rated", "train", "validation", "test", "newcomers",
            "rows_read", "min_user_ratings")
    return {
        "processed": {key: summary.get(key) for key in keep if key in summary},
        "evaluation_model": {"counts": evaluated.get("counts"), "training": evaluated.get("training"),
                             "hybrid": {k: v for k, v in evaluated.get("hybrid", {}).items() if k != "carve"},
                             "carve": {k: v for k, v in evaluated.get("hybrid", {}).get("carve", {}).items()
                                       if k != "trials"}},
        "served_model": {"version": served.get("version"), "counts": served.get("counts"),
                         "training": served.get("training")},
        "metrics": {"known_users": metrics.get("methods"), "newcomers": (metrics.get("newcomers") or {}).get("methods"),
                    "meta": {k: v for k, v in (metrics.get("meta") or {}).items()
                             if k in ("users_evaluated", "users", "anime", "test_interactions", "k")}},
    }


def budget_for(rows: int | None) -> tuple[str, dict[str, float]] | None:
    if rows is None:
        return None
    if rows >= 100_000_000:
        return "full", BUDGETS["full"]
    if 9_000_000 <= rows <= 11_000_000:
        return "10M", BUDGETS["10M"]
    return None


def _verdict(ok: bool) -> str:
    return "ok" if ok else "**MISSED**"


def _gb(value: float) -> str:
    return f"{value / GB:.2f}"


def _top_sections(probe: dict[str, Any], stage_seconds: float, limit: int = 3) -> str:
    rows = [(path.split(" > ", 1)[1], entry["seconds"]) for path, entry in probe.get("sections", {}).items()
            if path.count(" > ") == 1 and not path.endswith("(rest)")]
    rows.sort(key=lambda row: -row[1])
    return "; ".join(f"{name} {seconds:.0f} s" for name, seconds in rows[:limit] if seconds >= 0.5) or ""


def pipeline_tables(report: dict[str, Any]) -> list[str]:
    stages = report["stages"]
    lines = ["| stage | wall s | start-up (imports) s | CPU s | peak RSS GB | load before -> after | "
             "others' CPU s | biggest steps |", "|---|---|---|---|---|---|---|---|"]
    for name, stage in stages.items():
        probe = stage.get("probe", {})
        lines.append(f"| {name} | {stage['wall_seconds']:.1f} | {probe.get('start_up_seconds', 0):.1f} | "
                     f"{stage['cpu_seconds']:.0f} | {_gb(stage['peak_rss_bytes'])} | "
                     f"{stage['load_average_before'][0]:.1f} -> {stage['load_average_after'][0]:.1f} | "
                     f"{stage['other_processes_cpu_seconds']:.0f} | {_top_sections(probe, stage['wall_seconds'])} |")
    total = report["pipeline"]
    budget = report.get("budget")
    verdict = ""
    if budget:
        verdict = (f" (budget {budget['seconds']} s: {_verdict(total['wall_seconds'] <= budget['seconds'])}; "
                   f"{budget['peak_rss_gb']} GB: {_verdict(total['peak_rss_bytes'] / GB <= budget['peak_rss_gb'])})")
    lines.append(f"| **whole pipeline** | **{total['wall_seconds']:.0f}** | | {total['cpu_seconds']:.0f} | "
                 f"**{_gb(total['peak_rss_bytes'])}** | | | {verdict} |")
    lines += ["", "Inside the stages (seconds; peak RSS GB while the step ran; steps under 1% of their stage "
              "left out):", "", "| step | seconds | calls | peak RSS GB |", "|---|---|---|---|"]
    for stage in stages.values():
        sections = stage.get("probe", {}).get("sections", {})
        floor = 0.01 * stage["wall_seconds"]
        for path, entry in sections.items():
            if entry["seconds"] >= floor and " > " in path:
                peak = entry.get("peak_rss_bytes")
                lines.append(f"| {path} | {entry['seconds']:.1f} | {entry.get('calls') or ''} | "
                             f"{_gb(peak) if peak else ''} |")
    fits = [fit for stage in stages.values() for fit in stage.get("probe", {}).get("ncf_fits", [])]
    if fits:
        lines += ["", "NCF fits (throughput over every epoch; after the first, which compiles):", "",
                  "| fit | users | interactions | anime | epochs | seconds (first epoch) | users/s | interactions/s |",
                  "|---|---|---|---|---|---|---|---|"]
        for fit in fits:
            first = fit["epoch_seconds"][0] if fit["epoch_seconds"] else 0
            lines.append(f"| {fit['section']} | {fit['users']:,} | {fit['interactions']:,} | {fit['anime']:,} | "
                         f"{fit['epochs']} | {fit['seconds']:.0f} ({first:.1f}) | "
                         f"{fit['users_per_second']:,.0f} ({fit['users_per_second_after_first_epoch']:,.0f}) | "
                         f"{fit['interactions_per_second']:,.0f} "
                         f"({fit['interactions_per_second_after_first_epoch']:,.0f}) |")
    return lines


def profile_lines(report: dict[str, Any], top: int = 8) -> list[str]:
    lines = ["", "Sampled profile (share of each stage's time with the function on the stack; innermost calls):", ""]
    for name, stage in report["stages"].items():
        samples = stage.get("probe", {}).get("samples", {})
        functions = [f"{entry['name']} {entry['share']:.0%}" for entry in samples.get("project_functions", [])
                     if not entry["name"].startswith(("pipeline/", "bench/"))][:top]
        inner = [f"{entry['name']} {entry['share']:.0%}" for entry in samples.get("innermost_calls", [])][:4]
        lines.append(f"- **{name}**: {', '.join(functions)}; innermost: {', '.join(inner)}")
    return lines


def _mix_rows(mix: dict[str, Any], server: str, median: dict[str, Any]) -> list[str]:
    uss_mb = median["max_worker_uss_mib"] * 2**20 / 1e6
    return [
        f"| {server}: memory a worker adds (USS; its RSS; master RSS) | {median['max_worker_uss_mib']:.0f} MiB "
        f"({median['max_worker_rss_mib']:.0f} MiB; {median['master_rss_mib']:.0f} MiB) | <= 300 MB | "
        f"{_verdict(uss_mb <= SERVING_TARGETS['worker_mb'])} |",
        f"| {server}, HTTP mix saturating ({mix['generator']}, {mix['connections']} connections, "
        f"{mix['repeats']} x {mix['seconds']} s): requests/s | {median['requests_per_second']:.0f} | >= 400 | "
        f"{_verdict(median['requests_per_second'] >= SERVING_TARGETS['http_rps'])} |",
        f"| {server}, HTTP mix saturating: p50 / p99 (queueing behind {mix['connections']} connections) | "
        f"{median['p50_ms']:.1f} / {median['p99_ms']:.1f} ms | | |",
        f"| {server}, HTTP mix: errors | {median['errors']:.0f} of {median['requests']:.0f} | 0 | "
        f"{_verdict(median['errors'] == 0)} |",
        f"| {server}, HTTP mix: server CPU per request | {median['server_cpu_ms_per_request']:.2f} ms | | |",
    ]


def _paced_rows(paced: dict[str, Any], server: str) -> list[str]:
    median = paced["median"]
    met = (median["requests_per_second"] >= SERVING_TARGETS["http_rps"]
           and median["p99_ms"] <= SERVING_TARGETS["http_p99_ms"])
    return [
        f"| {server}, HTTP mix paced at {paced['rate']:g} requests/s offered (Poisson arrivals, "
        f"{paced['connections']} connections, {paced['repeats']} x {paced['seconds']} s): requests/s served; "
        f"p50 / p99 | {median['requests_per_second']:.0f}; {median['p50_ms']:.1f} / {median['p99_ms']:.1f} ms | "
        f">= 400 with p99 <= 100 ms | {_verdict(met)} |",
        f"| {server}, HTTP mix paced: errors; server CPU per request | {median['errors']:.0f} of "
        f"{median['requests']:.0f}; {median['server_cpu_ms_per_request']:.2f} ms | 0 | "
        f"{_verdict(median['errors'] == 0)} |",
    ]


def serving_lines(serving: dict[str, Any]) -> list[str]:
    lines = ["| figure | measured | target | verdict |", "|---|---|---|---|"]
    for stack, startup in serving["startup"].items():
        ready = startup["median"].get("ready_seconds")
        if ready is not None:
            lines.append(f"| {STACK_NAMES[stack]}: start -> /readyz 200 ({len(startup['runs'])} cold starts, median) "
                         f"| {ready:.2f} s | <= 15 s | {_verdict(ready <= SERVING_TARGETS['ready_seconds'])} |")
    mix = serving.get("http_mix", {})
    for stack, median in (mix.get("stacks") or {}).items():
        lines += _mix_rows(mix, STACK_NAMES[stack], median)
    if paced := serving.get("http_paced"):
        lines += _paced_rows(paced, STACK_NAMES[paced["stack"]])
    child = serving.get("in_process", {})
    if child:
        lines.append(f"| in process: model load; RSS after load / after requests | {child['load_seconds']:.1f} s; "
                     f"{child['rss_after_load_bytes'] / 2**20:.0f} / {child['rss_after_requests_bytes'] / 2**20:.0f} "
                     f"MiB | | |")
    lines += ["", "| endpoint | in process p50 / p99 ms (Flask; engine alone) | HTTP p50 / p99 ms (one connection) |",
              "|---|---|---|"]
    http = serving.get("http_endpoints", {})
    for kind, layers in child.get("api", {}).items():
        api, engine = layers["api"], layers["engine"]
        target = SERVING_TARGETS["p99_ms"].get(kind)
        mark = f" (target {target:g}: {_verdict(api['p99_ms'] <= target)})" if target else ""
        h = http.get(kind, {})
        lines.append(f"| {kind} | {api['p50_ms']:.2f} / **{api['p99_ms']:.2f}**{mark} "
                     f"({engine['p50_ms']:.2f} / {engine['p99_ms']:.2f}) | "
                     f"{h.get('p50_ms', float('nan')):.2f} / {h.get('p99_ms', float('nan')):.2f} |")
    for kind, figures in child.get("pages", {}).items():
        h = http.get(kind, {})
        lines.append(f"| {kind} | {figures['p50_ms']:.2f} / {figures['p99_ms']:.2f} | "
                     f"{h.get('p50_ms', float('nan')):.2f} / {h.get('p99_ms', float('nan')):.2f} |")
    return lines


def outcome_lines(outcome: dict[str, Any]) -> list[str]:
    processed, evaluated = outcome["processed"], outcome["evaluation_model"]
    lines = [f"Data kept: {processed.get('users', 0):,} users, {processed.get('anime', 0):,} anime (catalogue "
             f"{processed.get('catalogue') or 0:,}), {processed.get('interactions', 0):,} interactions (train "
             f"{processed.get('train', 0):,}, test {processed.get('test', 0):,}), {processed.get('newcomers', 0):,} "
             f"newcomers; {processed.get('rows_read', 0):,} rows read."]
    if evaluated.get("hybrid"):
        lines.append(f"Hybrid chosen on the carve: {json.dumps(evaluated['hybrid'])}.")
    methods = outcome["metrics"].get("known_users") or {}
    if methods:
        meta = outcome["metrics"]["meta"]
        lines += ["", f"Recall@{meta.get('k', 10)} over {meta.get('users_evaluated', '?')} evaluated users: "
                  + ", ".join(f"{name} {values.get('recall', float('nan')):.3f}" for name, values in methods.items())]
    return lines


def summary_markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    lines = [f"# Full-size benchmark: {report['label']}", "",
             f"`{report['command']}` on {report['started_at']}; {info['cpu_count']} cores, {info['memory_gb']} GB; "
             f"load average {info['load_average'][0]} at the start. Source: {report['source']}.", ""]
    if report.get("generated"):
        generated = report["generated"]
        lines += [f"Synthetic animelist.csv: {generated['rows']:,} rows, {generated['users']:,} users, "
                  f"{generated['bytes'] / GB:.2f} GB, written in {generated['seconds']:.0f} s (not counted).", ""]
    lines += outcome_lines(report["outcome"]) + [""] + pipeline_tables(report) + profile_lines(report)
    if report.get("sampling"):
        from bench.eval_sampling import summary_lines

        lines += [""] + summary_lines(report["sampling"])
    if report.get("serving"):
        lines += ["", "## Serving the published model", ""] + serving_lines(report["serving"])
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the synthetic animelist.csv")
    parser.add_argument("--users", type=int, help="users of the synthetic file (default: 325,772 scaled to the rows)")
    parser.add_argument("--raw-dir", type=Path, help="a folder of real Kaggle files instead of the synthetic file")
    parser.add_argument("--workdir", type=Path, help="where the scratch folder goes (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (raw file, artifacts, logs)")
    parser.add_argument("--min-user-ratings", type=int, help="default: processing.min_user_ratings of the config")
    parser.add_argument("--max-users", type=int, help="evaluation.max_users for this run (a seeded user sample)")
    parser.add_argument("--config", type=Path, help="a config overlay (YAML) for every stage, e.g. settings to try")
    parser.add_argument("--sampling", action="store_true", help="also measure the evaluation sample's stability")
    parser.add_argument("--skip-serving", action="store_true")
    parser.add_argument("--stacks", nargs="+", choices=["full", "gunicorn"], default=["full", "gunicorn"],
                        help="servers measured (bench/servers.py); the first one also for per-endpoint HTTP latency")
    parser.add_argument("--http-seconds", type=int, default=30)
    parser.add_argument("--http-repeats", type=int, default=2)
    parser.add_argument("--requests", type=int, default=500, help="in-process requests per kind")
    parser.add_argument("--stage-timeout", type=float, default=3600)
    parser.add_argument("--output", type=Path, help="JSON report (default bench/results/full_size-<rows>.json)")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tests/test_bench.py
    parser.add_argument("--serving-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serving_child:
        save_json(args.output, serving_child(args.serving_child, args.requests, 20, 42))
        return 0

    label = f"{args.rows / 1e6:g} M rows" if not args.raw_dir else f"real files in {args.raw_dir}"
    settings = {"startup_repeats": 3, "requests": args.requests, "endpoint_requests": 200, "stacks": args.stacks,
                "http_seconds": args.http_seconds, "http_connections": 32, "http_repeats": args.http_repeats,
                # 10% above the target: each connection's wait does not count its answer's time, so a little
                # less arrives than is offered
                "paced_rate": 440.0, "paced_connections": 128}
    overlay: dict[str, Any] = {}
    if args.config:
        import yaml

        overlay = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
    if args.smoke:
        overlay = {**SMOKE_CONFIG, **overlay}
        settings.update(startup_repeats=1, requests=10, endpoint_requests=5, http_seconds=2, http_connections=4,
                        http_repeats=1, paced_rate=20.0, paced_connections=4)
    if args.max_users:
        overlay.setdefault("evaluation", {})["max_users"] = args.max_users
    budget = None if args.raw_dir else budget_for(args.rows)
    output = args.output or RESULTS_DIR / f"full_size-{'real' if args.raw_dir else args.rows}.json"
    report: dict[str, Any] = {
        "command": " ".join(["python -m bench.full_size", *(argv if argv is not None else sys.argv[1:])]),
        "label": label, "started_at": now(), "machine": machine(), "overlay": overlay,
        "budget": budget[1] if budget else None, "git_commit": _git_commit()}
    scratch = Path(tempfile.mkdtemp(prefix="bench-full-", dir=args.workdir))
    try:
        raw_dir = args.raw_dir
        if raw_dir is None:
            from bench.synthetic_animelist import make_raw_folder

            print(f"[{time.strftime('%H:%M:%S')}] generating {args.rows:,} rows into {scratch / 'raw'}", flush=True)
            report["generated"] = make_raw_folder(scratch / "raw", args.rows, args.users)
            raw_dir = scratch / "raw"
            report["source"] = f"synthetic animelist.csv of {args.rows:,} rows (bench/synthetic_animelist.py, seed 42)"
        else:
            report["source"] = f"{raw_dir} ({', '.join(sorted(p.name for p in raw_dir.iterdir()))})"
        root = scratch / "artifacts"
        stages = run_pipeline(raw_dir.resolve(), root, scratch, overlay, args.min_user_ratings, args.stage_timeout)
        report["stages"] = stages
        report["pipeline"] = {"wall_seconds": round(sum(s["wall_seconds"] for s in stages.values()), 1),
                              "cpu_seconds": round(sum(s["cpu_seconds"] for s in stages.values()), 1),
                              "peak_rss_bytes": max(s["peak_rss_bytes"] for s in stages.values())}
        report["outcome"] = pipeline_outcome(root)
        if args.sampling:
            from bench.eval_sampling import measure_in_child

            print(f"[{time.strftime('%H:%M:%S')}] evaluation sample stability", flush=True)
            report["sampling"] = measure_in_child(root, scratch, smoke=args.smoke)
        if not args.skip_serving:
            report["serving"] = measure_serving(root, scratch, settings)
    finally:
        report["finished_at"] = now()
        report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
        save_json(output, report)
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    summary = summary_markdown(report)
    output.with_suffix(".md").write_text(summary, encoding="utf-8")
    print(summary)
    print(f"wrote {output} and {output.with_suffix('.md')}")
    return 0


def _git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")) if done.returncode == 0 else None


if __name__ == "__main__":
    sys.exit(main())
