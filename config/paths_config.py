"""Every path the project uses, in one place.

The artifacts root defaults to ``artifacts/`` beside this repository and can be moved with the
``ANIME_ARTIFACTS_DIR`` environment variable (tests use temporary folders; the container bakes them in).
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = PROJECT_ROOT / "config" / "config.yaml"
SAMPLE_DATA_DIR = PROJECT_ROOT / "data" / "sample"


def artifacts_root() -> Path:
    return Path(os.environ.get("ANIME_ARTIFACTS_DIR", PROJECT_ROOT / "artifacts"))


def raw_dir(root: Path | None = None) -> Path:
    return (root or artifacts_root()) / "raw"


def processed_dir(root: Path | None = None) -> Path:
    return (root or artifacts_root()) / "processed"


def model_dir(root: Path | None = None) -> Path:
    return (root or artifacts_root()) / "model"


def evaluation_model_dir(root: Path | None = None) -> Path:
    """The model trained on the training split only, which the evaluation scores (the served one is refitted)."""
    return (root or artifacts_root()) / "evaluation" / "model"


def reports_dir(root: Path | None = None) -> Path:
    return (root or artifacts_root()) / "reports"


def comet_dir(root: Path | None = None) -> Path:
    return (root or artifacts_root()) / "comet"
