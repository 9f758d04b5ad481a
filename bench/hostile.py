"""Hostile traffic against the server (issue 16): slow clients, a flood from one address, and throughput, for each
way of serving the app, on 127.0.0.1 only, bounded in time and count.

    python -m bench.hostile                                  # every stack, 200 slow clients, 10 s each, + wrk mix
    python -m bench.hostile --stacks full gunicorn --slow 200 --seconds 10 --throughput-seconds 20
    python -m bench.hostile --artifacts-root DIR --output bench/results/hostile.json

Run from the repository root. The stacks (bench/servers.py starts them):
- ``gunicorn``: gunicorn alone with gunicorn.conf.py (gthread workers), as served before issue 16;
- ``gevent``: the same with gevent workers (an event loop per worker instead of threads);
- ``full``: the production stack, deploy/serve.py: nginx in front of gunicorn's gthread workers (``make serve``, the
  container); ``full-gevent``: the same with gevent workers behind nginx.

For each, ``SlowClients`` opens the slow connections (each sends a request line and one header, then one more
header line every few seconds and never the blank line that ends the head; a connection the server closes is
opened again, as an attacker would), and while they are held ``probe`` runs normal clients, each request on a new
connection as a load balancer's health check makes it: /healthz and a user's recommendations. Reported: the normal
clients' p50/p99/max and failures, and what happened to the slow connections. Then, with the slow clients gone, wrk
replays the throughput mix of bench/http_load.py on 32 connections against the same stack: requests/s and p99. The
proxy's per-client limit is raised for that run (all of wrk's connections come from one address): the mix measures
the serving path, the limit itself costs nginx one shared-memory lookup per request.

tests/test_hostile_traffic.py and tests/test_image.py use ``SlowClients``, ``probe`` and ``flood`` against the real
stack.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import HOST, UNLIMITED_TRAFFIC, free_port, start_server, stop_process_group, wait_until

STACKS = ("gunicorn", "gevent", "full", "full-gevent")
NORMAL_SOURCES = ("127.0.0.1", "127.0.0.3")  # the normal clients' addresses; the slow ones come from 127.0.0.2
HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: anime\r\n"


# ---------------------------------------------------------------------------------------------------------
# Slow clients
# ---------------------------------------------------------------------------------------------------------
@dataclass
class SlowReport:
    wanted: int
    opened: int = 0  # connections opened in all (the first ones and those opened again)
    refused: int = 0  # connection attempts that failed
    closed_by_server: int = 0  # slow connections the server closed (its header timeout)
    first_close_seconds: float | None = None  # how long the first closed connection had been open
    answers: Counter = field(default_factory=Counter)  # anything the server wrote before closing (a 408, say)
    open_at_end: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"wanted": self.wanted, "opened": self.opened, "refused": self.refused,
                "closed_by_server": self.closed_by_server, "first_close_seconds": self.first_close_seconds,
                "answers": dict(self.answers), "open_at_end": self.open_at_end}


class SlowClients:
    """``count`` connections to host:port that each send half a request (``request``: by default a request line and
    one header) and then trickle: one more header line every ``trickle_seconds``, never the end of the head; with
    ``trickle_seconds=None`` they stay idle (checked every second, nothing sent). ``reopen``: a connection the server
    closes is opened again.

    Use as a context manager; ``report`` says what happened. One thread does everything (it walks the sockets), so
    200 connections cost the benchmark almost nothing.
    """

    def __init__(self, host: str, port: int, count: int, trickle_seconds: float | None = 2.0, reopen: bool = True,
                 source: str | None = None, request: bytes = HALF_REQUEST) -> None:
        self.host, self.port, self.count, self.reopen = host, port, count, reopen
        self.trickle, self.idle = trickle_seconds or 1.0, trickle_seconds is None
        self.source, self.request = source, request
        self.report = SlowReport(count)
        self._sockets: list[tuple[socket.socket, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def __enter__(self) -> SlowClients:
        for _ in range(self.count):
            self._open()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for sock, opened in self._sockets:  # a last look: which ones did the server close since the last round
            if self._still_open(sock, opened):
                self.report.open_at_end += 1
            else:
                self._closed(opened)
            sock.close()
        self._sockets.clear()

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            if self.source:
                sock.bind((self.source, 0))
            sock.connect((self.host, self.port))
            sock.sendall(self.request)
        except OSError:
            sock.close()
            self.report.refused += 1
            return
        sock.setblocking(False)
        self.report.opened += 1
        self._sockets.append((sock, time.monotonic()))

    def _run(self) -> None:
        line = 0
        while not self._stop.wait(self.trickle):
            line += 1
            kept = []
            for sock, opened in self._sockets:
                if self._still_open(sock, opened):
                    if self.idle:
                        kept.append((sock, opened))
                        continue
                    try:
                        sock.send(f"X-Slow-{line}: {random.randrange(10**6)}\r\n".encode())  # noqa: S311
                        kept.append((sock, opened))
                        continue
                    except BlockingIOError:
                        kept.append((sock, opened))
                        continue
                    except OSError:
                        pass
                sock.close()
                self._closed(opened)
            self._sockets = kept
            while self.reopen and len(self._sockets) < self.count and not self._stop.is_set():
                before = self.report.refused
                self._open()
                if self.report.refused > before:
                    break

    def _still_open(self, sock: socket.socket, opened: float) -> bool:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return True  # nothing to read: still open
        except OSError:
            return False
        if data:
            self.report.answers[data.split(b"\r\n", 1)[0].decode("latin-1")[:60]] += 1
        return False  # an answer or end of stream: the server is done with it

    def _closed(self, opened: float) -> None:
        self.report.closed_by_server += 1
        if self.report.first_close_seconds is None:
            self.report.first_close_seconds = round(time.monotonic() - opened, 1)


# ---------------------------------------------------------------------------------------------------------
# Normal clients and floods
# ---------------------------------------------------------------------------------------------------------
def one_request(host: str, port: int, method: str, path: str, timeout: float, source: str | None = None,
                connection: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request, on ``connection`` if given (kept alive) or on a new connection (closed after)."""
    own = connection is None
    if own:
        connection = http.client.HTTPConnection(host, port, timeout=timeout,
                                                source_address=(source, 0) if source else None)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        if own:
            connection.close()


