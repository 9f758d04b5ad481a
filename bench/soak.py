"""Soak test: a bounded mix of valid and invalid requests against the production stack on 127.0.0.1.

    python -m bench.soak --seconds 120                    # make bench: 2 minutes, 32 connections
    python -m bench.soak --seconds 10 --artifacts DIR     # the short run make test does (tests/test_soak.py)
    python -m bench.soak --stack gunicorn                 # gunicorn alone, as served before issue 16

Run from the repository root. Starts the production stack (deploy/serve.py: nginx in front of gunicorn with
gunicorn.conf.py; bench/servers.py) on a free 127.0.0.1 port, serving the artifacts root given by --artifacts (else
ANIME_ARTIFACTS_DIR, else artifacts/), drives it from --connections keep-alive connections with the soak mix of
bench/request_mix.py, samples the gunicorn workers' memory (and nginx's) every second, and prints a JSON report on
stdout (and to --output). The exit status is 0 when there was no 5xx, no dropped connection, no status other than
the one each request should get, nothing logged as an error by the server (gunicorn, the app or nginx), and worker
memory grew less than --max-growth from the first to the last window (30 s, or a quarter of a shorter run).

Three deliberate choices:
- Worker recycling (gunicorn's max_requests) is off for the run: a recycled worker starts small again and would
  hide a leak.
- The proxy's per-client limits are raised (bench/servers.py, UNLIMITED_TRAFFIC): every connection comes from
  127.0.0.1, and the soak is about the server, not about being refused (tests/test_hostile_traffic.py is).
- A request that fails on a keep-alive connection which already served others, before any response byte, is
  retried once on a new connection (counted as "reconnects", with what the connection served last), as browsers
  and HTTP libraries do: a server may close an idle keep-alive connection at any time. gunicorn alone does so after
  answering a request whose unread body is over 64 KiB (the 413s here): it will not drain more. A request that
  fails on a fresh connection, or twice, is a dropped connection.
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.request_mix import Request, ServedModel, SoakMix
from bench.servers import (
    HOST,
    UNLIMITED_TRAFFIC,
    free_port,
    gunicorn_master,
    nginx_processes,
    start_server,
    stop_process_group,
    wait_until,
)
from config.paths_config import artifacts_root, model_dir

SEED = 7
VALID_SHARE = 0.6
CLIENT_TIMEOUT_SECONDS = 30


# ---------------------------------------------------------------------------------------------------------
# The clients
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Tally:
    """What the clients saw; one lock guards it (a few hundred updates a second at most)."""

    statuses: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    unexpected: Counter = field(default_factory=Counter)
    connection_errors: Counter = field(default_factory=Counter)
    reconnects_after: Counter = field(default_factory=Counter)  # kind of the request before each reconnect
    valid: int = 0
    invalid: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: Request, status: int, seconds: float, reconnected_after: str | None) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.kinds[request.kind] += 1
            if reconnected_after is not None:
                self.reconnects_after[reconnected_after] += 1
            if request.expected == 200:
                self.valid += 1
            else:
                self.invalid += 1
            if status != request.expected:
                seen = f"{request.kind}: {request.method} {request.path[:80]} -> {status}, expected {request.expected}"
                self.unexpected[seen] += 1
            self.latencies_ms.append(seconds * 1000)

    def error(self, request: Request, error: BaseException) -> None:
        with self.lock:
            self.connection_errors[f"{request.kind}: {type(error).__name__}: {error}"[:200]] += 1


class Client:
    """One keep-alive connection, used by one thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None
        self.served = 0  # requests answered on the current connection
        self.previous_kind = ""  # what the connection served last, to report what led to a reconnect

    def send(self, request: Request) -> tuple[int, str | None]:
        """(status, the previous request's kind if a stale keep-alive connection had to be replaced, else None).

        Raises OSError or http.client.HTTPException when the connection drops.
        """
        for attempt in (0, 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(HOST, self.port, timeout=CLIENT_TIMEOUT_SECONDS)
                self.served = 0
            reused = self.served > 0
            try:
                self.connection.request(request.method, request.path, body=request.body, headers=request.headers)
                response = self.connection.getresponse()
                response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 0 and reused:
                    continue  # the server closed this keep-alive connection between requests
                raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            self.served += 1
            reconnected_after = self.previous_kind if attempt == 1 else None
            self.previous_kind = request.kind
            if response.will_close:
                self.close()
            return response.status, reconnected_after
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None


def client_loop(index: int, port: int, mix: SoakMix, deadline: float, tally: Tally) -> None:
    rng = random.Random(SEED * 1000 + index)
    client = Client(port)
    while time.monotonic() < deadline:
        request = mix.pick(rng)
        started = time.perf_counter()
        try:
            status, reconnected_after = client.send(request)
        except (OSError, http.client.HTTPException) as error:
            tally.error(request, error)
            continue
        tally.record(request, status, time.perf_counter() - started, reconnected_after)
    client.close()


# ---------------------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------------------
class MemorySampler(threading.Thread):
    """Every second: the summed resident memory of the gunicorn workers (the master holds no requests), and of
    nginx's processes when there are any (``nginx_pids``)."""

    def __init__(self, master_pid: int, interval: float = 1.0, nginx_pids: list[int] | None = None) -> None:
        super().__init__(daemon=True)
        self.master = psutil.Process(master_pid)
        self.nginx = [psutil.Process(pid) for pid in nginx_pids or []]
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (seconds since start, bytes)
        self.nginx_samples: list[tuple[float, int]] = []
        self.worker_pids: set[int] = set()
        self._stop_event = threading.Event()
        self._start_time = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            total = 0
            try:
                for worker in self.master.children():
                    total += worker.memory_info().rss
                    self.worker_pids.add(worker.pid)
                nginx = sum(process.memory_info().rss for process in self.nginx)
            except psutil.Error:
                continue  # a worker came or went mid-sample: skip this one
            now = time.monotonic() - self._start_time
            self.samples.append((now, total))
            if self.nginx:
                self.nginx_samples.append((now, nginx))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def report(self, seconds: float) -> dict[str, Any]:
        window = min(30.0, seconds / 4)
        first = [rss for t, rss in self.samples if t <= window]
        last = [rss for t, rss in self.samples if t >= seconds - window]
        if not first or not last:
            return {"window_seconds": window, "samples": len(self.samples), "growth": None}
        first_mean, last_mean = statistics.fmean(first), statistics.fmean(last)
        report = {"window_seconds": window, "samples": len(self.samples), "workers": len(self.worker_pids),
                  "first_window_mb": round(first_mean / 2**20, 1), "last_window_mb": round(last_mean / 2**20, 1),
                  "peak_mb": round(max(rss for _, rss in self.samples) / 2**20, 1),
                  "growth": round(last_mean / first_mean - 1, 4)}
        nginx_first = [rss for t, rss in self.nginx_samples if t <= window]
        nginx_last = [rss for t, rss in self.nginx_samples if t >= seconds - window]
        if nginx_first and nginx_last:
            report["nginx"] = {"first_window_mb": round(statistics.fmean(nginx_first) / 2**20, 1),
                               "last_window_mb": round(statistics.fmean(nginx_last) / 2**20, 1),
                               "growth": round(statistics.fmean(nginx_last) / statistics.fmean(nginx_first) - 1, 4)}
        return report


# ---------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------
def server_log_errors(text: str) -> list[str]:
    """Lines showing the server logged an error or a traceback (the app logs as 'LEVEL name:', gunicorn '[LEVEL]',
    nginx '[level]')."""
    markers = ("Traceback", " ERROR ", "[ERROR]", " CRITICAL ", "[CRITICAL]", "[error]", "[crit]", "[alert]",
               "[emerg]")
    # nginx writes its 413 at error level, though it is the answer the soak's oversized bodies must get
    client_mistakes = ("client intended to send too large body",)
    return [line for line in text.splitlines()
            if any(marker in line for marker in markers) and not any(mistake in line for mistake in client_mistakes)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1) if ordered else 0.0


def run(root: Path, seconds: float, connections: int, workers: int | None, threads: int | None,
        max_growth: float, stack: str = "full") -> dict[str, Any]:
    """Start the server, load it for ``seconds``, stop it; return the report."""
    port = free_port()
    # gunicorn.conf.py's workers and threads unless asked otherwise; as production runs it, recycling off
    env = {"GUNICORN_CMD_ARGS": "--max-requests 0"}
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    if threads:
        env["GUNICORN_THREADS"] = str(threads)
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        server = start_server(stack, root, port, log, env=env, traffic=UNLIMITED_TRAFFIC)
        try:
            try:
                wait_until(port, "/readyz", server, timeout=180)
            except RuntimeError as error:
                log.seek(0)
                raise RuntimeError(f"{error}\n{log.read()[-3000:]}") from None
            mix = SoakMix(ServedModel.from_folder(model_dir(root)), VALID_SHARE)
            tally, sampler = Tally(), MemorySampler(gunicorn_master(server), nginx_pids=nginx_processes(server))
            sampler.start()
            started = time.monotonic()
            clients = [threading.Thread(target=client_loop, args=(i, port, mix, started + seconds, tally),
                                        daemon=True)
                       for i in range(connections)]
            for thread in clients:
                thread.start()
            for thread in clients:
                thread.join()
            elapsed = time.monotonic() - started
            sampler.stop()
            server_alive = server.poll() is None
            log.flush()
            log.seek(0)
            logged_errors = server_log_errors(log.read())  # read before stopping: shutdown notices are not errors
        finally:
            stop_process_group(server)
    report = build_report(tally, sampler.report(elapsed), elapsed, connections, logged_errors, server_alive,
                          max_growth)
    return {"stack": stack, **report}


def build_report(tally: Tally, memory: dict[str, Any], elapsed: float, connections: int, logged_errors: list[str],
                 server_alive: bool, max_growth: float) -> dict[str, Any]:
    requests = sum(tally.statuses.values())
    server_errors = sum(count for status, count in tally.statuses.items() if status >= 500)
    report = {
        "seconds": round(elapsed, 1), "connections": connections, "requests": requests,
        "requests_per_second": round(requests / elapsed, 1) if elapsed else 0.0,
        "valid_requests": tally.valid, "invalid_requests": tally.invalid,
        "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
        "server_errors_5xx": server_errors,
        "connection_errors": sum(tally.connection_errors.values()),
        "connection_error_kinds": dict(tally.connection_errors),
        "reconnects": sum(tally.reconnects_after.values()), "reconnects_after": dict(tally.reconnects_after),
        "unexpected_statuses": sum(tally.unexpected.values()),
        "unexpected_examples": dict(tally.unexpected.most_common(10)),
        "latency_ms": {"p50": percentile(tally.latencies_ms, 0.50), "p95": percentile(tally.latencies_ms, 0.95),
                       "p99": percentile(tally.latencies_ms, 0.99), "max": percentile(tally.latencies_ms, 1.0)},
        "memory": memory, "server_log_errors": len(logged_errors), "server_log_error_lines": logged_errors[:10],
        "server_alive": server_alive, "requests_by_kind": dict(sorted(tally.kinds.items())),
    }
    report["problems"] = problems(report, max_growth)
    report["passed"] = not report["problems"]
    return report


def problems(report: dict[str, Any], max_growth: float) -> list[str]:
    found = []
    if report["requests"] == 0:
        found.append("no request was answered")
    for key, label in (("server_errors_5xx", "5xx answers"), ("connection_errors", "dropped connections"),
                       ("unexpected_statuses", "unexpected statuses"), ("server_log_errors", "server log errors")):
        if report[key]:
            found.append(f"{report[key]} {label}")
    if not report["server_alive"]:
        found.append("the server died during the run")
    growth = report["memory"].get("growth")
    if growth is None:
        found.append("too few memory samples to measure growth")
    elif growth >= max_growth:
        found.append(f"worker memory grew {growth:.1%} (limit {max_growth:.0%})")
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to load the server (default 120)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections (default 32)")
    parser.add_argument("--artifacts", type=Path,
                        help="artifacts root holding model/ (default: ANIME_ARTIFACTS_DIR or artifacts/)")
    parser.add_argument("--stack", choices=["full", "gunicorn"], default="full",
                        help="full: the production stack, nginx + gunicorn (default); gunicorn: gunicorn alone")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: gunicorn.conf.py's)")
    parser.add_argument("--max-growth", type=float, default=0.10, help="allowed worker memory growth (default 0.10)")
    parser.add_argument("--output", type=Path, help="also write the JSON report here (e.g. bench/results/soak.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.artifacts or artifacts_root()
    if not (model_dir(root) / "manifest.json").is_file():
        print(f"error: no model artifacts under {root}: train first (make train) or pass --artifacts", file=sys.stderr)
        return 2
    report = run(root.resolve(), args.seconds, args.connections, args.workers, args.threads, args.max_growth,
                 args.stack)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    memory = report["memory"]
    print(f"soak: {report['requests']} requests in {report['seconds']} s ({report['requests_per_second']}/s), "
          f"{report['server_errors_5xx']} 5xx, {report['connection_errors']} dropped connections, "
          f"{report['reconnects']} reconnects, memory growth {memory.get('growth')}: "
          f"{'passed' if report['passed'] else 'FAILED: ' + '; '.join(report['problems'])}", file=sys.stderr)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
