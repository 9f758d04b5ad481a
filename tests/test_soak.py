"""The short soak: bench/soak.py for 10 seconds against the production stack (deploy/serve.py: nginx in front of
gunicorn) on 127.0.0.1, on the tiny artifacts.

`make bench` runs the same module (`python -m bench.soak`) for 2 minutes on the real model; this is the version
`make test` can afford.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


def test_ten_second_soak_has_no_5xx_no_dropped_connection_and_flat_memory(tiny_artifacts_root: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bench.soak", "--seconds", "10",
                             "--artifacts", str(tiny_artifacts_root)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.stdout, result.stderr[-3000:]
    report = json.loads(result.stdout)
    print(result.stderr.strip().splitlines()[-1])  # the one-line summary, shown with -s
    assert report["requests"] > 100 and report["valid_requests"] and report["invalid_requests"]
    assert report["server_errors_5xx"] == 0, report["statuses"]
    assert report["connection_errors"] == 0, report["connection_error_kinds"]
    assert report["unexpected_statuses"] == 0, report["unexpected_examples"]
    assert report["server_log_errors"] == 0, report["server_log_error_lines"]
    # the only connections the server may close unannounced: after a 413 whose body it would not drain
    assert set(report["reconnects_after"]) <= {"oversized body"}, report["reconnects_after"]
    # 10 s is short, but with worker recycling off the tiny model's workers stay within a few per cent; nginx too
    assert report["stack"] == "full"
    assert report["memory"]["growth"] is not None and report["memory"]["growth"] < 0.10, report["memory"]
    assert report["memory"]["nginx"]["growth"] < 0.10, report["memory"]
    assert report["passed"] and result.returncode == 0, report["problems"]
