"""Real gunicorn (gunicorn.conf.py) on a free 127.0.0.1 port, for tests that need the whole server process."""
from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import stop_process_group

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


@dataclass
class LiveServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection: (status, headers, body)."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(artifacts_root: Path, log_path: Path, timeout: float = 120.0) -> Iterator[LiveServer]:
    """Start gunicorn on ``artifacts_root``, wait until /healthz answers (ready or not), stop it afterwards."""
    port = free_port()
    env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(artifacts_root), "GUNICORN_BIND": f"{HOST}:{port}",
           "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "4"}
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"], cwd=REPO,
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer(process, port, log_path)
    try:
        _wait_answering(server, timeout)
        yield server
    finally:
        stop_process_group(process)


def _wait_answering(server: LiveServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}:\n{server.log()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if server.request("GET", "/healthz")[0] == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f} s:\n{server.log()[-3000:]}")


