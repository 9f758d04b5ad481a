"""Hot model swap under load: publish a new model into a running gunicorn, HUP its master, count what clients saw.

    python -m bench.model_swap                        # the current model of artifacts/, 32 connections, 20 s
    python -m bench.model_swap --broken               # the new model fails its load checks: the old one must stay
    python -m bench.model_swap --artifacts DIR --seconds 20 --connections 32 --output bench/results/model_swap.json

Run from the repository root. The run never touches the artifacts it is given. It copies their current model
into a scratch artifacts root and publishes it there as version A (src/store/registry.py). It starts gunicorn on
that root as production configures it (gunicorn.conf.py, 2 workers of 2 threads, pointer watching off, so the
HUP is what swaps). Then it drives the server from --connections keep-alive connections, with valid requests
only: user recommendations, similar anime, search, favourites, and the home page with a user id. A third of the
way in, it publishes version B, the same model with every title marked " [B]" (or, with --broken, points the
model at a copy whose id maps do not match), then sends SIGHUP to the master.

Every answer is checked:
- it is a 200;
- it names its model in X-Model-Version;
- its items all come from that model: every title marked for B, none for A; on pages, the footer shows the
  header's version;
- with --broken, only A ever answers, and /readyz says why B was refused.

The report gives: requests, errors (no answer even after the retry below), 5xx, answers per version, the swap's
duration (HUP to the first B answer, and HUP to the last A answer), and the master's and workers' memory
(RSS/PSS) before and after.

A request that fails on a kept-alive connection which already served others, before any response byte, is sent
again once on a new connection and counted as a reconnect, as HTTP clients do (RFC 9112, 9.3.1). A server may
close an idle kept-alive connection at any time, and a stopping gunicorn worker does after a short linger.
"""
from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.request_mix import (
    Request,
    ServedModel,
    favourites,
    search,
    similar_anime,
    title_piece,
    user_recommendations,
)
from bench.servers import HOST, free_port, request, start_gunicorn, stop_process_group, wait_until
from config.loader import load_config
from config.paths_config import artifacts_root, model_dir
from src.engine.model_check import ServingCheck
from src.store.registry import MANIFEST, publish_model, resolve_model_dir, versions_dir

MARKER = " [B]"  # appended to every title of the second model, so each item says which model it came from
VERSION_HEADER = "X-Model-Version"
CLIENT_TIMEOUT_SECONDS = 30
SEED = 11
_FOOTER = re.compile(rb'id="model-version">([^<]*)<')
# Files a model needs to serve (model.keras is left out: serving never runs the network, and it is the biggest).
_SKIPPED = {"model.keras", "history.json"}


