"""Training beyond one machine: the NCF's training step under tf.distribute.MultiWorkerMirroredStrategy.

Two local worker processes (TF_CONFIG naming two localhost ports, as two pods of a Kubernetes Job would name
each other) train on the embedded sample with a small config. Each takes its half of every batch of users and
the gradients are all-reduced, so both must end with the same weights, and those must be the single-process
fit's up to rounding: the multi-worker step is the same computation, split.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.servers import free_port
from config import paths_config
from tests.conftest import small_training_config

pytestmark = pytest.mark.integration
WORKERS = 2


@pytest.fixture(scope="module")
def sample_processed(tmp_path_factory: pytest.TempPathFactory, base_config: dict) -> tuple[Path, dict]:
    """The embedded sample processed as the pipeline does (users with >= 400 ratings), and the small config."""
    from src.data.ingestion import ingest
    from src.data.processing import process

    root = tmp_path_factory.mktemp("distributed")
    config = small_training_config(base_config)
    ingest(config, destination=paths_config.raw_dir(root))
    process(config, raw_dir=paths_config.raw_dir(root), destination=paths_config.processed_dir(root))
    return paths_config.processed_dir(root), config


def start_workers(config_path: Path, processed: Path, folder: Path) -> list[subprocess.Popen]:
    ports = [free_port() for _ in range(WORKERS)]
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    for index in range(WORKERS):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        command = [sys.executable, "-m", "tests.distributed_worker", "--config", str(config_path),
                   "--processed", str(processed), "--output", str(folder / f"worker{index}.npz")]
        with open(folder / f"worker{index}.log", "wb") as log:
            processes.append(subprocess.Popen(command, cwd=paths_config.PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                                              stderr=log))
    return processes


def test_two_workers_train_as_one_process(sample_processed, tmp_path):
    processed, config = sample_processed
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    started = time.perf_counter()
    processes = start_workers(config_path, processed, tmp_path)
    reports = []
    try:
        for index, process in enumerate(processes):
            stdout, _ = process.communicate(timeout=150)
            log = (tmp_path / f"worker{index}.log").read_text(errors="replace")[-3000:]
            assert process.returncode == 0, f"worker {index} failed:\n{log}"
            reports.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    seconds = time.perf_counter() - started
    assert [report["replicas"] for report in reports] == [WORKERS] * WORKERS
    assert sorted(report["task"] for report in reports) == list(range(WORKERS))
    history = reports[0]["history"]
    assert len(history["loss"]) == config["training"]["epochs"] and history["loss"][-1] < history["loss"][0]
    assert history["val_loss"][-1] < history["val_loss"][0]
    # Mirrored: every worker holds the same weights after every step.
    first, second = (np.load(tmp_path / f"worker{index}.npz") for index in range(WORKERS))
    for name in ("users", "anime", "bias"):
        np.testing.assert_array_equal(first[name], second[name])
    assert reports[1]["history"] == history

    # The same computation as the single-process fit, split across the workers.
    from src.training.train import fit_ncf, prepare_training_data

    data = prepare_training_data(config, processed)
    single = fit_ncf(config, data.train_targets, data.validation_targets)
    for name, value in zip(("users", "anime", "bias"), single.embeddings(), strict=True):
        np.testing.assert_allclose(first[name], value, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(history["loss"], single.history["loss"], rtol=1e-5)
    print(f"two workers: {seconds:.1f} s wall (TensorFlow start-up and the cluster handshake included); "
          f"each worker trained in {max(report['seconds'] for report in reports):.1f} s")
