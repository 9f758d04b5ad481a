"""The production entry point: nginx in front of gunicorn, as `make serve` and the container run them (issue 16).

    python -m deploy.serve                          # http://127.0.0.1:5000 (SERVE_HOST, PORT)
    python -m deploy.serve --host 0.0.0.0           # what the container runs (its SERVE_HOST)
    python -m deploy.serve --traffic FILE           # some limits of deploy/traffic.yaml changed (tests, benchmarks)

Run from the repository root (the image's /app). It renders deploy/nginx.conf.template with the limits of
deploy/traffic.yaml into a fresh run folder under TMPDIR (the only writable place in the container), writes the
proxy's own error answers there, starts gunicorn with gunicorn.conf.py on a Unix socket in that folder, waits until
it listens (it loads the model first), then starts Debian's nginx on HOST:PORT in front of it. Only nginx faces
clients: it reads every request whole within its timeouts, limits requests per client, refuses oversized requests
and serves /static; gunicorn sees complete requests only, from nginx only.

This process stays as the parent of both (pid 1 in the container) and:
- SIGHUP: passed to gunicorn, which reloads the current model (DEPLOYMENT.md, "Model versions");
- SIGTERM, SIGINT, SIGQUIT: nginx stops accepting and finishes the requests in flight, then gunicorn stops
  (gracefully, as it always did), then this process exits 0;
- if either of them exits on its own, the other is stopped and this process exits 1, so the container restarts.
Both are started with a parent-death signal, so they never outlive this process.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import ctypes
import errno
import html
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.loader import ConfigError, merge
from config.paths_config import PROJECT_ROOT
from utils.common_functions import read_yaml

HERE = Path(__file__).resolve().parent
TRAFFIC_PATH = HERE / "traffic.yaml"
TEMPLATE_PATH = HERE / "nginx.conf.template"
ERROR_TEMPLATE_PATH = HERE / "error.html"
STATIC_DIR = PROJECT_ROOT / "static"
DEFAULT_PORT = 5000
# Headers nginx sets on the way to gunicorn in place of the client's (nginx.conf.template: Host and
# X-Forwarded-For; Connection is dropped). gunicorn's header count (limit_request_fields) adds room for them.
PROXY_HEADERS = 1
# The app's own messages style (src/web/errors.py): a message for API callers, another for people reading a page.
# Answers nginx gives itself: status -> (page title, message for /api and the probes, message on a page), formatted
# with the traffic settings.
ERRORS = {
    400: ("That request could not be read", "the request could not be understood: check its syntax",
          "your browser sent a request we could not read: try again from the home page"),
    404: ("We couldn't find that file", "there is no such file", "there is no such file: the link may be old"),
    405: ("That didn't work", "this address does not accept that method", "this page cannot be used that way"),
    413: ("That request is too large", "the request body is too large: send at most {max_body_bytes} bytes",
          "what you sent is too large: send at most {max_body_bytes} bytes"),
    414: ("That address is too long",
          "the address is too long: the request line (method, path and query) may have at most {max_line_bytes} bytes",
          "that address is too long: shorten the search or go back to the home page"),
    429: ("Slow down a little",
          "too many requests from your address: at most {requests_per_second} a second after a burst of {burst}, "
          "and {max_in_flight} at a time; wait {retry_after_seconds} s and try again",
          "that was a lot of requests at once from your address: wait a second, then reload the page"),
    431: ("Those headers are too large",
          "the request headers are too large: at most {max_header_count} headers, {max_line_bytes} bytes each and "
          "{max_header_bytes} bytes in all",
          "your browser sent more headers (or larger cookies) than we accept: clear this site's cookies and reload"),
    500: ("Something went wrong", "something went wrong on our side; please try again later",
          "something went wrong on our side; please try again later"),
    502: ("Something went wrong", "the service is not answering right now (starting or restarting); "
          "try again in a few seconds", "the service is restarting: reload the page in a few seconds"),
    504: ("Something went wrong", "the service took too long to answer; please try again later",
          "the service took too long to answer: reload the page in a little while"),
}
# The same for an uploaded list over its own cap (the upload locations), named "<status>-list"
LIST_ERRORS = {
    413: ("That file is too large",
          "the file is larger than any anime list export (at most {max_list_mib} MB): upload the animelist .xml.gz "
          "file from MyAnimeList's Export page",
          "that file is larger than any anime list export (at most {max_list_mib} MB): upload the animelist .xml.gz "
          "file from MyAnimeList's Export page"),
}
APP_ERRORS_MODULE = PROJECT_ROOT / "src" / "web" / "errors.py"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def log(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Settings and the rendered files
# ---------------------------------------------------------------------------------------------------------
def load_traffic(override: str | Path | None = None) -> dict[str, Any]:
    """deploy/traffic.yaml, with the file at ``override`` laid over it (unknown keys refused), flattened and
    checked: {"requests_per_second": 20, "burst": 60, ...}."""
    settings = read_yaml(TRAFFIC_PATH)
    if override is not None:
        settings = merge(settings, read_yaml(override), source=str(override))
    flat = {key: value for section in settings.values() for key, value in section.items()}
    for key, value in flat.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"traffic setting '{key}' must be a positive whole number, not {value!r}")
    if flat["max_header_bytes"] % flat["max_line_bytes"] or flat["max_header_bytes"] < 2 * flat["max_line_bytes"]:
        raise ConfigError("traffic: max_header_bytes must be a multiple of max_line_bytes, at least twice it")
    return flat


def security_headers(path: Path = APP_ERRORS_MODULE) -> dict[str, str]:
    """The app's SECURITY_HEADERS, read from src/web/errors.py without importing it (that would load Flask and the
    engine into this small process), so that what nginx answers itself carries exactly the headers the app sends.

    The module-level assignments are evaluated as constants: strings (concatenated or not), dicts of them, and
    names of earlier such constants. Raises ValueError when SECURITY_HEADERS is not such a constant."""
    known: dict[str, Any] = {}

    def value(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in known:
            return known[node.id]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return value(node.left) + value(node.right)
        if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
            return {value(key): value(item) for key, item in zip(node.keys, node.values, strict=True)}
        raise ValueError(ast.dump(node)[:80])

    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(ValueError):
                known[node.targets[0].id] = value(node.value)
    headers = known.get("SECURITY_HEADERS")
    if not isinstance(headers, dict) or not headers or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError(f"{path} has no SECURITY_HEADERS dict of constant strings for the proxy to send")
    return headers


def nginx_config(traffic: Mapping[str, int], *, listen: str, run_dir: Path, socket_path: Path,
                 static_dir: Path = STATIC_DIR, access_log: str = "/dev/stdout anime buffer=64k flush=1s") -> str:
    """deploy/nginx.conf.template with every placeholder filled in; raises KeyError naming one it cannot fill."""
    security = "\n".join(f'            add_header {name} "{value}" always;'
                         for name, value in security_headers().items())
    values = {**{key: str(value) for key, value in traffic.items()},
              "header_buffers": str(traffic["max_header_bytes"] // traffic["max_line_bytes"]),
              "proxy_workers": str(traffic["workers"]), "listen": listen, "run_dir": str(run_dir),
              "socket": str(socket_path), "static_dir": str(static_dir), "access_log": access_log,
              "security_headers": security}
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(values))
    if missing:
        raise KeyError(f"{TEMPLATE_PATH.name} names {missing}, which deploy/serve.py does not fill in")
    rendered = PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
    if os.geteuid() == 0:
        # As root (a developer's or CI's machine; the container runs as uid 10001) nginx would hand its workers to
        # `nobody`, who cannot read the run folder or the checkout: they stay with the user who started it.
        rendered = rendered.replace("\nworker_processes", "\nuser root;\nworker_processes", 1)
    return rendered


def error_bodies(traffic: Mapping[str, int]) -> dict[str, str]:
    """The proxy's own answers, file name -> content: ``<status>.json`` ({"error": {"status", "message"}}, as the
    app answers under /api and for the probes) and ``<status>.html`` (a page like the app's error page); a list
    upload's as ``<status>-list.*``."""
    template = ERROR_TEMPLATE_PATH.read_text(encoding="utf-8")
    values = {**traffic, "max_list_mib": traffic["max_list_bytes"] // 2**20}
    files = {}
    for suffix, errors in (("", ERRORS), ("-list", LIST_ERRORS)):
        for status, (title, api_message, page_message) in errors.items():
            text = api_message.format(**values)
            files[f"{status}{suffix}.json"] = json.dumps({"error": {"status": status, "message": text}}) + "\n"
            files[f"{status}{suffix}.html"] = (template.replace("{{status}}", str(status))
                                               .replace("{{title}}", html.escape(title))
                                               .replace("{{message}}", html.escape(page_message.format(**values))))
    return files


# A Unix socket's path must fit sockaddr_un.sun_path: 108 bytes on Linux, 104 on macOS, with its terminating NUL.
SOCKET_PATH_LIMIT = 100


def prepare_run_dir(traffic: Mapping[str, int], listen: str) -> tuple[Path, Path]:
    """A fresh run folder (mode 0700) holding nginx.conf and errors/: (folder, gunicorn's socket path)."""
    run_dir = Path(tempfile.mkdtemp(prefix="anime-serve-"))
    socket_path = run_dir / "gunicorn.sock"
    if len(os.fsencode(socket_path)) > SOCKET_PATH_LIMIT:
        run_dir.rmdir()
        raise SystemExit(f"serve: TMPDIR {run_dir.parent} is too deep for gunicorn's Unix socket "
                         f"({len(os.fsencode(socket_path))} bytes, at most {SOCKET_PATH_LIMIT}): "
                         "point TMPDIR at a shorter folder")
    (run_dir / "nginx.conf").write_text(nginx_config(traffic, listen=listen, run_dir=run_dir,
                                                     socket_path=socket_path), encoding="utf-8")
    (run_dir / "errors").mkdir()
    for name, content in error_bodies(traffic).items():
        (run_dir / "errors" / name).write_text(content, encoding="utf-8")
    return run_dir, socket_path


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None)
    if found is None:
        raise SystemExit("serve: nginx is not installed: `make proxy-deps` installs Debian's nginx (as root)")
    return found


def gunicorn_environment(traffic: Mapping[str, int], socket_path: Path) -> dict[str, str]:
    """gunicorn.conf.py's settings behind the proxy: on the socket, the header count, no access log of its own
    (nginx logs every request, with the client's address)."""
    return {**os.environ, "GUNICORN_BIND": f"unix:{socket_path}",
            "GUNICORN_LIMIT_REQUEST_FIELDS": str(traffic["max_header_count"] + PROXY_HEADERS),
            "GUNICORN_ACCESS_LOG": "off"}


# ---------------------------------------------------------------------------------------------------------
# The two processes
# ---------------------------------------------------------------------------------------------------------
def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when this process dies, even by SIGKILL, so nothing outlives it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Supervisor:
    def __init__(self, traffic: Mapping[str, int], host: str, port: int) -> None:
        self.traffic, self.host, self.port = traffic, host, port
        self.listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.run_dir = self.socket_path = Path()
        self.gunicorn: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None
        self.stopping = False
        self.failed = False

    # -- signals ------------------------------------------------------------------------------------------------
    def install_signals(self) -> None:
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(number, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, number: int, _frame: Any) -> None:
        if self.stopping:
            return
        log(f"{signal.Signals(number).name}: stopping (nginx finishes the requests in flight, then gunicorn stops)")
        self.stopping = True
        self._stop_next()

    def _on_hup(self, _number: int, _frame: Any) -> None:
        if self.gunicorn is not None and self.gunicorn.returncode is None:
            log("HUP: gunicorn reloads the current model")
            self._signal(self.gunicorn, signal.SIGHUP)

    def _stop_next(self) -> None:
        """nginx first (graceful: QUIT), gunicorn once nginx is gone (graceful: TERM)."""
        if self.nginx is not None and self.nginx.returncode is None:
            self._signal(self.nginx, signal.SIGQUIT)
        elif self.gunicorn is not None and self.gunicorn.returncode is None:
            self._signal(self.gunicorn, signal.SIGTERM)

    @staticmethod
    def _signal(process: subprocess.Popen, number: int) -> None:
        try:
            os.kill(process.pid, number)
        except ProcessLookupError:
            pass

    # -- running ------------------------------------------------------------------------------------------------
    def run(self) -> int:
        self.install_signals()
        self.run_dir, self.socket_path = prepare_run_dir(self.traffic, self.listen)
        try:
            self.gunicorn = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"], cwd=PROJECT_ROOT,
                env=gunicorn_environment(self.traffic, self.socket_path), preexec_fn=_die_with_parent)
            log(f"gunicorn (pid {self.gunicorn.pid}) starting on {self.socket_path}")
            if self._wait(lambda: _connects(socket.AF_UNIX, str(self.socket_path)), "gunicorn"):
                config = self.run_dir / "nginx.conf"
                self.nginx = subprocess.Popen(
                    [nginx_binary(), "-e", "stderr", "-p", str(self.run_dir), "-c", str(config)],
                    cwd=self.run_dir, preexec_fn=_die_with_parent)
                if self._wait(lambda: _connects(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                                                (self._connect_host(), self.port)), "nginx"):
                    log(f"serving on http://{self.listen} (nginx pid {self.nginx.pid}, config {config})")
            return self._supervise()
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _connect_host(self) -> str:
        """Where to check that nginx listens: the host itself, or loopback when nginx listens on every address."""
        try:
            unspecified = ipaddress.ip_address(self.host).is_unspecified
        except ValueError:  # a name, such as localhost
            return self.host
        return ("::1" if ":" in self.host else "127.0.0.1") if unspecified else self.host

    def _wait(self, ready: Any, name: str) -> bool:
        """Until ``ready()``; False when stopping or when a child exited first (it is reaped here)."""
        while not self.stopping and not self.failed:
            self._reap(block=False)
            if self.stopping or self.failed:
                break
            if ready():
                return True
            time.sleep(0.05)
        return False

    def _supervise(self) -> int:
        while any(process is not None and process.returncode is None for process in (self.gunicorn, self.nginx)):
            self._reap(block=True)
        return 1 if self.failed else 0

    def _reap(self, block: bool) -> None:
        """Reap whatever child ended (pid 1 reaps orphans too) and react when it was nginx or gunicorn."""
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            return
        if pid == 0:
            return
        for name, process in (("gunicorn", self.gunicorn), ("nginx", self.nginx)):
            if process is not None and process.pid == pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                if not self.stopping:
                    log(f"{name} exited on its own (status {process.returncode}): stopping the rest")
                    self.failed = self.stopping = True
                self._stop_next()


def _connects(family: int, address: Any) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(address)
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN, errno.ETIMEDOUT, None):
                log(f"waiting: {error}")
            return False
        return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("SERVE_HOST", "127.0.0.1"),
                        help="address nginx listens on (default SERVE_HOST, else 127.0.0.1; the container: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or DEFAULT_PORT),
                        help=f"port (default PORT, else {DEFAULT_PORT})")
    parser.add_argument("--traffic", type=Path, default=os.environ.get("SERVE_TRAFFIC") or None,
                        help="a YAML file laid over deploy/traffic.yaml (default SERVE_TRAFFIC, else none)")
    parser.add_argument("--print-config", action="store_true", help="print the rendered nginx.conf and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        traffic = load_traffic(args.traffic)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        log(f"error: {error}")
        return 2
    if args.print_config:
        listen = f"{args.host}:{args.port}"
        print(nginx_config(traffic, listen=listen, run_dir=Path("RUN_DIR"), socket_path=Path("RUN_DIR/gunicorn.sock")))
        return 0
    nginx_binary()  # fail before anything starts
    return Supervisor(traffic, args.host, args.port).run()


if __name__ == "__main__":
    sys.exit(main())
