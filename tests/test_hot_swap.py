"""A new model into a running gunicorn under keep-alive load, with no failed request; and a broken one refused.

Real gunicorn (gunicorn.conf.py, 2 workers of 4 threads) on 127.0.0.1, 32 keep-alive connections, a real
publish and a real SIGHUP to the master (bench/model_swap.py drives and checks the load). Model B is model A
with every title marked " [B]", so each answer shows which model its items came from. The figures of each run
are written to tests/output/model_swap-*.json.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.model_swap import MARKER, SwapReport, point_at_broken_copy, problems, publish_copy, run_swap
from bench.servers import gunicorn, request
from config import paths_config
from config.loader import load_config
from src.store.registry import current_version
from tests.conftest import small_training_config
from tests.serving_fixtures import write_tiny_artifacts

pytestmark = pytest.mark.integration

OUTPUT = Path(__file__).parent / "output"
SERVER = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", "MODEL_WATCH_SECONDS": "0"}
CONNECTIONS = 32


@pytest.fixture
def tiny_source(tmp_path: Path) -> Path:
    return write_tiny_artifacts(tmp_path / "source")


@pytest.fixture
def served_root(tmp_path: Path, tiny_source: Path) -> Path:
    """An artifacts root whose current model is version A (the tiny set, published)."""
    root = tmp_path / "artifacts"
    publish_copy(tiny_source, paths_config.model_dir(root), load_config(), note="A")
    return root


def record(name: str, report: SwapReport) -> dict:
    figures = report.figures()
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / f"model_swap-{name}.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"\n{name}: {figures['requests']} requests, {figures['errors']} errors, {figures['server_errors_5xx']} 5xx, "
          f"{figures['reconnects']} reconnects, answers {figures['answers_by_version']}, first new answer "
          f"{figures['first_new_answer_after_hup_s']} s and last old answer {figures['last_old_answer_after_hup_s']} s "
          "after the HUP")
    return figures


def test_hup_swaps_the_model_under_keep_alive_load_without_a_failed_request(served_root, tiny_source, tmp_path):
    config, pointer = load_config(), paths_config.model_dir(served_root)
    with gunicorn(served_root, tmp_path / "gunicorn.log", ready_path="/readyz", env=SERVER) as server:
        report = run_swap(served_root, server.port, server.process.pid,
                          lambda: publish_copy(tiny_source, pointer, config, MARKER, note="B"), CONNECTIONS,
                          before=1.5, after=3.0)
        log = server.log()
    figures = record("new", report)
    assert figures["requests"] > 500
    assert problems(figures, broken=False) == []
    assert figures["errors"] == 0 and figures["server_errors_5xx"] == 0 and figures["mixed_answers"] == 0
    assert set(figures["answers_by_version"]) == {report.old_version, report.new_version}
    # once the old workers have finished, only the new model answers
    late = [a.version for a in report.tally.answers if a.received > report.hup_at + 2.5]
    assert late and set(late) == {report.new_version}
    assert figures["readyz_after"]["version"] == report.new_version == current_version(pointer)
    assert "Traceback" not in log and "[ERROR]" not in log


def test_a_broken_new_model_is_refused_and_the_old_one_keeps_serving(served_root, tiny_source, tmp_path):
    pointer = paths_config.model_dir(served_root)
    with gunicorn(served_root, tmp_path / "gunicorn.log", ready_path="/readyz", env=SERVER) as server:
        report = run_swap(served_root, server.port, server.process.pid,
                          lambda: point_at_broken_copy(tiny_source, pointer), CONNECTIONS, before=1.5, after=3.0,
                          marked=False)
        log = server.log()
    figures = record("broken", report)
    assert problems(figures, broken=True) == []
    assert figures["errors"] == 0 and figures["server_errors_5xx"] == 0
    assert set(figures["answers_by_version"]) == {report.old_version}
    refused = figures["readyz_after"]["refused"]
    assert figures["readyz_after"]["status_code"] == 200 and report.new_version in refused
    assert "do not match" in refused and f"version {report.old_version} still serves" in refused
    assert "kept serving model version" in log


def test_the_server_takes_up_a_new_model_by_itself_when_it_watches_the_pointer(served_root, tiny_source, tmp_path):
    config, pointer = load_config(), paths_config.model_dir(served_root)
    env = {**SERVER, "MODEL_WATCH_SECONDS": "0.5"}
    with gunicorn(served_root, tmp_path / "gunicorn.log", ready_path="/readyz", env=env) as server:
        first = json.loads(server.request("GET", "/readyz")[2])["version"]
        second = publish_copy(tiny_source, pointer, config, MARKER, note="B")
        deadline = time.monotonic() + 20
        while (seen := server.request("GET", "/api/anime/search?q=bebop")[1]["X-Model-Version"]) != second:
            assert time.monotonic() < deadline, f"still {seen} 20 s after publishing {second}"
            time.sleep(0.2)
        assert first != second
        time.sleep(2)  # no reload loop: the pointer has not changed since
        assert server.log().count("Handling signal: hup") == 1


def test_retraining_then_hup_changes_the_version_of_the_next_responses(trained_root, tmp_path, base_config):
    """The `make serve`, retrain, `kill -HUP <master pid>` routine of DEPLOYMENT.md, with traffic throughout."""
    root = tmp_path / "artifacts"
    shutil.copytree(trained_root, root, symlinks=True)
    config = small_training_config(base_config)
    config["training"]["epochs"] = 1
    config["evaluation"]["holdout_fraction"] = 0  # the train stage then publishes the served model itself
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(config), encoding="utf-8")  # YAML is a superset of JSON

    def retrain() -> str:
        env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("COMET_API_KEY", None)
        result = subprocess.run([sys.executable, "-m", "pipeline.training_pipeline", "--stage", "train",
                                 "--config", str(config_path)], cwd=paths_config.PROJECT_ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return current_version(paths_config.model_dir(root))

    with gunicorn(root, tmp_path / "gunicorn.log", ready_path="/readyz", env=SERVER) as server:
        before = server.request("GET", "/readyz")
        report = run_swap(root, server.port, server.process.pid, retrain, connections=4, before=0.5, after=10.0,
                          marked=False)
        # the old workers answer until the new ones have loaded the model: on a busy machine, beyond the 3 s
        deadline = time.monotonic() + 60
        while (answer := request(server.port, "GET", "/api/anime/search?q=naruto"))[1].get(
                "X-Model-Version") != report.new_version and time.monotonic() < deadline:
            time.sleep(0.2)
        status, headers, _ = answer
    figures = record("retrain", report)
    assert json.loads(before[2])["version"] == report.old_version != report.new_version
    assert status == 200 and headers["X-Model-Version"] == report.new_version
    assert figures["errors"] == 0 and figures["server_errors_5xx"] == 0
    assert report.new_version in figures["answers_by_version"]


def test_a_hup_with_an_unchanged_model_keeps_serving_it(served_root, tmp_path):
    with gunicorn(served_root, tmp_path / "gunicorn.log", ready_path="/readyz", env=SERVER) as server:
        version = json.loads(server.request("GET", "/readyz")[2])["version"]
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "nothing to reload" not in server.log():
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.1)
        assert server.request("GET", "/readyz")[1]["X-Model-Version"] == version
