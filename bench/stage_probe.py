"""Inside one pipeline stage's process: where its time and memory go (bench/full_size.py runs every stage through it).

    python -m bench.stage_probe --stage train --report REPORT.json -- [training_pipeline options]

Runs ``pipeline/training_pipeline.py --stage STAGE`` in this process, as the CLI would, and watches it three ways:

- **sections**: named steps of the pipeline (``choose_settings``, ``fit_ncf``, ``ease_weights``, the publication
  of a model, ...) are timed by wrapping those functions wherever the pipeline's modules hold them, nested, each
  with its seconds, calls and the peak RSS sampled while it ran. Names the code no longer has are skipped, so the
  probe survives refactoring; what a section does not cover shows as "(rest)" of its parent.
- **samples**: the main thread's Python stack, about 20 times a second, each sample weighing the seconds since
  the previous one: the project functions (src/, pipeline/) that were on the stack (inclusive share of the
  stage's time) and the innermost call (numpy, TensorFlow, LAPACK wrappers, ...). Nothing has to be named in
  advance for these.
- **NCF fits**: users, interactions and epochs of every ``fit_ncf`` and each epoch's seconds (the first
  compiles), so training throughput comes out in users/s and interactions/s.

The log records of the project's loggers are kept too (with their offsets in seconds). The report is JSON.
Nothing here changes what the stage computes.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import logging
import os
import resource
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

PROCESS_STARTED = time.time()
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_DIRS = tuple(str(PROJECT_ROOT / name) + os.sep for name in ("src", "pipeline", "utils", "config"))

# Functions timed as sections, by stage: "module:qualified name". Context managers (publication, the Comet
# experiment) get their entry and exit timed apart: the exit is where a model is checked and published.
SECTIONS = {
    "ingest": ["src.data.ingestion:ingest"],
    "process": ["src.data.processing:process", "src.data.processing:read_rating_blocks",
                "src.data.processing:_keep_rows", "src.data.metadata:read_metadata",
                "src.data.content_features:fit_content_features", "src.data.splits:assign_splits",
                "utils.atomic:atomic_directory"],
    "train": ["src.training.train:prepare_training_data", "src.tuning.hybrid:choose_settings",
              "src.data.splits:carve", "src.training.train:fit_ncf", "src.models.ease:gram",
              "src.models.ease:ease_from_gram", "src.models.ease:keep_top_neighbours",
              "src.models.ease:fit_item_weight_sets", "src.tuning.hybrid:_coordinate_search",
              "src.tuning.hybrid:ComponentTable.normalised", "src.tuning.hybrid:ComponentTable.recall",
              "src.engine.recommender:Recommender.__init__", "src.engine.recommender:Recommender.with_item_item",
              "src.training.train:train", "keras:Model.save", "src.store.artifacts:save_embeddings",
              "src.store.artifacts:save_item_weights", "src.store.artifacts:write_tables",
              "src.data.files:save_content_features", "src.training.ledger:check_published_rows",
              "src.store.registry:publish_model", "utils.atomic:atomic_directory",
              "src.training.tracking:tracked_experiment"],
    "evaluate": ["src.evaluation.runner:evaluate_model", "src.evaluation.runner:load_model_artifacts",
                 "src.training.train:prepare_training_data", "src.evaluation.runner:engine_for",
                 "src.data.splits:carve", "src.evaluation.runner:tune_baselines",
                 "src.evaluation.runner:fit_baselines", "src.evaluation.baselines:cosine_similarity",
                 "src.evaluation.baselines:ease", "src.models.ease:gram", "src.evaluation.baselines:als",
                 "src.models.ease:ease_weights", "src.evaluation.protocol:evaluate_methods",
                 "src.evaluation.protocol:evaluate_ranker", "src.evaluation.runner:_evaluate_newcomers",
                 "src.evaluation.reports:write_reports", "src.training.tracking:tracked_experiment"],
    "refit": ["src.training.refit:refit", "src.training.refit:every_rating",
              "src.training.ledger:check_published_rows", "src.training.train:train", "src.training.train:fit_ncf",
              "src.models.ease:fit_item_weight_sets", "src.models.ease:ease_weights",
              "src.models.ease:keep_top_neighbours", "keras:Model.save", "src.store.artifacts:save_embeddings",
              "src.store.artifacts:save_item_weights", "src.store.artifacts:write_tables",
              "src.data.files:save_content_features", "src.store.registry:publish_model",
              "src.training.tracking:tracked_experiment"],
}
CONTEXTS = {"publish_model", "atomic_directory", "tracked_experiment"}
# Modules a stage imports (so their functions can be wrapped before the stage runs); TensorFlow only where used.
STAGE_IMPORTS = {
    "ingest": ["src.data.ingestion"],
    "process": ["src.data.processing"],
    "train": ["src.training.train", "src.tuning.hybrid"],
    "evaluate": ["src.evaluation.runner"],
    "refit": ["src.training.refit", "src.training.train"],
}


class Probe:
    """Sections, stack samples and RSS of this process while a stage runs."""

    def __init__(self, sample_seconds: float = 0.05, rss_every: int = 4) -> None:
        import psutil

        self.process = psutil.Process()
        self.started = time.perf_counter()
        self.stack: list[str] = []
        self.sections: dict[str, dict[str, Any]] = {}
        self.open_peaks: list[int] = []  # peak RSS seen while each open section runs
        # Each sample weighs the seconds since the previous one: a call that holds the GIL (some LAPACK and numpy
        # routines do) delays the sampler, and the sample taken after it then stands for that whole time.
        self.inclusive: Counter[str] = Counter()  # seconds
        self.leaves: Counter[str] = Counter()
        self.pairs: Counter[str] = Counter()
        self.samples = 0
        self.sampled_seconds = 0.0
        self._last_sample = time.perf_counter()
        self.rss_timeline: list[tuple[float, int]] = []
        self.peak_rss = 0
        self.fits: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._main = threading.main_thread().ident
        self._interval, self._rss_every = sample_seconds, rss_every
        self._sampler = threading.Thread(target=self._sample_loop, name="stage-probe", daemon=True)

    # ---------------------------------------------------------------------------------------------- sampling
    def start(self) -> None:
        self._sampler.start()

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join(timeout=5)
        self._record_rss()

    def _record_rss(self) -> int:
        rss = self.process.memory_info().rss
        with self._lock:
            self.peak_rss = max(self.peak_rss, rss)
            self.open_peaks = [max(peak, rss) for peak in self.open_peaks]
            self.rss_timeline.append((round(time.perf_counter() - self.started, 2), rss))
        return rss

    def _sample_loop(self) -> None:
        tick = 0
        while not self._stop.wait(self._interval):
            tick += 1
            if tick % self._rss_every == 0:
                self._record_rss()
            frame = sys._current_frames().get(self._main)
            if frame is not None:
                self._take(frame)

    def _take(self, frame: Any) -> None:
        now = time.perf_counter()
        weight, self._last_sample = now - self._last_sample, now
        names: list[str] = []
        leaf = None
        while frame is not None:
            code = frame.f_code
            if leaf is None:
                leaf = _frame_name(code.co_filename, code.co_name)
            if code.co_filename.startswith(PROJECT_DIRS):
                names.append(_frame_name(code.co_filename, code.co_name))
            frame = frame.f_back
        self.samples += 1
        self.sampled_seconds += weight
        for name in set(names):
            self.inclusive[name] += weight
        if leaf:
            self.leaves[leaf] += weight
            if names and names[0] != leaf:
                self.pairs[f"{names[0]} -> {leaf}"] += weight

    # ---------------------------------------------------------------------------------------------- sections
    @contextlib.contextmanager
    def section(self, name: str):
        path = " > ".join([*self.stack, name])
        self.stack.append(name)
        rss = self._record_rss()
        with self._lock:
            self.open_peaks.append(rss)
        begun = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - begun
            end_rss = self._record_rss()
            with self._lock:
                peak = self.open_peaks.pop()
            self.stack.pop()
            entry = self.sections.setdefault(path, {"seconds": 0.0, "calls": 0, "peak_rss_bytes": 0,
                                                     "first_start": round(begun - self.started, 2),
                                                     "rss_before_bytes": rss})
            entry["seconds"] += seconds
            entry["calls"] += 1
            entry["peak_rss_bytes"] = max(entry["peak_rss_bytes"], peak)
            entry["rss_after_bytes"] = end_rss

    def wrap(self, function: Any, name: str) -> Any:
        if getattr(function, "__stage_probe__", False):
            return function
        context = name in CONTEXTS

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if context:  # the call only builds the context manager: time its entry and exit instead
                return _TimedContext(self, function(*args, **kwargs), name)
            with self.section(name):
                return function(*args, **kwargs)

        timed.__stage_probe__ = True  # type: ignore[attr-defined]
        return timed

    def report(self) -> dict[str, Any]:
        total = max(self.sampled_seconds, 1e-9)
        sections = {path: {**entry, "seconds": round(entry["seconds"], 3)} for path, entry in self.sections.items()}
        _add_rest(sections)
        return {
            "sections": sections,
            "samples": {"count": self.samples, "interval_seconds": self._interval,
                        "seconds": round(self.sampled_seconds, 2),
                        "project_functions": _shares(self.inclusive, total, 40),
                        "innermost_calls": _shares(self.leaves, total, 25),
                        "project_function_to_innermost_call": _shares(self.pairs, total, 25)},
            "rss_timeline": _thin(self.rss_timeline, 400),
            "probe_peak_rss_bytes": self.peak_rss,
            "ncf_fits": self.fits,
            "logs": self.logs,
        }


class _TimedContext:
    """A context manager returned by a wrapped function: its entry and its exit become sections of their own."""

    def __init__(self, probe: Probe, inner: Any, name: str) -> None:
        self.probe, self.inner, self.name = probe, inner, name

    def __enter__(self) -> Any:
        with self.probe.section(f"{self.name}: enter"):
            return self.inner.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        with self.probe.section(f"{self.name}: exit (publish, close)"):
            return self.inner.__exit__(*exc)


def _frame_name(filename: str, function: str) -> str:
    for marker in ("site-packages" + os.sep, str(PROJECT_ROOT) + os.sep):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{function}"


def _shares(counter: Counter[str], total: float, top: int) -> list[dict[str, Any]]:
    return [{"name": name, "share": round(seconds / total, 4), "seconds": round(seconds, 2)}
            for name, seconds in counter.most_common(top)]


def _thin(points: list[tuple[float, int]], keep: int) -> list[tuple[float, int]]:
    step = max(1, len(points) // keep)
    return points[::step] + ([points[-1]] if points and (len(points) - 1) % step else [])


def _add_rest(sections: dict[str, dict[str, Any]]) -> None:
    """For every section with children, the seconds none of its children covers, as "<parent> > (rest)"."""
    children: dict[str, float] = defaultdict(float)
    for path, entry in sections.items():
        if " > " in path:
            children[path.rsplit(" > ", 1)[0]] += entry["seconds"]
    for parent, covered in children.items():
        if parent in sections:
            rest = sections[parent]["seconds"] - covered
            if rest > 0.05:
                sections[f"{parent} > (rest)"] = {"seconds": round(rest, 3), "calls": 0}


def resolve(target: str) -> tuple[Any, str, Any] | None:
    """(owner, attribute, function) of "module:Qualified.name", or None when the code has no such thing."""
    import importlib

    module_name, _, qualified = target.partition(":")
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError:
        return None
    *parents, attribute = qualified.split(".")
    for parent in parents:
        owner = getattr(owner, parent, None)
        if owner is None:
            return None
    function = getattr(owner, attribute, None)
    return None if function is None else (owner, attribute, function)


def install(probe: Probe, targets: list[str]) -> list[str]:
    """Wrap every target where it is defined and wherever a loaded project module imported it by name."""
    installed = []
    project_modules = [module for name, module in list(sys.modules.items())
                       if module is not None and name.split(".")[0] in ("src", "pipeline", "utils", "bench", "config")]
    for target in targets:
        found = resolve(target)
        if found is None:
            continue
        owner, attribute, function = found
        if getattr(function, "__stage_probe__", False):
            continue
        name = target.split(":", 1)[1]
        if target.endswith("fit_ncf"):
            wrapped = _wrap_fit_ncf(probe, function)
        else:
            wrapped = probe.wrap(function, name)
        setattr(owner, attribute, wrapped)
        if inspect.isclass(owner):
            installed.append(target)
            continue
        for module in project_modules:
            for key, value in list(vars(module).items()):
                if value is function:
                    setattr(module, key, wrapped)
        installed.append(target)
    return installed


def _wrap_fit_ncf(probe: Probe, function: Any) -> Any:
    """fit_ncf timed as a section, with its data's size and an epoch timer added to its callbacks."""
    import keras
    import numpy as np

    signature = inspect.signature(function)

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.begun = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self.begun)

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        targets = bound.arguments["train_targets"]
        timer = EpochTimer()
        bound.arguments["callbacks"] = [*(bound.arguments.get("callbacks") or []), timer]
        with probe.section("fit_ncf"):
            result = function(*bound.args, **bound.kwargs)
        users = int(np.count_nonzero(np.diff(targets.indptr)))
        epochs = len(timer.seconds)
        seconds = float(result.seconds)
        later = timer.seconds[1:] or timer.seconds
        probe.fits.append({
            "section": " > ".join([*probe.stack, "fit_ncf"]), "users": users, "interactions": int(targets.nnz),
            "anime": int(targets.shape[1]), "epochs": epochs, "seconds": round(seconds, 2),
            "epoch_seconds": [round(value, 2) for value in timer.seconds],
            "users_per_second": round(users * epochs / seconds, 1),
            "interactions_per_second": round(targets.nnz * epochs / seconds),
            "users_per_second_after_first_epoch": round(users * len(later) / sum(later), 1),
            "interactions_per_second_after_first_epoch": round(targets.nnz * len(later) / sum(later)),
        })
        return result

    timed.__stage_probe__ = True  # type: ignore[attr-defined]
    return timed


