"""Issue 30's HTTP benchmark: the mix and its realistic variant beside /healthz, on gunicorn alone and on the
production stack, before and after a change, in one run on the same machine.

    python -m bench.serving_mix --model-root /tmp/r28/a50 --before HEAD        # HEAD's code, then this tree's
    python -m bench.serving_mix --model-root /tmp/r28/a50 --before HEAD --after HEAD   # the harness against itself
    python -m bench.serving_mix --seconds 5 --repeats 1 --stacks gunicorn      # this tree only, short
    python -m bench.serving_mix --before HEAD~3 --output /tmp/serving_mix.json

Run from the repository root. Without ``--model-root`` it serves the model of the artifacts root (ANIME_ARTIFACTS_DIR
or artifacts/), or one trained quickly on the embedded sample (bench/run.py's ensure_model). The model it is given is
never touched: its current version folder is copied into a scratch artifacts root per side.

The requests (one requests file each, built from the served model's ids and titles, bench/request_mix.py):
- **mix**: 60% a known user's recommendations (GET /api/users/<id>/recommendations, default options), 25% similar
  anime (GET /api/anime/<id>/similar, default options), 15% title search (GET /api/anime/search?q=<3-7 characters of
  a real title>), every id one the model knows;
- **realistic**: 10% favourites (POST /api/recommendations, 3 to 10 of the model's anime, default options), 10% with
  a genre (one of the catalogue's, uniformly) or a year filter (a decade, or "since" a year from 2000 to 2016), 5%
  with n=100, the filtered and n=100 requests split between recommendations and similar anime as the mix splits
  them (60:25); the other 75% as the mix;
- **healthz**: GET /healthz only, the floor: what the same stack does when the app does nothing.
Each kind's share is exact (the counts are rounded once, then the order shuffled, seeded).

The sides: ``--before REV`` is checked out into a temporary git worktree (``git worktree add --detach``, removed at
the end) and served from there: that revision's code, gunicorn.conf.py and deploy/serve.py, the same Python
environment. The "after" side is this working tree as it is at the start (uncommitted edits included: its files,
ignored ones apart, are copied first, so that edits made during the run change nothing), or ``--after REV`` the same
way as the before side. Each side serves its own copy of the model version folder: the after side's copy gets the
candidate tables its code computes at publish (BUILD_SCRIPT, in a subprocess in that side's tree, timed:
src/engine/model_check.py's ServingCheck.complete, before issue 31 src/model_registry.py's publish_candidates, else
src/engine/candidates.py's build_candidates(folder, config); neither: the copy is served as it is, live); the
before side's copy has no candidate files (any file the build added or changed, or named *candidate*, left out),
unless ``--before-candidates``: then its own code builds them the same way (two revisions of the online stage).
Without ``--before`` only the after side runs.

The runs: for each repeat, each stack (``gunicorn``: gunicorn alone as gunicorn.conf.py configures it; ``full``:
nginx in front, deploy/serve.py, the proxy's per-client limits raised out of the way as in bench/http_load.py) and
each side in turn (A, B, A, B, so that drift in the machine's load shows as a difference between repeats, not
between sides), a fresh server with ``--workers`` workers (2): ready on /readyz, all workers forked, ``--warmup``
seconds of the realistic file unmeasured, then wrk (bench/wrk_mix.lua, 2 threads, ``--connections``, ``--seconds``
each) on healthz, mix and realistic in that order, ``--pause`` seconds apart (wrk stops with requests in flight,
which the server still answers: the pause keeps them out of the next cell). wrk tallies the answers' X-Served-From
header (candidates or live, "none" without it; the fallback rate is live / (candidates + live)). On each side's first
gunicorn server, the first ``--sample`` requests of the realistic file are also sent one at a time to tally status and
X-Served-From per kind.

Per cell: requests/s, p50/p99 (wrk's), errors (socket errors and non-2xx answers), the ratio to the /healthz floor of
the same server, the server's CPU per request (every process of the stack), and the machine's load: the 1-minute load
average at the start, and the cores busy with anything other than the server and wrk meanwhile (others_cores, from
/proc/stat) and stolen by the hypervisor (steal_cores). The medians over repeats are the table; each run is in the
JSON (``--output``, default bench/results/serving_mix.json). The issue's targets are checked for each side.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.common import PROJECT_ROOT, RESULTS_DIR, machine, now, save_json
from bench.http_load import children_cpu_seconds, run_wrk, server_cpu_seconds, wait_for_workers
from bench.request_mix import JSON, Request, ServedModel, title_piece, write_requests
from bench.servers import (
    HOST,
    UNLIMITED_TRAFFIC,
    free_port,
    gunicorn_master,
    start_server,
    stop_process_group,
    wait_until,
)
from config.paths_config import model_dir

RESULTS = RESULTS_DIR / "serving_mix.json"
SERVED_FROM = "X-Served-From"
CELLS = ("healthz", "mix", "realistic")
STACKS = ("gunicorn", "full")
# The issue's targets (2 cores, the --min-user-ratings 50 model), through gunicorn alone
TARGETS = {"mix": {"requests_per_second": 1500, "p99_ms": 60, "errors": 0, "ratio_to_floor": 0.5},
           "realistic": {"requests_per_second": 1000, "p99_ms": 100}}
SERVER_START_SECONDS = 6  # about: ready, workers forked, stopped (the 50 model: 3.5 s to ready)


# ---------------------------------------------------------------------------------------------------------
# The requests
# ---------------------------------------------------------------------------------------------------------
Builder = Callable[[ServedModel, random.Random, str], Request]


def _recommendations(query: dict[str, Any] | None = None) -> Builder:
    def build(model: ServedModel, rng: random.Random, kind: str) -> Request:
        path = f"/api/users/{rng.choice(model.user_ids)}/recommendations"
        return Request(kind, "GET", path + _query(query, model, rng))
    return build


def _similar(query: dict[str, Any] | None = None) -> Builder:
    def build(model: ServedModel, rng: random.Random, kind: str) -> Request:
        return Request(kind, "GET", f"/api/anime/{rng.choice(model.anime_ids)}/similar" + _query(query, model, rng))
    return build


FILTER = {"filter": True}  # a marker: draw a genre or year filter for this request


def _query(query: dict[str, Any] | None, model: ServedModel, rng: random.Random) -> str:
    if not query:
        return ""
    if query is FILTER:
        query = filter_query(model, rng)
    return "?" + urllib.parse.urlencode(query)


def filter_query(model: ServedModel, rng: random.Random) -> dict[str, Any]:
    """Half the time one genre of the catalogue's, else a year filter: a decade, or since a year."""
    if model.genres and rng.random() < 0.5:
        return {"genre": rng.choice(model.genres)}
    if rng.random() < 0.5:
        decade = rng.choice([1980, 1990, 2000, 2010])
        return {"year_from": decade, "year_to": decade + 9}
    return {"year_from": rng.randint(2000, 2016)}


