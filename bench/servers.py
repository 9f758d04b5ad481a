"""The real server for benchmarks and tests, on a free port of 127.0.0.1: the production stack, or gunicorn alone.

One place for what bench/http_load.py, bench/soak.py, bench/hostile.py and the tests that need a whole server
process share: a free port; ``start_stack`` (``python -m deploy.serve``: nginx in front of gunicorn, what `make serve`
and the container run, on 127.0.0.1 and serving the given artifacts root); ``start_gunicorn`` (``python -m gunicorn
--config gunicorn.conf.py`` alone, the production settings bound to 127.0.0.1 through GUNICORN_BIND, as served before
issue 16 and still the way to test gunicorn itself); a readiness wait; stopping the server's process group; and for
tests the ``stack(...)`` and ``gunicorn(...)`` context managers yielding a ``LiveServer``.
"""
from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from config.paths_config import PROJECT_ROOT

HOST = "127.0.0.1"  # never anything else: these servers exist for local benchmarks and tests
# The proxy's per-client limits out of the way, for a load whose every connection comes from 127.0.0.1 (benchmarks,
# the soak): the limits still run on every request, they just never refuse one.
UNLIMITED_TRAFFIC = {"rate_limit": {"requests_per_second": 1_000_000, "burst": 1_000_000, "max_in_flight": 60_000}}


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound, then released: the tiny race is fine for benchmarks and tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """End a server started in its own session: TERM to its process group (graceful), KILL if it hangs."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start_gunicorn(artifacts_root: Path, port: int, log: Path | IO, env: Mapping[str, str] | None = None,
                   extra_args: Sequence[str] = (), cwd: Path | None = None) -> subprocess.Popen:
    """gunicorn exactly as production configures it (gunicorn.conf.py), serving ``artifacts_root`` on
    127.0.0.1:``port``, in its own session so that stopping it reaches its workers and nothing else.

    ``log``: a path (appended to) or an open file for its stdout and stderr; ``env``: variables set on top of
    this process's environment (WEB_CONCURRENCY, GUNICORN_THREADS, ...); ``extra_args``: gunicorn options
    after the config file's (e.g. ``--max-requests 0``); ``cwd``: the source tree to serve (default this one; another
    checkout, such as a git worktree of an older revision, serves that revision's code and gunicorn.conf.py).
    """
    environment = {**os.environ, "ANIME_ARTIFACTS_DIR": str(artifacts_root), "GUNICORN_BIND": f"{HOST}:{port}"}
    environment.pop("PORT", None)  # GUNICORN_BIND wins anyway; a leftover PORT would only mislead
    environment.update(env or {})
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", *extra_args]
    return _start(command, environment, log, cwd)


def start_stack(artifacts_root: Path, port: int, log: Path | IO, env: Mapping[str, str] | None = None,
                traffic: Mapping[str, Any] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """The production stack (``python -m deploy.serve``: nginx on 127.0.0.1:``port`` in front of gunicorn with
    gunicorn.conf.py), serving ``artifacts_root``, in its own session.

    ``env``: variables on top of this process's environment, which deploy/serve.py hands on to gunicorn
    (WEB_CONCURRENCY, GUNICORN_THREADS, GUNICORN_CMD_ARGS, ...); ``traffic``: settings laid over deploy/traffic.yaml
    (e.g. ``{"rate_limit": {"requests_per_second": 100000}}`` for a load from one address), written to a file beside
    the log (or in the temporary folder) and passed as ``--traffic``; ``cwd``: the source tree to serve (default this
    one; another checkout serves its own deploy/serve.py, nginx template and code).
    """
    environment = {**os.environ, "ANIME_ARTIFACTS_DIR": str(artifacts_root)}
    for name in ("PORT", "SERVE_HOST", "SERVE_TRAFFIC", "GUNICORN_BIND"):  # the arguments below decide
        environment.pop(name, None)
    environment.update(env or {})
    command = [sys.executable, "-m", "deploy.serve", "--host", HOST, "--port", str(port)]
    if traffic:
        folder = Path(log).parent if isinstance(log, (str, Path)) else Path(tempfile.gettempdir())
        override = folder / f"traffic-{port}.yaml"
        override.write_text(yaml.safe_dump(dict(traffic)), encoding="utf-8")
        command += ["--traffic", str(override)]
    return _start(command, environment, log, cwd)


def start_server(kind: str, artifacts_root: Path, port: int, log: Path | IO, env: Mapping[str, str] | None = None,
                 traffic: Mapping[str, Any] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """``kind`` "full" (the production stack, ``start_stack``) or "gunicorn" (gunicorn alone, ``start_gunicorn``;
    ``traffic`` does not apply: there is no proxy)."""
    if kind == "full":
        return start_stack(artifacts_root, port, log, env, traffic, cwd)
    if kind == "gunicorn":
        return start_gunicorn(artifacts_root, port, log, env, cwd=cwd)
    raise ValueError(f"unknown server kind {kind!r}: 'full' or 'gunicorn'")


def _start(command: list[str], environment: Mapping[str, str], log: Path | IO,
           cwd: Path | None = None) -> subprocess.Popen:
    # ``python -m`` puts the working folder first on sys.path, ahead of the editable install's finder: another
    # checkout as ``cwd`` serves its own code
    folder = cwd or PROJECT_ROOT
    if isinstance(log, (str, Path)):
        with open(log, "ab") as handle:
            return subprocess.Popen(command, cwd=folder, env=environment, stdout=handle, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    return subprocess.Popen(command, cwd=folder, env=environment, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def gunicorn_master(process: subprocess.Popen) -> int:
    """The gunicorn master's pid: ``process`` itself for gunicorn alone, its gunicorn child for the stack."""
    import psutil

    parent = psutil.Process(process.pid)
    if "deploy.serve" not in " ".join(parent.cmdline()):
        return process.pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in parent.children():
            if "gunicorn" in " ".join(child.cmdline()):
                return child.pid
        time.sleep(0.05)
    raise RuntimeError("deploy/serve.py started no gunicorn")


