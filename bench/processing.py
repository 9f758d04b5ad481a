"""Processing at full size: the project's own processing stage on a synthetic 2020 ``animelist.csv``.

    python -m bench.processing --rows 20000000 --repeats 3       # generate in a temp folder, process 3 times
    python -m bench.processing --raw-dir /tmp/raw --repeats 1    # an existing raw folder (e.g. the 109 M file)

Run from the repository root. Each run is a fresh child process (``--child``), so its peak RSS (``ru_maxrss``)
is that of the stage alone and nothing is cached between runs but the operating system's page cache.
rows/s = rows in the file / seconds of ``process()``; the child's start-up (imports) is reported apart.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PROJECT_ROOT, median_of, save_json


def child(raw_dir: Path, destination: Path, min_user_ratings: int | None) -> dict:
    """Run processing once in this process; return its timing, peak memory and summary."""
    imported = time.perf_counter()
    from config.loader import load_config
    from src.data.processing import process

    config = load_config()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    summary = process(config, raw_dir=raw_dir, destination=destination, min_user_ratings=min_user_ratings)
    seconds = time.perf_counter() - started
    cpu_seconds = _cpu_seconds() - cpu_before
    rows = summary["rows_read"] + summary["rows_skipped"]
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds),
            "import_seconds": round(started - imported, 3),
            # CPU time (all threads): unlike wall time it hardly moves when other jobs share the machine
            "cpu_seconds": round(cpu_seconds, 3),
            # Linux reports ru_maxrss in KiB
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "users_kept": summary["users"], "anime": summary["anime"], "interactions": summary["interactions"],
            "min_user_ratings": summary["min_user_ratings"]}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_once(raw_dir: Path, destination: Path, min_user_ratings: int | None = None, timeout: float = 900) -> dict:
    command = [sys.executable, "-m", "bench.processing", "--child", "--raw-dir", str(raw_dir.resolve()),
               "--destination", str(destination.resolve())]
    if min_user_ratings is not None:
        command += ["--min-user-ratings", str(min_user_ratings)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"processing failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_seconds"] = round(time.perf_counter() - started, 3)
    return result


def measure(rows: int | None, repeats: int, seed: int = 42, raw_dir: Path | None = None,
            min_user_ratings: int | None = None, workdir: Path | None = None) -> dict:
    """Generate (unless ``raw_dir`` is given), process ``repeats`` times, delete what was written."""
    from bench.synthetic_animelist import make_raw_folder

    scratch = Path(tempfile.mkdtemp(prefix="bench-processing-", dir=workdir))
    try:
        generated = None
        if raw_dir is None:
            raw_dir = scratch / "raw"
            generated = make_raw_folder(raw_dir, rows, seed=seed)
        runs = []
        for repeat in range(repeats):
            runs.append(run_once(raw_dir, scratch / f"processed-{repeat}", min_user_ratings))
            shutil.rmtree(scratch / f"processed-{repeat}", ignore_errors=True)
        return {"generated": generated, "file_bytes": (raw_dir / "animelist.csv").stat().st_size,
                "runs": runs, "median": median_of(runs, ["seconds", "rows_per_second", "cpu_seconds",
                                                           "peak_rss_bytes", "process_wall_seconds"])}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--raw-dir", type=Path, help="process this raw folder instead of generating one")
    parser.add_argument("--min-user-ratings", type=int, help="default: processing.min_user_ratings of the config")
    parser.add_argument("--workdir", type=Path, help="where the temporary files go (default: the system temp dir)")
    parser.add_argument("--output", type=Path, help="also write the result here as JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--destination", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.raw_dir, args.destination, args.min_user_ratings)))
        return 0
    result = measure(None if args.raw_dir else args.rows, args.repeats, args.seed, args.raw_dir,
                     args.min_user_ratings, args.workdir)
    print(json.dumps(result, indent=2))
    if args.output:
        save_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