# ---------------------------------------------------------------------------------------------------------
# The two models
# ---------------------------------------------------------------------------------------------------------
def copy_model(source: Path, destination: Path, marker: str = "", note: str = "") -> None:
    """Copy the served files of the model in ``source`` into ``destination``; with ``marker``, append it to every
    title (``name``) and record ``note`` in the manifest's data, so the copy gets a version id of its own."""
    source = resolve_model_dir(source)
    for path in source.iterdir():
        if path.is_file() and path.name not in _SKIPPED:
            shutil.copy2(path, destination / path.name)
    if marker:
        records = json.loads((destination / "anime.json").read_text(encoding="utf-8"))
        for record in records:
            record["name"] = f"{record['name']}{marker}"
        (destination / "anime.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    manifest = json.loads((destination / MANIFEST).read_text(encoding="utf-8"))
    manifest.pop("version", None)
    manifest.pop("published_at", None)
    if note:
        data = manifest.get("data") if isinstance(manifest.get("data"), dict) else {}
        manifest["data"] = {**data, "bench_model_swap": note}
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


def publish_copy(source: Path, pointer: Path, config: dict[str, Any], marker: str = "", note: str = "") -> str:
    """Publish a copy of the model in ``source`` as the current version at ``pointer``; return its version."""
    with publish_model(pointer, config, ServingCheck.from_config(config)) as staging:
        copy_model(source, staging, marker, note)
    return json.loads((resolve_model_dir(pointer) / MANIFEST).read_text(encoding="utf-8"))["version"]


def point_at_broken_copy(source: Path, pointer: Path, version: str = "29990101T000000Z-0badbad0") -> str:
    """A kept version whose id maps do not match its embeddings, made current by hand, as a corrupted disk or a
    careless copy would (the publisher itself refuses such a model). Returns its version id."""
    folder = versions_dir(pointer) / version
    folder.mkdir(parents=True)
    copy_model(source, folder, note="broken")
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest["version"] = version
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    ids = json.loads((folder / "anime_ids.json").read_text(encoding="utf-8"))
    (folder / "anime_ids.json").write_text(json.dumps(ids[: max(1, len(ids) // 2)]), encoding="utf-8")
    link = pointer.with_name(f".{pointer.name}.bench-link")
    os.symlink(Path(versions_dir(pointer).name) / version, link)
    os.replace(link, pointer)
    return version


# ---------------------------------------------------------------------------------------------------------
# The clients
# ---------------------------------------------------------------------------------------------------------
def valid_requests(model: ServedModel, rng: random.Random, count: int = 400) -> list[Request]:
    """Requests every version of the model answers with 200 (same ids; titles may only gain the marker)."""
    # A missing English title reads back from parquet as NaN, which ServedModel takes for a title.
    model = dataclasses.replace(model, titles=[title for title in model.titles if isinstance(title, str) and title])
    builders: list[Callable[[], Request]] = [
        lambda: user_recommendations(model, rng, "user", n=5),
        lambda: similar_anime(model, rng, "similar", 5),
        lambda: search("search", title_piece(model, rng), 5),
        lambda: favourites(model, rng, "favourites", 2, 5),
        lambda: Request("page", "GET", f"/users/{rng.choice(model.user_ids)}"),
    ]
    return [rng.choice(builders)() for _ in range(count)]


@dataclass
class Answer:
    kind: str
    received: float  # time.monotonic() when the response was read
    status: int
    version: str | None
    titles: list[str]  # the items' titles (JSON), or the page's text
    footer: str | None  # the version the page's footer names (pages only)
    reconnected: bool


@dataclass
class Tally:
    answers: list[Answer] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def item_titles(kind: str, body: bytes) -> list[str]:
    if kind == "page":
        return [body.decode("utf-8", "replace")]
    document = json.loads(body)
    items = {"user": "recommendations", "favourites": "recommendations", "search": "results",
             "similar": "similar"}[kind]
    found = [str(item["name"]) for item in document.get(items, [])]
    if kind == "similar":
        found.append(str(document["anime"]["name"]))
    return found


class Client:
    """One keep-alive connection, used by one thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None
        self.served = 0

    def send(self, req: Request) -> tuple[int, dict[str, str], bytes, bool]:
        """(status, headers, body, whether a stale kept-alive connection had to be replaced)."""
        for attempt in (0, 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(HOST, self.port, timeout=CLIENT_TIMEOUT_SECONDS)
                self.served = 0
            reused = self.served > 0
            try:
                self.connection.request(req.method, req.path, body=req.body, headers=req.headers)
                response = self.connection.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 0 and reused:
                    continue  # the server closed this kept-alive connection before reading the request
                raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            self.served += 1
            if response.will_close:
                self.close()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body, attempt == 1
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None


def client_loop(port: int, requests: list[Request], offset: int, stop: threading.Event, tally: Tally) -> None:
    client = Client(port)
    index = offset
    while not stop.is_set():
        req = requests[index % len(requests)]
        index += 1
        try:
            status, headers, body, reconnected = client.send(req)
            footer = _FOOTER.search(body) if req.kind == "page" else None
            answer = Answer(req.kind, time.monotonic(), status, headers.get(VERSION_HEADER.lower()),
                            item_titles(req.kind, body) if status == 200 else [],
                            footer.group(1).decode() if footer else None, reconnected)
        except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
            with tally.lock:
                tally.errors[f"{req.kind}: {type(error).__name__}: {error}"[:160]] += 1
            continue
        with tally.lock:
            tally.answers.append(answer)
    client.close()


# ---------------------------------------------------------------------------------------------------------
# Checks and figures
# ---------------------------------------------------------------------------------------------------------
def mixed_answers(answers: list[Answer], marked_version: str | None) -> list[str]:
    """Answers whose items do not all come from the model their header names (or whose footer disagrees)."""
    found = []
    for answer in answers:
        if answer.status != 200:
            continue
        marked = answer.version == marked_version
        if answer.kind == "page":
            consistent = (MARKER in answer.titles[0]) == marked and answer.footer == answer.version
        else:
            consistent = all(title.endswith(MARKER) == marked for title in answer.titles)
        if not consistent:
            found.append(f"{answer.kind} answered by {answer.version}: {answer.titles[:3]} footer={answer.footer}")
    return found


def memory(master_pid: int) -> dict[str, Any]:
    """RSS and PSS of the master and each worker, MiB (PSS shares pages fairly between the processes)."""
    import psutil

    processes = {"master": psutil.Process(master_pid),
                 **{f"worker-{i}": p for i, p in enumerate(live_workers(master_pid), 1)}}
    report: dict[str, Any] = {}
    for name, process in processes.items():
        try:
            info = process.memory_full_info()
        except psutil.Error:
            continue  # exited meanwhile
        report[name] = {"rss_mib": round(info.rss / 2**20, 1), "pss_mib": round(info.pss / 2**20, 1)}
    report["total"] = {key: round(sum(v[key] for v in report.values()), 1) for key in ("rss_mib", "pss_mib")}
    report["workers"] = len(report) - 2  # less the master and the total
    return report


def live_workers(master_pid: int) -> list[Any]:
    """The master's children that still run (an exited worker stays a zombie until the master reaps it)."""
    import psutil

    found = []
    for child in psutil.Process(master_pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


def wait_for_workers(master_pid: int, count: int, timeout: float = 40.0) -> None:
    """Until the master has ``count`` live workers (the stopping old ones have exited), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while len(live_workers(master_pid)) != count and time.monotonic() < deadline:
        time.sleep(0.1)


@dataclass
class SwapReport:
    old_version: str
    new_version: str  # the version published (with --broken, the refused one)
    marked_version: str | None  # the version whose titles carry MARKER (None: no answer may carry it)
    hup_at: float  # time.monotonic() when SIGHUP was sent
    started: float
    seconds: float
    connections: int
    tally: Tally
    readyz: dict[str, Any]
    memory_before: dict[str, Any]
    memory_after: dict[str, Any]

    def figures(self) -> dict[str, Any]:
        answers = self.tally.answers
        statuses = Counter(answer.status for answer in answers)
        versions = Counter(answer.version for answer in answers)
        first_new = min((a.received for a in answers if a.version == self.new_version), default=None)
        last_old = max((a.received for a in answers if a.version == self.old_version), default=None)
        mixed = mixed_answers(answers, self.marked_version)
        return {
            "requests": len(answers) + sum(self.tally.errors.values()), "seconds": round(self.seconds, 2),
            "connections": self.connections, "hup_after_start_s": round(self.hup_at - self.started, 3),
            "errors": sum(self.tally.errors.values()), "error_kinds": dict(self.tally.errors),
            "server_errors_5xx": sum(n for s, n in statuses.items() if s >= 500),
            "statuses": {str(s): n for s, n in sorted(statuses.items())},
            "reconnects": sum(answer.reconnected for answer in answers),
            "answers_by_version": {str(v): n for v, n in versions.items()},
            "old_version": self.old_version, "new_version": self.new_version,
            "first_new_answer_after_hup_s": None if first_new is None else round(first_new - self.hup_at, 3),
            "last_old_answer_after_hup_s": None if last_old is None else round(last_old - self.hup_at, 3),
            "mixed_answers": len(mixed), "mixed_examples": mixed[:5],
            "readyz_after": self.readyz, "memory_before": self.memory_before, "memory_after": self.memory_after,
        }


def run_swap(root: Path, port: int, master_pid: int, swap: Callable[[], str], connections: int = 32,
             before: float = 2.5, after: float = 5.5, marked: bool = True, requests: list[Request] | None = None,
             workers: int = 2) -> SwapReport:
    """Load the server on ``port`` from ``connections`` keep-alive connections: ``before`` seconds, then
    ``swap()`` (publishes, returns the new version; the load goes on meanwhile), SIGHUP to ``master_pid``, and
    ``after`` seconds more.

    ``marked``: the new version's titles carry MARKER (False: no answer's may); ``workers``: how many gunicorn
    runs (the memory after is sampled once the old ones have exited).
    """
    pointer = model_dir(root)
    wait_for_workers(master_pid, workers)
    old_version = json.loads((resolve_model_dir(pointer) / MANIFEST).read_text(encoding="utf-8"))["version"]
    requests = requests or valid_requests(ServedModel.from_folder(resolve_model_dir(pointer)), random.Random(SEED))
    memory_before = memory(master_pid)
    tally, stop = Tally(), threading.Event()
    threads = [threading.Thread(target=client_loop, args=(port, requests, i * 7, stop, tally), daemon=True)
               for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(before)
    new_version = swap()
    hup_at = time.monotonic()
    os.kill(master_pid, signal.SIGHUP)
    time.sleep(after)
    stop.set()
    for thread in threads:
        thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)
    elapsed = time.monotonic() - started
    status, _, body = request(port, "GET", "/readyz")
    wait_for_workers(master_pid, workers)  # the old workers gone: the new ones' memory only
    return SwapReport(old_version, new_version, new_version if marked else None, hup_at, started, elapsed,
                      connections, tally, {"status_code": status, **json.loads(body)}, memory_before,
                      memory(master_pid))


def scenario(source_model: Path, scratch: Path, broken: bool, connections: int, seconds: float,
             log: Path) -> dict[str, Any]:
    """The whole run on a scratch copy of ``source_model``; returns the figures and the problems found."""
    config = load_config()
    root = scratch / "artifacts"
    pointer = model_dir(root)
    publish_copy(source_model, pointer, config, note="A")
    port = free_port()
    server = start_gunicorn(root, port, log, env={"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4",
                                                  "MODEL_WATCH_SECONDS": "0"}, extra_args=["--max-requests", "0"])
    try:
        wait_until(port, "/readyz", server, timeout=180, log_path=log)
        if broken:
            report = run_swap(root, port, server.pid, lambda: point_at_broken_copy(source_model, pointer),
                              connections, seconds / 3, seconds * 2 / 3, marked=False)
        else:
            report = run_swap(root, port, server.pid,
                              lambda: publish_copy(source_model, pointer, config, MARKER, note="B"),
                              connections, seconds / 3, seconds * 2 / 3)
        alive = server.poll() is None
    finally:
        stop_process_group(server)
    figures = report.figures()
    figures["scenario"] = "broken new model" if broken else "new model"
    figures["problems"] = problems(figures, broken, alive)
    figures["passed"] = not figures["problems"]
    return figures


def problems(figures: dict[str, Any], broken: bool, server_alive: bool = True) -> list[str]:
    found = []
    for key, label in (("errors", "requests without an answer"), ("server_errors_5xx", "5xx answers"),
                       ("mixed_answers", "answers mixing models")):
        if figures[key]:
            found.append(f"{figures[key]} {label}")
    if set(figures["statuses"]) != {"200"}:
        found.append(f"statuses other than 200: {figures['statuses']}")
    if not server_alive:
        found.append("gunicorn died")
    served = set(figures["answers_by_version"])
    readyz = figures["readyz_after"]
    if broken:
        if served != {figures["old_version"]}:
            found.append(f"answers came from {sorted(served)}, not only the old version")
        if readyz.get("version") != figures["old_version"] or "refused" not in readyz:
            found.append(f"/readyz does not say the new model was refused: {readyz}")
    else:
        if figures["new_version"] not in served:
            found.append("no answer came from the new version")
        if readyz.get("version") != figures["new_version"]:
            found.append(f"/readyz names {readyz.get('version')}, not the new version")
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, help="artifacts root whose current model is used (default: "
                                                       "ANIME_ARTIFACTS_DIR or artifacts/); never modified")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="how long the load runs; the HUP comes a third of the way in (default 20)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--broken", action="store_true", help="the new model fails its load checks")
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    source = model_dir(args.artifacts or artifacts_root())
    if not (source / MANIFEST).is_file():
        print(f"error: no model under {source}: train first (make train) or pass --artifacts", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="model-swap-") as scratch:
        log = Path(scratch) / "gunicorn.log"
        figures = scenario(source, Path(scratch), args.broken, args.connections, args.seconds, log)
    text = json.dumps(figures, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    print(f"model swap ({figures['scenario']}): {figures['requests']} requests from {figures['connections']} "
          f"connections in {figures['seconds']} s, {figures['errors']} errors, {figures['server_errors_5xx']} 5xx, "
          f"{figures['reconnects']} reconnects; first new answer {figures['first_new_answer_after_hup_s']} s and "
          f"last old answer {figures['last_old_answer_after_hup_s']} s after the HUP: "
          f"{'passed' if figures['passed'] else 'FAILED: ' + '; '.join(figures['problems'])}", file=sys.stderr)
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
