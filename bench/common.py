"""Small helpers every benchmark shares: medians over repeated runs, machine description, JSON output,
stopping a server we started."""
from __future__ import annotations

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def median_of(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, float]:
    """Median of each numeric ``key`` over the runs that have it."""
    medians = {}
    for key in keys:
        values = [run[key] for run in runs if isinstance(run.get(key), (int, float))]
        if values:
            medians[key] = statistics.median(values)
    return medians


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, memory, load at the time, library versions."""
    import numpy as np
    import psutil

    return {
        "cpu_count": os.cpu_count(), "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform(),
    }


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound then released; the tiny race is fine for a benchmark)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def save_json(path: Path, content: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")
    return path


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """End a server started with ``start_new_session=True``: TERM to its process group (graceful), KILL if it hangs."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
