"""The whole training pipeline for real: artifacts, comet archive, interruption, and the CLI's errors."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from config import paths_config
from src.store.artifacts import load_model_artifacts
from tests.conftest import run_pipeline, small_training_config
from tests.raw_data import write_anime_2020, write_ratings

pytestmark = pytest.mark.integration


def test_training_publishes_a_complete_consistent_artifact_set(trained_root):
    model_dir = paths_config.model_dir(trained_root)
    artifacts = load_model_artifacts(model_dir)
    summary = json.loads((paths_config.processed_dir(trained_root) / "summary.json").read_text())
    # users of the sample with >= 400 rated anime, but the evaluation's newcomers, held out of this model entirely
    assert summary["newcomers"] > 0 and len(artifacts.user_ids) == 150 - summary["newcomers"]
    for matrix in (artifacts.user_embeddings, artifacts.anime_embeddings):
        np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)
    manifest = artifacts.manifest
    assert manifest["counts"]["users"] == len(artifacts.user_ids)
    assert manifest["data"]["source"]["origin"] == "embedded sample"
    assert 1 <= manifest["training"]["epochs_run"] <= 3 and np.isfinite(manifest["training"]["best_val_loss"])
    history = json.loads((model_dir / "history.json").read_text())  # val_loss with the epochs it was measured after
    assert len(history["val_epochs"]) == len(history["val_loss"]) >= 1
    assert history["val_epochs"][-1] <= manifest["training"]["epochs_run"] == len(history["loss"])
    assert {"tensorflow", "keras", "numpy"} <= set(manifest["versions"])
    model = keras.saving.load_model(model_dir / "model.keras")
    # the saved network's logits over the catalogue are the published embeddings' T * cosine + anime bias
    logits = model.predict(np.array([0, 1]), verbose=0)
    assert logits.shape == (2, len(artifacts.anime_ids))
    expected = (float(manifest["model"]["temperature"]) * artifacts.user_embeddings[:2] @ artifacts.anime_embeddings.T
                + artifacts.anime_bias)
    np.testing.assert_allclose(logits, expected, atol=1e-3)


def test_training_writes_a_real_comet_offline_archive(trained_root):
    manifest = json.loads((paths_config.model_dir(trained_root) / "manifest.json").read_text())
    archive = Path(manifest["comet"]["offline_archive"])
    assert archive.is_file() and archive.parent == paths_config.comet_dir(trained_root)
    with zipfile.ZipFile(archive) as content:
        names = content.namelist()
        messages = "".join(content.read(n).decode("utf-8", "replace") for n in names if n.endswith(".json"))
    assert any(name.endswith(".json") for name in names)
    assert "val_loss" in messages and "embedding_size" in messages


def test_interrupted_training_leaves_the_previous_artifacts_usable(trained_root, tmp_path, base_config):
    root = tmp_path / "artifacts"
    shutil.copytree(trained_root, root)
    before = (paths_config.model_dir(root) / "manifest.json").read_bytes()
    config = small_training_config(base_config)
    config["training"]["epochs"] = 50
    # no held-out test set: the train stage publishes the served model itself, which the kill must not touch
    config["evaluation"]["holdout_fraction"] = 0
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, str(paths_config.PROJECT_ROOT / "pipeline" / "training_pipeline.py"),
                                "--stage", "train", "--config", str(config_path)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(root.glob(".model.tmp-*/model.keras")):  # mid-training: a checkpoint is being written
            assert process.poll() is None and time.monotonic() < deadline, "training never reached its first checkpoint"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert (paths_config.model_dir(root) / "manifest.json").read_bytes() == before
    assert (paths_config.model_dir(root) / "user_ids.json").read_bytes() == \
        (paths_config.model_dir(trained_root) / "user_ids.json").read_bytes()
    # ... and still serve: the app starts on them and recommends
    from application import create_app
    client = create_app({"TESTING": True, "ARTIFACTS_DIR": str(paths_config.model_dir(root))}).test_client()
    assert client.get("/readyz").status_code == 200
    user = json.loads((paths_config.model_dir(root) / "user_ids.json").read_text())[0]
    response = client.get(f"/api/users/{user}/recommendations?n=5")
    assert response.status_code == 200 and len(response.get_json()["recommendations"]) == 5


def cli_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_cli_reports_a_missing_folder_in_one_line(tmp_path):
    line = cli_error(run_pipeline("--raw-dir", str(tmp_path / "missing"), artifacts=tmp_path / "a"))
    assert line.startswith("error: raw data folder") and "does not exist" in line


def test_cli_reports_a_missing_column(tmp_path):
    raw = tmp_path / "raw"
    write_anime_2020(raw)
    write_ratings(raw, [(1, 1, 5)], header="user,anime_id,rating")
    line = cli_error(run_pipeline("--raw-dir", str(raw), artifacts=tmp_path / "a"))
    assert "lacks column(s) user_id" in line


def test_cli_reports_skipped_rows_and_too_many_malformed_rows(tmp_path):
    raw = tmp_path / "raw"
    write_anime_2020(raw)
    write_ratings(raw, [(1, 1, 5), ("one", 2, 5), (3, 3)])
    line = cli_error(run_pipeline("--raw-dir", str(raw), artifacts=tmp_path / "a"))
    assert "2 of 3 rows of rating.csv" in line and "malformed" in line


def test_cli_explains_when_no_user_is_left(tmp_path):
    line = cli_error(run_pipeline("--min-user-ratings", "100000", artifacts=tmp_path / "a"))
    assert "no user has at least 100000 rated anime" in line and "try --min-user-ratings" in line


def test_cli_reports_an_unwritable_artifacts_folder(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the artifacts folder should be")
    result = run_pipeline("--stage", "ingest", artifacts=blocker / "artifacts")
    line = cli_error(result)
    assert line.startswith("error:") and result.returncode == 1
    assert blocker.read_text() == "a file where the artifacts folder should be"


def test_cli_trains_from_a_local_kaggle_folder_in_2020_format(tmp_path, base_config):
    """End to end through the CLI on a 2020-format animelist.csv, with a small model."""
    raw = tmp_path / "kaggle"
    write_anime_2020(raw, count=40)
    rng = np.random.default_rng(0)
    rows = [(u, a, int(rng.integers(0, 11)), 2, 1)
            for u in range(60) for a in rng.choice(np.arange(1, 41), 25, replace=False)]
    write_ratings(raw, rows, name="animelist.csv", header="user_id,anime_id,rating,watching_status,watched_episodes")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(small_training_config(base_config)))
    result = run_pipeline("--raw-dir", str(raw), "--min-user-ratings", "10", "--epochs", "1",
                          "--config", str(config_path), artifacts=tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr[-2000:]
    artifacts = load_model_artifacts(tmp_path / "artifacts" / "model")
    assert artifacts.manifest["data"]["ratings_format"] == "animelist2020"
    assert artifacts.manifest["training"]["epochs_run"] == 1
