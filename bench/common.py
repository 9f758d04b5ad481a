"""Small helpers every benchmark shares: medians over repeated runs, machine description, JSON output.
(Starting and stopping the server: bench/servers.py.)"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from config.paths_config import PROJECT_ROOT

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


def save_json(path: Path, content: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")
    return path