def _search(model: ServedModel, rng: random.Random, kind: str) -> Request:
    text = title_piece(model, rng)[:50]  # a title piece; a whole title only when the piece is blank
    return Request(kind, "GET", "/api/anime/search?" + urllib.parse.urlencode({"q": text}))


def _favourites(model: ServedModel, rng: random.Random, kind: str) -> Request:
    liked = rng.sample(model.anime_ids, min(rng.randint(3, 10), len(model.anime_ids)))
    return Request(kind, "POST", "/api/recommendations", body=json.dumps({"liked": liked}).encode(),
                   headers=dict(JSON))


def _healthz(model: ServedModel, rng: random.Random, kind: str) -> Request:
    return Request(kind, "GET", "/healthz")


# kind -> (share in percent, builder)
ISSUE_MIX: dict[str, tuple[float, Builder]] = {
    "recommendations": (60, _recommendations()),
    "similar": (25, _similar()),
    "search": (15, _search),
}
# The filtered and n=100 requests split between the two recommendation endpoints as the mix splits them
_REC, _SIM = 60 / 85, 25 / 85
REALISTIC_MIX: dict[str, tuple[float, Builder]] = {
    **{kind: (share * 0.75, builder) for kind, (share, builder) in ISSUE_MIX.items()},
    "favourites": (10, _favourites),
    "filtered recommendations": (10 * _REC, _recommendations(FILTER)),
    "filtered similar": (10 * _SIM, _similar(FILTER)),
    "n=100 recommendations": (5 * _REC, _recommendations({"n": 100})),
    "n=100 similar": (5 * _SIM, _similar({"n": 100})),
}
MIXES: dict[str, dict[str, tuple[float, Builder]]] = {
    "healthz": {"healthz": (100, _healthz)}, "mix": ISSUE_MIX, "realistic": REALISTIC_MIX}