class _LogKeeper(logging.Handler):
    def __init__(self, probe: Probe) -> None:
        super().__init__(logging.INFO)
        self.probe = probe

    def emit(self, record: logging.LogRecord) -> None:
        self.probe.logs.append({"seconds": round(time.perf_counter() - self.probe.started, 2),
                                "logger": record.name, "message": record.getMessage()[:500]})


def run_stage(stage: str, pipeline_args: list[str], report_path: Path) -> int:
    started_imports = time.perf_counter()
    import pipeline.training_pipeline as training_pipeline  # noqa: PLC0415 (after the clock starts)

    for module in STAGE_IMPORTS[stage]:
        __import__(module)
    imports_seconds = time.perf_counter() - started_imports
    probe = Probe()
    installed = install(probe, SECTIONS[stage])
    handler = _LogKeeper(probe)
    for name in ("anime", "src", "pipeline"):
        logging.getLogger(name).addHandler(handler)
    sys.argv = ["training_pipeline.py", "--stage", stage, *pipeline_args]
    status, error = 0, None
    probe.start()
    begun, begun_epoch = time.perf_counter(), time.time()
    try:
        with probe.section(f"{stage} stage"):
            training_pipeline.main()
    except SystemExit as exit_:  # argparse or the CLI's own exits
        status = int(exit_.code or 0)
    except BaseException as failure:  # noqa: BLE001 (reported, then re-raised as a failed status)
        status, error = 1, f"{type(failure).__name__}: {failure}"
        import traceback

        traceback.print_exc()
    stage_seconds = time.perf_counter() - begun
    start_up_seconds = begun_epoch - PROCESS_STARTED
    probe.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {"stage": stage, "status": status, "error": error, "args": pipeline_args,
              "start_up_seconds": round(start_up_seconds, 2),
              "imports_seconds": round(imports_seconds, 2), "stage_seconds": round(stage_seconds, 2),
              "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
              "ru_maxrss_bytes": usage.ru_maxrss * 1024, "sections_installed": installed, **probe.report()}
    report_path.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:
        rest = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, choices=sorted(SECTIONS))
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)
    return run_stage(args.stage, rest, args.report)


if __name__ == "__main__":
    sys.exit(main())