def percentile(values: Sequence[float], share: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2) if ordered else None


def probe(host: str, port: int, paths: Sequence[str], seconds: float, clients: int = 2, timeout: float = 5.0,
          sources: Sequence[str] = (), pause: float = 0.02) -> dict[str, Any]:
    """``clients`` threads, each asking for ``paths`` in turn on a new connection every ``pause`` seconds, for
    ``seconds``: latencies (ms) of the answers, statuses, and failures (no answer within ``timeout``). Client n
    connects from ``sources[n % len(sources)]`` when given (loopback addresses: one rate-limit bucket each)."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    failures: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(number: int) -> None:
        index = number
        source = sources[number % len(sources)] if sources else None
        while time.monotonic() < deadline:
            path = paths[index % len(paths)]
            index += 1
            started = time.perf_counter()
            try:
                status, _, _ = one_request(host, port, "GET", path, timeout, source)
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    failures[f"{path.split('?')[0]}: {type(error).__name__}"] += 1
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[status] += 1
            time.sleep(pause)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"requests": len(latencies) + sum(failures.values()), "answered": len(latencies),
            "failed": sum(failures.values()), "failures": dict(failures),
            "statuses": {str(status): count for status, count in sorted(statuses.items())},
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
            "max_ms": round(max(latencies), 2) if latencies else None,
            "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None}


def flood(host: str, port: int, path: str, requests: int, source: str | None = None, connections: int = 4,
          timeout: float = 10.0, seconds: float | None = None) -> dict[str, Any]:
    """``requests`` requests for ``path`` (or as many as fit in ``seconds``) as fast as ``connections`` kept-alive
    connections from ``source`` can send them: statuses, and one 429 answer (headers and body) as a sample."""
    statuses: Counter = Counter()
    sample: dict[str, Any] = {}
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.monotonic() + seconds if seconds else float("inf")

    def client() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout,
                                                source_address=(source, 0) if source else None)
        try:
            while True:
                with lock:
                    if remaining[0] <= 0 or time.monotonic() > deadline:
                        return
                    remaining[0] -= 1
                try:
                    status, headers, body = one_request(host, port, "GET", path, timeout, connection=connection)
                except (OSError, http.client.HTTPException) as error:
                    connection.close()
                    with lock:
                        statuses[type(error).__name__] += 1
                    continue
                with lock:
                    statuses[status] += 1
                    if status == 429 and not sample:
                        sample.update(headers={k.lower(): v for k, v in headers.items()},
                                      body=body.decode("utf-8", "replace"))
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"requests": sum(statuses.values()), "seconds": round(time.perf_counter() - started, 2),
            "statuses": {str(status): count for status, count in sorted(statuses.items(), key=str)},
            "sample_429": sample or None}


# ---------------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------------
def stack_options(stack: str) -> tuple[str, dict[str, str]]:
    """(how bench/servers.py starts it, extra environment) for a stack name."""
    gevent = {"GUNICORN_CMD_ARGS": "--worker-class gevent --worker-connections 1000"}
    return {"gunicorn": ("gunicorn", {}), "gevent": ("gunicorn", gevent), "full": ("full", {}),
            "full-gevent": ("full", gevent)}[stack]


def sample_paths(root: Path) -> list[str]:
    users = json.loads((root / "model" / "user_ids.json").read_text(encoding="utf-8"))
    return [path for user in users[:20] for path in ("/healthz", f"/api/users/{user}/recommendations?n=10")]


def measure_stack(root: Path, stack: str, slow: int, seconds: float, throughput_seconds: int, scratch: Path,
                  requests_file: Path | None) -> dict[str, Any]:
    kind, env = stack_options(stack)
    port = free_port()
    log_path = scratch / f"{stack}-{port}.log"
    server = start_server(kind, root, port, log_path, env=env, traffic=UNLIMITED_TRAFFIC)
    try:
        wait_until(port, "/readyz", server, timeout=180, log_path=log_path)
        paths = sample_paths(root)
        quiet = probe(HOST, port, paths, min(seconds, 5), sources=NORMAL_SOURCES)
        with SlowClients(HOST, port, slow, source="127.0.0.2") as slow_clients:
            time.sleep(1)  # every slow connection is in before the normal clients start
            attacked = probe(HOST, port, paths, seconds, sources=NORMAL_SOURCES)
        result = {"stack": stack, "quiet": quiet, "with_slow_clients": attacked,
                  "slow_clients": slow_clients.report.as_dict()}
        time.sleep(1)
        result["after"] = probe(HOST, port, paths, 2, sources=NORMAL_SOURCES)
        if throughput_seconds and requests_file is not None:
            from bench.http_load import run_wrk

            result["throughput"] = {key: value for key, value in run_wrk(
                port, throughput_seconds, 32, requests_file, scratch).items() if key != "wrk"}
        result["server_alive"] = server.poll() is None
        return result
    finally:
        stop_process_group(server)


def main(argv: list[str] | None = None) -> int:
    from bench.request_mix import make_requests, write_requests
    from config.paths_config import artifacts_root, model_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts-root", type=Path, default=None,
                        help="artifacts root holding model/ (default: ANIME_ARTIFACTS_DIR or artifacts/)")
    parser.add_argument("--stacks", nargs="+", choices=STACKS, default=list(STACKS))
    parser.add_argument("--slow", type=int, default=200, help="slow connections held open (default 200)")
    parser.add_argument("--seconds", type=float, default=10, help="how long they are held (default 10)")
    parser.add_argument("--throughput-seconds", type=int, default=20, help="wrk mix per stack; 0 skips it")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    root = (args.artifacts_root or artifacts_root()).resolve()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as scratch:
        requests_file = None
        if args.throughput_seconds:
            requests_file = write_requests(Path(scratch) / "requests.tsv", make_requests(model_dir(root), 50_000))
        for stack in args.stacks:
            result = measure_stack(root, stack, args.slow, args.seconds, args.throughput_seconds, Path(scratch),
                                   requests_file)
            results.append(result)
            attacked, mix = result["with_slow_clients"], result.get("throughput", {})
            print(f"{stack:12s} slow={args.slow}: normal clients p99 {attacked['p99_ms']} ms, max "
                  f"{attacked['max_ms']} ms, {attacked['failed']} failed of {attacked['requests']} | mix "
                  f"{mix.get('requests_per_second')} req/s, p99 {mix.get('p99_ms')} ms, {mix.get('errors')} errors",
                  file=sys.stderr, flush=True)
    report = {"slow": args.slow, "seconds": args.seconds, "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