def exact_counts(shares: dict[str, float], count: int) -> dict[str, int]:
    """``count`` split by ``shares`` (any positive weights), each rounded so that they sum to ``count`` exactly
    (largest remainders)."""
    total = sum(shares.values())
    raw = {kind: count * share / total for kind, share in shares.items()}
    counts = {kind: int(value) for kind, value in raw.items()}
    by_remainder = sorted(raw, key=lambda kind: (raw[kind] - counts[kind], kind), reverse=True)
    for kind in by_remainder[:count - sum(counts.values())]:
        counts[kind] += 1
    return counts


def build_requests(model: ServedModel, mix: str, count: int, seed: int = 42) -> list[Request]:
    """``count`` requests of ``mix`` ("mix", "realistic" or "healthz"), each kind exactly its share, shuffled."""
    rng = random.Random(f"{mix}-{seed}")
    builders = MIXES[mix]
    kinds = [kind for kind, n in exact_counts({kind: share for kind, (share, _) in builders.items()}, count).items()
             for _ in range(n)]
    rng.shuffle(kinds)
    return [builders[kind][1](model, rng, kind) for kind in kinds]


# ---------------------------------------------------------------------------------------------------------
# The sides: a source tree and a copy of the model
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Side:
    name: str  # "before" or "after"
    tree: Path  # the source tree it serves
    revision: str  # what it is: a commit, or "working tree"
    root: Path  # its artifacts root (a copy of the model)
    worktree: bool = False  # a temporary git worktree, removed at the end
    candidates: dict[str, Any] = field(default_factory=dict)
    code_check: dict[str, str] = field(default_factory=dict)


def git(*args: str, cwd: Path = PROJECT_ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.rstrip()


def add_worktree(revision: str, path: Path) -> str:
    """Check ``revision`` out, detached, at ``path``; its commit and subject."""
    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}")
    git("worktree", "add", "--detach", str(path), commit)
    return f"{revision} = {commit[:12]} ({git('log', '-1', '--format=%s', commit)[:80]})"


def remove_worktree(path: Path) -> None:
    try:
        git("worktree", "remove", "--force", str(path))
    except subprocess.CalledProcessError as error:
        print(f"could not remove the worktree {path}: {error.stderr.strip()}; pruning", file=sys.stderr)
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=PROJECT_ROOT, check=False)


def working_tree_state() -> dict[str, Any]:
    """HEAD and what differs from it in this tree (the after side serves it as it is)."""
    return {"head": git("rev-parse", "HEAD"), "status": git("status", "--short").splitlines(),
            "diff_stat": git("diff", "--stat", "HEAD").splitlines()[-1:] or ["clean"]}


def snapshot_working_tree(path: Path) -> Path:
    """A copy of this working tree's files as they are now (tracked and untracked, ignored ones apart), so that every
    server of the after side runs the same code even while the tree is being edited."""
    names = git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, names):
        source = PROJECT_ROOT / name
        if source.is_file():  # a tracked file deleted in the tree is left out
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name)
    return path