def nginx_processes(process: subprocess.Popen) -> list[int]:
    """nginx's master and worker pids under the stack started as ``process`` (none for gunicorn alone)."""
    import psutil

    return [child.pid for child in psutil.Process(process.pid).children(recursive=True)
            if child.name().startswith("nginx")]


def request(port: int, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
            timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """One request to 127.0.0.1:``port`` on a new connection: (status, headers, body)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def wait_until(port: int, path: str, process: subprocess.Popen, timeout: float = 120,
               log_path: Path | None = None, interval: float = 0.05) -> float:
    """Seconds until ``GET path`` on 127.0.0.1:``port`` answers 200.

    Raises RuntimeError when ``process`` exits first or ``timeout`` seconds pass, saying what the server last
    answered and, given ``log_path``, how its log ends."""
    started = time.perf_counter()
    last = "no answer"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before {path} answered 200"
                               + _log_tail(log_path))
        try:
            status, _headers, body = request(port, "GET", path, timeout=2)
        except (OSError, http.client.HTTPException) as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if status == 200:
                return time.perf_counter() - started
            last = f"{status} {body[:200].decode('utf-8', 'replace')}"
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{path} did not answer 200 within {timeout:.0f} s (last: {last})" + _log_tail(log_path))
        time.sleep(interval)


def _log_tail(log_path: Path | None, characters: int = 3000) -> str:
    if log_path is None or not Path(log_path).is_file():
        return ""
    return "\n" + Path(log_path).read_text(encoding="utf-8", errors="replace")[-characters:]


@dataclass
class LiveServer:
    """A running gunicorn started by ``gunicorn(...)``."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection: (status, headers, body)."""
        return request(self.port, method, path, body, headers)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def stack(artifacts_root: Path, log_path: Path, timeout: float = 120.0, ready_path: str = "/healthz",
          env: Mapping[str, str] | None = None, traffic: Mapping[str, Any] | None = None) -> Iterator[LiveServer]:
    """The production stack (nginx + gunicorn, ``start_stack``) on ``artifacts_root`` and a free port, one gunicorn
    worker of four threads unless ``env`` says otherwise; yielded once ``ready_path`` answers 200, stopped
    afterwards."""
    port = free_port()
    process = start_stack(artifacts_root, port, log_path,
                          env={"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "4", **(env or {})}, traffic=traffic)
    try:
        wait_until(port, ready_path, process, timeout, log_path)
        yield LiveServer(process, port, log_path)
    finally:
        stop_process_group(process)


@contextlib.contextmanager
def gunicorn(artifacts_root: Path, log_path: Path, timeout: float = 120.0, ready_path: str = "/healthz",
             env: Mapping[str, str] | None = None) -> Iterator[LiveServer]:
    """gunicorn on ``artifacts_root`` and a free port, one worker of four threads unless ``env`` says otherwise;
    yielded once ``ready_path`` answers 200 (/healthz: answering, ready or not; /readyz: serving the model),
    stopped afterwards."""
    port = free_port()
    process = start_gunicorn(artifacts_root, port, log_path,
                             env={"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "4", **(env or {})})
    try:
        wait_until(port, ready_path, process, timeout, log_path)
        yield LiveServer(process, port, log_path)
    finally:
        stop_process_group(process)
