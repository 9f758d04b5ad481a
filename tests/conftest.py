"""Shared fixtures: the project config made small and quiet, raw-data folders, and one real trained model."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config import paths_config
from config.loader import load_config

# Fixture modules shared by many test files, registered once here rather than imported by name.
pytest_plugins = ["tests.serving_fixtures", "tests.log_checks"]

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = paths_config.SAMPLE_DATA_DIR


@pytest.fixture(scope="session")
def base_config() -> dict:
    return load_config()


def small_training_config(config: dict) -> dict:
    """The real config with a small, fast model and small searches: real training and tuning, just less of it."""
    config = copy.deepcopy(config)
    config["model"].update(embedding_size=16, jit_compile=False)  # XLA compile time dominates tiny runs
    config["training"].update(epochs=3, verbose=0)
    config["hybrid"]["item_item"].update(values=["any"], regularisation=[200], neighbours=[None, 50])
    config["hybrid"].update(weights=[0.5, 1.0], similar_users=[20])
    config["evaluation"]["baselines"] = {"item_knn": {"values": ["any"], "shrink": [0], "neighbours": [50]},
                                         "als": {"values": ["any"], "factors": [16], "regularization": [10],
                                                 "alpha": [5], "iterations": [5]}}
    return config


@pytest.fixture
def config(base_config: dict) -> dict:
    return small_training_config(base_config)


@pytest.fixture
def sample_raw_dir(tmp_path: Path) -> Path:
    """A raw folder holding the embedded real sample (2020 anime files, 2016 ratings of 5,000 users)."""
    folder = tmp_path / "kaggle"
    shutil.copytree(SAMPLE, folder)
    return folder


def run_pipeline(*args: str, artifacts: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real training CLI in a fresh process, as a user would."""
    env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(artifacts), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(paths_config.PROJECT_ROOT / "pipeline" / "training_pipeline.py"), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory: pytest.TempPathFactory, base_config: dict) -> Path:
    """An artifacts root trained for real on the embedded sample (the users with >= 400 ratings, a few epochs), as
    the pipeline's train stage trains the evaluation model: settings chosen on the carve, test rows held out."""
    from src.data.ingestion import ingest
    from src.data.processing import process
    from src.training.train import prepare_training_data, train
    from src.tuning.hybrid import choose_settings

    root = tmp_path_factory.mktemp("artifacts")
    config = small_training_config(base_config)
    config["model"]["jit_compile"] = base_config["model"]["jit_compile"]  # the production compile path, once
    ingest(config, destination=paths_config.raw_dir(root))
    process(config, raw_dir=paths_config.raw_dir(root), destination=paths_config.processed_dir(root))
    settings = choose_settings(config, prepare_training_data(config, paths_config.processed_dir(root)))
    train(config, settings, processed_dir=paths_config.processed_dir(root), destination=paths_config.model_dir(root),
          comet_directory=paths_config.comet_dir(root))
    return root