def check_code(tree: Path) -> dict[str, str]:
    """Where a server started in ``tree`` takes its code from (python -m with that working folder); raises if any of
    it comes from elsewhere."""
    script = ("import json, application, src, deploy.serve, config.paths_config as p; "
              "print(json.dumps({'application': application.__file__, 'src': src.__file__, "
              "'deploy.serve': deploy.serve.__file__, 'PROJECT_ROOT': str(p.PROJECT_ROOT)}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=tree, capture_output=True, text=True, timeout=120,
                          check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    outside = {name: path for name, path in found.items() if not Path(path).resolve().is_relative_to(tree.resolve())}
    if outside:
        raise RuntimeError(f"a server started in {tree} would import code from elsewhere: {outside}")
    return found


# Run in the side's own tree. The publish step itself when that code has one (src/engine/model_check.py's
# ServingCheck.complete, or before issue 31 src/model_registry.py's publish_candidates: what publish_model runs),
# else build_candidates(folder, ServingConfig) of src/engine/candidates.py; neither: nothing to build, the model is
# served live.
BUILD_SCRIPT = """
import inspect, json, sys, time
from pathlib import Path
from config.loader import load_config
from config.settings import ServingConfig
try:  # the layout since issue 31; before it, the registry was src/model_registry.py and built them itself
    from src.engine.model_check import ServingCheck
    registry = None
except ImportError:
    ServingCheck = None
    import src.model_registry as registry

folder, config = Path(sys.argv[1]), load_config()

def skip(reason):
    print(json.dumps({"built": False, "reason": reason}))
    sys.exit(0)

if ServingCheck is not None:
    how = "src.engine.model_check.ServingCheck.from_config(config).complete(folder)"
    def build():
        ServingCheck.from_config(config).complete(folder)
elif hasattr(registry, "publish_candidates"):
    how = "src.model_registry.publish_candidates(folder, config)"
    def build():
        registry.publish_candidates(folder, config)
else:
    try:
        from src.engine.candidates import build_candidates
    except ImportError as error:
        if error.name != "src.engine.candidates":
            raise
        skip(f"{type(error).__name__}: {error}")
    if list(inspect.signature(build_candidates).parameters)[:1] != ["folder"]:
        skip(f"build_candidates{inspect.signature(build_candidates)} does not take a model folder")
    how = "src.engine.candidates.build_candidates(folder, ServingConfig)"
    def build():
        build_candidates(folder, ServingConfig.from_config(config))

started = time.perf_counter()
build()
print(json.dumps({"built": True, "how": how, "seconds": round(time.perf_counter() - started, 2)}))
"""


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {path.name: (path.stat().st_size, path.stat().st_mtime_ns) for path in folder.iterdir() if path.is_file()}


def build_candidates(tree: Path, folder: Path) -> dict[str, Any]:
    """Build the candidate tables into the model version ``folder`` with ``tree``'s code (BUILD_SCRIPT, a subprocess
    in that tree: the side's own code writes its own tables); what it wrote. Skipped when that code has no such step.
    A result without files written means the step ran but wrote nothing (candidates switched off in its config)."""
    before = listing(folder)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BUILD_SCRIPT, str(folder)], cwd=tree, capture_output=True,
                          text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(f"build_candidates failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    after = listing(folder)
    result["files"] = {name: size for name, (size, mtime) in after.items() if before.get(name) != (size, mtime)}
    result["bytes"] = sum(result["files"].values())
    result["model_bytes"] = sum(size for name, (size, _) in after.items() if name not in result["files"])
    return result


def copy_model(source_folder: Path, root: Path, leave_out: set[str] = frozenset()) -> Path:
    """An artifacts root at ``root`` whose current model (root/model -> models/<version>) is a copy of the model
    version ``source_folder``, without the files named in ``leave_out``; the copied version folder."""
    folder = root / "models" / source_folder.name
    shutil.copytree(source_folder, folder, ignore=lambda _dir, names: [name for name in names if name in leave_out])
    (root / "model").symlink_to(Path("models") / source_folder.name)
    return folder


def prepare_sides(sides: list[Side], source_folder: Path, scratch: Path, before: str | None,
                  after: str | None, candidates: bool = True, before_candidates: bool = False) -> None:
    """Fill ``sides`` (a list of the caller's, so that it can remove any worktree even if this fails): given
    ``before``, that revision checked out, serving a copy of the model without candidate files (``before_candidates``:
    with the candidates its own code builds, when it has that step); then the after side (this tree, or ``after``
    checked out) with the candidates built into its copy by its own code."""
    for name, revision in (("before", before), ("after", after)):
        if name == "before" and revision is None:
            continue
        if revision is None:
            sides.append(Side(name, snapshot_working_tree(scratch / f"{name}-tree"), "working tree (a copy taken at "
                              f"{time.strftime('%H:%M:%S')})", scratch / f"{name}-artifacts"))
        else:
            sides.append(Side(name, scratch / f"{name}-tree", "", scratch / f"{name}-artifacts", worktree=True))
            sides[-1].revision = add_worktree(revision, sides[-1].tree)
        sides[-1].code_check = check_code(sides[-1].tree)
    after_side = sides[-1]
    folder = copy_model(source_folder, after_side.root)
    if candidates:
        print(f"[{time.strftime('%H:%M:%S')}] building the candidates with the after side's code ...", flush=True)
        after_side.candidates = build_candidates(after_side.tree, folder)
        print(f"  {json.dumps(after_side.candidates)}", flush=True)
    else:
        after_side.candidates = {"built": False, "reason": "--no-candidates"}
    for side in sides[:-1]:
        leave_out = set(after_side.candidates.get("files", {})) | {
            path.name for path in source_folder.iterdir() if "candidate" in path.name.lower()}
        folder = copy_model(source_folder, side.root, leave_out)
        side.candidates = {"built": False, "left_out": sorted(leave_out)}
        if before_candidates:
            print(f"[{time.strftime('%H:%M:%S')}] building the candidates with the {side.name} side's code ...",
                  flush=True)
            side.candidates = build_candidates(side.tree, folder) | {"left_out": sorted(leave_out)}
            print(f"  {json.dumps(side.candidates)}", flush=True)


# ---------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------
def busy_cpu() -> tuple[float, float]:
    """The machine's CPU seconds so far: (busy with any process, stolen by the hypervisor)."""
    times = psutil.cpu_times()
    busy = times.user + times.nice + times.system + getattr(times, "irq", 0) + getattr(times, "softirq", 0)
    return busy, getattr(times, "steal", 0.0)


def measure_cell(process: subprocess.Popen, port: int, requests_file: Path, seconds: int, connections: int,
                 scratch: Path) -> dict[str, Any]:
    """One wrk run, with X-Served-From tallied on every cell (/healthz too, so that wrk does the same work per answer
    on the floor as on the mixes), and the machine's load meanwhile."""
    load_average = os.getloadavg()[0]
    busy_before, steal_before = busy_cpu()
    server_before, wrk_before = server_cpu_seconds(process.pid), children_cpu_seconds()
    started = time.perf_counter()
    result = run_wrk(port, seconds, connections, requests_file, scratch, tally_header=SERVED_FROM)
    wall = time.perf_counter() - started
    server = server_cpu_seconds(process.pid) - server_before
    wrk = children_cpu_seconds() - wrk_before
    busy, steal = busy_cpu()
    if process.poll() is not None:
        raise RuntimeError("the server died during the load")
    requests = max(result["requests"], 1)
    result.pop("wrk", None)
    return {**result, "server_cpu_ms_per_request": round(1000 * server / requests, 3),
            "server_cores": round(server / wall, 2), "wrk_cores": round(wrk / wall, 2),
            "others_cores": round(max(busy - busy_before - server - wrk, 0) / wall, 2),
            "steal_cores": round((steal - steal_before) / wall, 2), "load_average_1m": round(load_average, 2)}


def sample_kinds(port: int, requests: list[Request]) -> dict[str, dict[str, Any]]:
    """Send ``requests`` one at a time on one kept-alive connection; per kind: count, statuses, X-Served-From values,
    mean milliseconds. Stops after 200 when none carried the header (code without it: nothing to tally)."""
    tallies: dict[str, dict[str, Any]] = {}
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    seen_header = False
    try:
        for index, item in enumerate(requests):
            started = time.perf_counter()
            connection.request(item.method, item.path, body=item.body, headers=item.headers)
            response = connection.getresponse()
            response.read()
            milliseconds = 1000 * (time.perf_counter() - started)
            served = response.getheader(SERVED_FROM) or "none"
            seen_header = seen_header or served != "none"
            tally = tallies.setdefault(item.kind, {"requests": 0, "status": Counter(), "served_from": Counter(),
                                                   "ms": 0.0})
            tally["requests"] += 1
            tally["status"][str(response.status)] += 1
            tally["served_from"][served] += 1
            tally["ms"] += milliseconds
            if index + 1 >= 200 and not seen_header:
                break
    finally:
        connection.close()
    for tally in tallies.values():
        tally["mean_ms"] = round(tally.pop("ms") / tally["requests"], 2)
        tally["status"], tally["served_from"] = dict(tally["status"]), dict(tally["served_from"])
    return tallies


def one_server(side: Side, stack: str, files: dict[str, Path], settings: argparse.Namespace, scratch: Path,
               sample: list[Request] | None) -> dict[str, Any]:
    """A fresh server of ``side`` on ``stack``: ready, warmed up, then each cell in turn; stopped."""
    port = free_port()
    log_path = scratch / f"{side.name}-{stack}-{port}.log"
    started = time.perf_counter()
    process = start_server(stack, side.root, port, log_path, env={"WEB_CONCURRENCY": str(settings.workers)},
                           traffic=UNLIMITED_TRAFFIC, cwd=side.tree)
    run: dict[str, Any] = {"side": side.name, "stack": stack}
    try:
        wait_until(port, "/readyz", process, timeout=300, log_path=log_path, interval=0.05)
        run["ready_seconds"] = round(time.perf_counter() - started, 2)
        master = gunicorn_master(process)
        run["workers"] = len(wait_for_workers(master))
        if settings.warmup:
            run_wrk(port, settings.warmup, settings.connections, files["realistic"], scratch)
        run["cells"] = {}
        for cell in CELLS:
            # wrk leaves up to --connections requests in flight when it stops, which the server still answers:
            # let them drain, or the next cell's first requests queue behind them
            time.sleep(settings.pause)
            run["cells"][cell] = measure_cell(process, port, files[cell], settings.seconds, settings.connections,
                                              scratch)
        if sample:
            run["sample"] = sample_kinds(port, sample)
    except Exception:
        print(log_path.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        stop_process_group(process)
    floor = run["cells"]["healthz"]["requests_per_second"]
    for cell in run["cells"].values():
        cell["ratio_to_floor"] = round(cell["requests_per_second"] / floor, 3) if floor else None
    return run


# ---------------------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------------------
FIGURES = ("requests_per_second", "p50_ms", "p99_ms", "ratio_to_floor", "server_cpu_ms_per_request", "others_cores",
           "steal_cores", "load_average_1m", "wrk_cores")


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """stack -> side -> cell -> medians over the runs, errors summed, the X-Served-From tallies summed."""
    summary: dict[str, Any] = {}
    for run in runs:
        for cell, figures in run["cells"].items():
            summary.setdefault(run["stack"], {}).setdefault(run["side"], {}).setdefault(cell, []).append(figures)
    for sides in summary.values():
        for cells in sides.values():
            for cell, figures in cells.items():
                merged: dict[str, Any] = {key: statistics.median(run[key] for run in figures) for key in FIGURES
                                          if all(run.get(key) is not None for run in figures)}
                merged["runs_requests_per_second"] = [run["requests_per_second"] for run in figures]
                merged["errors"] = sum(run["errors"] for run in figures)
                tally = Counter()
                for run in figures:
                    tally.update(run.get("tally") or {})
                merged["served_from"] = dict(tally)
                decided = tally.get("candidates", 0) + tally.get("live", 0)
                merged["fallback_rate"] = round(tally.get("live", 0) / decided, 4) if decided else None
                cells[cell] = merged
    return summary


def targets(summary: dict[str, Any], side: str) -> dict[str, dict[str, Any]]:
    """The issue's targets (through gunicorn alone) for ``side``: each figure, its target, and whether it is met."""
    checked = {}
    for cell, wanted in TARGETS.items():
        figures = summary.get("gunicorn", {}).get(side, {}).get(cell)
        if not figures:
            continue
        for key, target in wanted.items():
            value = figures.get(key)
            higher = key in ("requests_per_second", "ratio_to_floor")
            met = value is not None and (value >= target if higher else value <= target)
            checked[f"{cell} {key}"] = {"value": value, "target": f"{'>=' if higher else '<='} {target}", "met": met}
    return checked


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]

    def rate(cells: dict[str, Any], cell: str) -> float:
        return cells[cell]["requests_per_second"]

    lines = ["| stack | side | cell | req/s (median; runs) | p50 ms | p99 ms | errors | / floor | fallback "
             "| server CPU ms/req | load 1m | others' cores | steal |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for stack, sides in summary.items():
        for side, cells in sides.items():
            for cell, figures in cells.items():
                runs = ", ".join(f"{value:,.0f}" for value in figures["runs_requests_per_second"])
                fallback = figures["fallback_rate"]
                lines.append(
                    f"| {stack} | {side} | {cell} | {figures['requests_per_second']:,.0f} ({runs}) "
                    f"| {_number(figures.get('p50_ms'))} | {_number(figures.get('p99_ms'))} | {figures['errors']} "
                    f"| {_number(figures.get('ratio_to_floor'), 2)} "
                    f"| {'-' if fallback is None else f'{100 * fallback:.1f}%'} "
                    f"| {_number(figures.get('server_cpu_ms_per_request'), 2)} "
                    f"| {_number(figures.get('load_average_1m'), 2)} | {_number(figures.get('others_cores'), 2)} "
                    f"| {_number(figures.get('steal_cores'), 2)} |")
    if len(report["sides"]) == 2:
        ratios = [f"{stack} {cell} {rate(sides['after'], cell) / rate(sides['before'], cell):.2f}"
                  for stack, sides in summary.items() if {"before", "after"} <= set(sides) for cell in CELLS]
        lines += ["", "after / before (requests/s, medians): " + "; ".join(ratios)]
    for side, checked in report["targets"].items():
        if checked:
            lines += ["", f"targets, {side} (gunicorn alone): " + "; ".join(
                f"{name} {_number(item['value'], 2 if 'ratio' in name else 1)} ({item['target']}: "
                f"{'met' if item['met'] else 'NOT met'})" for name, item in checked.items())]
    for side, sample in report["samples"].items():
        lines += ["", f"sample, {side} (first requests of the realistic file, one at a time, gunicorn): " + "; ".join(
            f"{kind} {tally['requests']}: {tally['status']} {tally['served_from']}, {tally['mean_ms']} ms"
            for kind, tally in sorted(sample.items()))]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------
def run(settings: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    if settings.model_root:
        root, origin = settings.model_root, f"given: {settings.model_root}"
    else:
        from bench.run import ensure_model

        root, origin = ensure_model(scratch)
    source_folder = Path(os.path.realpath(model_dir(root)))
    report: dict[str, Any] = {
        "command": "python -m bench.serving_mix " + " ".join(settings.argv), "started_at": now(),
        "machine": machine(), "model": {"origin": origin, "folder": str(source_folder)},
        "settings": {key: value for key, value in vars(settings).items() if key != "argv"} | {"cells": CELLS},
        "working_tree": working_tree_state()}
    sides: list[Side] = []
    try:
        started = time.perf_counter()
        prepare_sides(sides, source_folder, scratch, settings.before, settings.after, not settings.no_candidates,
                      settings.before_candidates)
        report["prepare_seconds"] = round(time.perf_counter() - started, 1)
        report["sides"] = {side.name: {"tree": str(side.tree), "revision": side.revision,
                                       "candidates": side.candidates, "code": side.code_check} for side in sides}
        model = ServedModel.from_folder(model_dir(sides[-1].root))
        files = {cell: write_requests(scratch / f"{cell}.tsv", build_requests(model, cell, settings.requests,
                                                                              settings.seed))
                 for cell in CELLS}
        sample = build_requests(model, "realistic", settings.requests, settings.seed)[:settings.sample]
        servers = settings.repeats * len(settings.stacks) * len(sides)
        estimate = servers * (SERVER_START_SECONDS + settings.warmup + len(CELLS) * (settings.seconds + settings.pause))
        print(f"[{time.strftime('%H:%M:%S')}] {servers} servers, about {estimate / 60:.1f} min", flush=True)
        runs, sampled = [], set()
        for repeat in range(settings.repeats):
            for stack in settings.stacks:
                for side in sides:
                    take_sample = stack == "gunicorn" and side.name not in sampled and settings.sample > 0
                    result = one_server(side, stack, files, settings, scratch, sample if take_sample else None)
                    result["repeat"] = repeat
                    sampled |= {side.name} if take_sample else set()
                    runs.append(result)
                    print(f"[{time.strftime('%H:%M:%S')}] {stack} {side.name}: " + ", ".join(
                        f"{cell} {figures['requests_per_second']:,.0f}/s p99 {figures['p99_ms']:.0f} ms "
                        f"err {figures['errors']}" for cell, figures in result["cells"].items()), flush=True)
    finally:
        for side in sides:
            if side.worktree:
                remove_worktree(side.tree)
    report["runs"] = runs
    report["summary"] = summarise(runs)
    report["targets"] = {side.name: targets(report["summary"], side.name) for side in sides}
    report["samples"] = {run["side"]: run["sample"] for run in runs if run.get("sample")}
    report["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-root", type=Path, help="an artifacts root with a trained model (default: the "
                        "configured one, or one trained quickly on the embedded sample)")
    parser.add_argument("--before", metavar="REV", help="serve this revision's code too (a temporary git worktree)")
    parser.add_argument("--after", metavar="REV", help="the after side's code (default: this working tree as is)")
    parser.add_argument("--stacks", nargs="+", choices=STACKS, default=list(STACKS))
    parser.add_argument("--seconds", type=int, default=20, help="wrk's duration per cell (default 20)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="servers per side and stack, alternating sides")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load on each new server")
    parser.add_argument("--pause", type=float, default=1.0,
                        help="seconds between wrk runs on a server, for the requests left in flight to drain")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--no-candidates", action="store_true",
                        help="build no candidates: both sides serve the model as it is (with --before and --after "
                        "the same revision, an A/A check of the harness)")
    parser.add_argument("--before-candidates", action="store_true",
                        help="the before side serves the candidates its own code builds too (a revision since issue "
                        "30 against a later one: what changed in the online stage)")
    parser.add_argument("--requests", type=int, default=50_000, help="requests per requests file")
    parser.add_argument("--sample", type=int, default=1000, help="requests sent one at a time to tally per kind")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS)
    settings = parser.parse_args(argv)
    settings.argv = list(argv if argv is not None else sys.argv[1:])
    if not shutil.which("wrk"):
        parser.error("wrk is not installed (Debian's wrk: apt-get install wrk; `make bench` installs it)")
    if settings.seconds < 1 or settings.repeats < 1 or settings.requests < 1:
        parser.error("--seconds, --repeats and --requests must be at least 1")
    # SIGTERM as Ctrl-C: the servers are stopped and the worktree removed on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-serving-mix-") as scratch:
        report = run(settings, Path(scratch))
    report["seconds"] = round(time.perf_counter() - started, 1)
    table = markdown(report)
    report["markdown"] = table
    save_json(settings.output, report)
    print(table)
    print(f"\nload average at the start {report['machine']['load_average']}, at the end "
          f"{report['load_average_after']}; {report['seconds']:.0f} s in all; wrote {settings.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
