"""Every benchmark of issue 6 in one go: one JSON file of results and a short readable summary.

    python -m bench.run             # make bench: 3 runs of each, processing at 20 M rows (about 7 minutes)
    python -m bench.run --quick     # make bench-quick: fewer and shorter runs, 2 M rows (under 3 minutes)
    python -m bench.run --rows 109224747 --only processing --repeats 1 --workdir /tmp   # the full-size file

Run from the repository root, as every benchmark here (``python -m bench.<name>``).

Sections: serving in process (bench/serving_latency.py), serving over HTTP and start-up (bench/http_load.py),
processing on a synthetic animelist.csv (bench/processing.py), training (bench/training.py). Every figure is
the median over its runs; the machine's core count and load average are recorded with them, as figures on a
shared machine move with what else runs. Uses the trained model in the artifacts root (ANIME_ARTIFACTS_DIR or
artifacts/) when there is one; otherwise trains one quickly on the embedded sample into a temporary root.
Writes bench/results/bench.json and bench/results/summary.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# As under gunicorn (gunicorn.conf.py): one BLAS thread per process, set before numpy is imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from bench import http_load, processing, serving_latency, training  # noqa: E402  (after the BLAS settings)
from bench.common import PROJECT_ROOT, RESULTS_DIR, machine, now, save_json  # noqa: E402
from bench.summary import summary_markdown  # noqa: E402
from config.paths_config import artifacts_root, model_dir  # noqa: E402

SECTIONS = ("serving", "http", "startup", "processing", "training")
FULL = {"requests": 1000, "warmup": 100, "serving_repeats": 3, "http_seconds": 30, "http_connections": 32,
        "http_repeats": 3, "startup_repeats": 5, "rows": 20_000_000, "processing_repeats": 3,
        "min_user_ratings": None, "training_min_user_ratings": 50, "epochs": 6, "default_model": True,
        "training_overrides": {}}
QUICK = {**FULL, "serving_repeats": 1, "http_seconds": 8, "http_repeats": 2, "startup_repeats": 0,
         "rows": 2_000_000, "processing_repeats": 2, "epochs": 2, "default_model": False}
# tests/test_bench.py: every code path, in seconds; the figures mean nothing.
SMOKE = {**QUICK, "requests": 20, "warmup": 5, "http_seconds": 2, "http_connections": 4, "http_repeats": 1,
         "startup_repeats": 1, "rows": 20_000, "processing_repeats": 1, "min_user_ratings": 10,
         "training_min_user_ratings": 400, "epochs": 2, "default_model": True,
         "training_overrides": {"model.embedding_size": 8, "model.jit_compile": False, "training.epochs": 1,
                                "training.batch_size": 4096}}


def ensure_model(scratch: Path) -> tuple[Path, str]:
    """An artifacts root holding a trained model: the configured one, or a quick one trained here."""
    root = artifacts_root()
    if (model_dir(root) / "manifest.json").is_file():
        return root, f"existing model in {model_dir(root)}"
    root = scratch / "artifacts"
    env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cli = [sys.executable, "-m", "pipeline.training_pipeline"]
    print(f"no trained model in {model_dir()}: training one epoch on the embedded sample into {root}", flush=True)
    for stage in (["--stage", "ingest"], ["--stage", "process", "--min-user-ratings", "50"],
                  ["--stage", "train", "--epochs", "1"]):
        subprocess.run([*cli, *stage], env=env, check=True, timeout=900, cwd=PROJECT_ROOT,
                       stdout=subprocess.DEVNULL)
    return root, "trained by the benchmark: embedded sample, users with >= 50 ratings, 1 epoch"


def run_sections(settings: dict, sections: list[str], root: Path, workdir: Path | None) -> dict:
    results: dict = {}

    def timed(name: str, step) -> None:
        if name not in sections:
            return
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        started = time.perf_counter()
        results[name] = step()
        results[name]["bench_seconds"] = round(time.perf_counter() - started, 1)
        results[name]["load_average_after"] = [round(value, 2) for value in os.getloadavg()]

    timed("serving", lambda: serving_latency.run(model_dir(root), settings["requests"], settings["warmup"], 42,
                                                  settings["serving_repeats"]))
    timed("http", lambda: http_load.measure(root, settings["http_seconds"], settings["http_connections"],
                                            settings["http_repeats"]))
    if settings["startup_repeats"]:
        timed("startup", lambda: http_load.measure_startup(root, settings["startup_repeats"]))
    timed("processing", lambda: processing.measure(settings["rows"], settings["processing_repeats"],
                                                   min_user_ratings=settings["min_user_ratings"], workdir=workdir))
    timed("training", lambda: training.measure(settings["epochs"], settings["training_min_user_ratings"],
                                               default_model=settings["default_model"],
                                               overrides=settings["training_overrides"]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short version (make bench-quick)")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tests/test_bench.py
    parser.add_argument("--rows", type=int, help="rows of the synthetic animelist.csv (default 20 M, quick 2 M)")
    parser.add_argument("--repeats", type=int, help="runs of every section (default 3, quick 1-2)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    parser.add_argument("--workdir", type=Path, help="where the synthetic file goes (default: the system temp dir)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    settings = dict(SMOKE if args.smoke else QUICK if args.quick else FULL)
    if args.rows:
        settings["rows"] = args.rows
    if args.repeats:
        for key in ("serving_repeats", "http_repeats", "processing_repeats"):
            settings[key] = args.repeats
        settings["startup_repeats"] = max(args.repeats, settings["startup_repeats"])
    sections = args.only or list(SECTIONS)
    started = time.perf_counter()
    report = {"command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
              "mode": "smoke" if args.smoke else "quick" if args.quick else "full", "settings": settings,
              "started_at": now(), "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        root, origin = ensure_model(Path(scratch)) if set(sections) & {"serving", "http", "startup"} else (None, None)
        report["model"] = origin
        report["results"] = run_sections(settings, sections, root, args.workdir)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    summary = summary_markdown(report)
    json_path = save_json(args.output_dir / "bench.json", report)
    (args.output_dir / "summary.md").write_text(summary, encoding="utf-8")
    print(summary)
    print(f"wrote {json_path} and {args.output_dir / 'summary.md'} in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
