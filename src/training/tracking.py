"""Experiment tracking with comet-ml: online when COMET_API_KEY is set, otherwise a real offline archive.

The key is read from the environment only; it never appears in code or config.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Comet's own crash reports go to its Sentry unless switched off; a training run sends nothing anywhere by default
# (it has no network at all in CI), so they are off unless the environment says otherwise.
os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")

import comet_ml  # noqa: E402,F401  (imported before keras by callers, as comet recommends)
import keras  # noqa: E402

from config.settings import Settings
from src.logger import get_logger

logger = get_logger(__name__)

# Everything is logged explicitly, so nothing is gathered behind our back (or sent anywhere offline).
_QUIET = dict(
    auto_metric_logging=False, auto_param_logging=False, auto_output_logging=False, auto_histogram_weight_logging=False,
    log_graph=False, log_code=False, log_git_metadata=False, log_git_patch=False, log_env_details=False,
    log_env_gpu=False, log_env_host=False, log_env_cpu=False, display_summary_level=0,
)


def start_experiment(config: Settings | Mapping[str, Any], offline_directory: Path) -> comet_ml.BaseExperiment:
    config = Settings.of(config)
    project = os.environ.get("COMET_PROJECT_NAME", config.comet.project_name)
    workspace = os.environ.get("COMET_WORKSPACE", config.comet.workspace)
    if os.environ.get("COMET_API_KEY"):
        logger.info("logging to Comet online (project %s)", project)
        return comet_ml.Experiment(project_name=project, workspace=workspace, **_QUIET)
    offline_directory.mkdir(parents=True, exist_ok=True)
    logger.info("COMET_API_KEY not set: writing an offline Comet archive under %s", offline_directory)
    return comet_ml.OfflineExperiment(offline_directory=str(offline_directory), project_name=project,
                                      workspace=workspace, **_QUIET)


@contextlib.contextmanager
def tracked_experiment(config: Settings | Mapping[str, Any],
                       offline_directory: Path, name: str | None = None) -> Iterator[Tracked]:
    """A Comet experiment for the ``with`` block, ended when the block ends, whether it succeeds or fails.

    After the block, ``tracked.archive`` is the offline archive written (None when logging online).
    """
    config = Settings.of(config)
    tracked = Tracked(start_experiment(config, offline_directory))
    if name:
        tracked.experiment.set_name(name)
    try:
        yield tracked
    finally:
        tracked.experiment.end()
        directory = getattr(tracked.experiment, "offline_directory", None)
        archive = Path(directory) / f"{tracked.experiment.get_key()}.zip" if directory else None
        tracked.archive = archive if archive is not None and archive.is_file() else None


@dataclass
class Tracked:
    experiment: comet_ml.BaseExperiment
    archive: Path | None = None

    @property
    def key(self) -> str:
        return self.experiment.get_key()


class CometEpochLogger(keras.callbacks.Callback):
    """Send loss, val_loss, MAE, MSE and the learning rate to Comet after every epoch."""

    def __init__(self, experiment: comet_ml.BaseExperiment) -> None:
        super().__init__()
        self.experiment = experiment

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        metrics = {name: float(value) for name, value in (logs or {}).items()}
        self.experiment.log_metrics(metrics, epoch=epoch + 1, step=epoch + 1)
