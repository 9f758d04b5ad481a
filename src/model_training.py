"""Training: fit the NCF model on the processed ratings and publish the model artifact set atomically.

Two objectives (``training.objective``):

- ``rating`` (the original design): observed ratings only, target = scaled rating in 0..1.
- ``ranking``: the same rated anime with target ``floor + (1 - floor) * scaled rating``, plus
  ``negatives_per_positive`` anime the user never interacted with (target 0), resampled every epoch, so the
  embeddings learn what a person chooses to watch as well as how much they liked it.
"""
from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from config import paths_config
from src.artifacts import (
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VALIDATION,
    read_ids,
    save_embeddings,
    write_manifest,
    write_tables,
)
from src.base_model import build_model, extract_embeddings
from src.errors import UserError
from src.experiment_tracking import CometEpochLogger, tracked_experiment  # comet before keras
from src.logger import get_logger
from src.model_registry import publish_model
from utils.atomic import write_json
from utils.common_functions import read_json

logger = get_logger(__name__)


def learning_rate_schedule(settings: dict[str, float]) -> Callable[[int], float]:
    """The original schedule: linear ramp from ``start`` to ``max``, optional plateau, then exponential decay
    of the excess over ``min``."""
    start, peak, floor = float(settings["start"]), float(settings["max"]), float(settings["min"])
    rampup, sustain, decay = int(settings["rampup_epochs"]), int(settings["sustain_epochs"]), float(settings["exp_decay"])

    def rate(epoch: int) -> float:
        if epoch < rampup:
            return (peak - start) / rampup * epoch + start
        if epoch < rampup + sustain:
            return peak
        return (peak - floor) * decay ** (epoch - rampup - sustain) + floor

    return rate


class NegativeSampler:
    """Draws, for each given user, an anime that user has no interaction with (rated, unrated or validation)."""

    def __init__(self, user_index: np.ndarray, anime_index: np.ndarray, n_anime: int, rng: np.random.Generator,
                 max_rounds: int = 50) -> None:
        self.n_anime = n_anime
        self.known = np.unique(user_index.astype(np.int64) * n_anime + anime_index)
        self.rng = rng
        self.max_rounds = max_rounds

    def is_known(self, users: np.ndarray, anime: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.n_anime + anime
        position = np.minimum(np.searchsorted(self.known, keys), len(self.known) - 1)
        return self.known[position] == keys

    def sample(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (users, anime) negatives; a user who has seen nearly everything may get fewer."""
        anime = self.rng.integers(0, self.n_anime, size=len(users), dtype=np.int32)
        clash = self.is_known(users, anime)
        for _ in range(self.max_rounds):  # rejection sampling: collisions are rare, so this ends fast
            if not clash.any():
                break
            anime[clash] = self.rng.integers(0, self.n_anime, size=int(clash.sum()), dtype=np.int32)
            clash[clash] = self.is_known(users[clash], anime[clash])
        return users[~clash], anime[~clash]


class EpochBatches(keras.utils.PyDataset):
    """Shuffled batches of rated pairs plus negatives that are drawn afresh for every epoch."""

    def __init__(self, users: np.ndarray, anime: np.ndarray, targets: np.ndarray, batch_size: int,
                 negatives_per_positive: int, sampler: NegativeSampler, rng: np.random.Generator) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.users, self.anime, self.targets = users, anime, targets
        self.batch_size, self.negatives_per_positive = batch_size, negatives_per_positive
        self.sampler, self.rng = sampler, rng
        self._draw_epoch()

    def _draw_epoch(self) -> None:
        users, anime, targets = self.users, self.anime, self.targets
        if self.negatives_per_positive > 0:
            negative_users, negative_anime = self.sampler.sample(np.repeat(users, self.negatives_per_positive))
            users = np.concatenate([users, negative_users])
            anime = np.concatenate([anime, negative_anime])
            targets = np.concatenate([targets, np.zeros(len(negative_users), dtype=np.float32)])
        order = self.rng.permutation(len(users))
        self.epoch_users, self.epoch_anime, self.epoch_targets = users[order], anime[order], targets[order]

    def __len__(self) -> int:
        return int(np.ceil(len(self.epoch_users) / self.batch_size))

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return {"user": self.epoch_users[window], "anime": self.epoch_anime[window]}, self.epoch_targets[window]

    def on_epoch_end(self) -> None:
        self._draw_epoch()


@dataclass
class TrainingData:
    ratings: pd.DataFrame
    anime: pd.DataFrame
    user_ids: np.ndarray
    anime_ids: np.ndarray
    summary: dict[str, Any]
    batches: EpochBatches
    validation: tuple[dict[str, np.ndarray], np.ndarray] | None


def scaled_targets(rating: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    low, high = config["processing"]["rating_min"], config["processing"]["rating_max"]
    scaled = (rating.astype(np.float32) - low) / (high - low)
    if config["training"]["objective"] == "ranking":
        floor = float(config["training"]["positive_target_floor"])
        scaled = floor + (1 - floor) * scaled
    return scaled.astype(np.float32)


def prepare_training_data(config: dict[str, Any], processed_dir: Path, seed: int) -> TrainingData:
    """Read the processed stage's outputs and build the epoch batches and the validation set."""
    files = ["ratings.parquet", "anime.parquet", "user_ids.json", "anime_ids.json", "summary.json"]
    if missing := [name for name in files if not (processed_dir / name).is_file()]:
        raise UserError(f"processed data in {processed_dir} is missing {', '.join(missing)}: run the process stage first")
    training = config["training"]
    if training["objective"] not in ("ranking", "rating"):
        raise UserError(f"training.objective must be 'ranking' or 'rating', not {training['objective']!r}")
    ratings = pd.read_parquet(processed_dir / "ratings.parquet")
    user_ids, anime_ids = read_ids(processed_dir / "user_ids.json"), read_ids(processed_dir / "anime_ids.json")
    rated = ratings["rating"].to_numpy() > 0
    split = ratings["split"].to_numpy()
    users, anime = ratings["user_index"].to_numpy(), ratings["anime_index"].to_numpy()
    train_rows, validation_rows = rated & (split == SPLIT_TRAIN), rated & (split == SPLIT_VALIDATION)
    if not train_rows.any():
        raise UserError("no rated training rows left after processing: lower --min-user-ratings or evaluation.holdout_fraction")

    rng = np.random.default_rng(seed)
    negatives = int(training["negatives_per_positive"]) if training["objective"] == "ranking" else 0
    # Everything the model may learn from counts as an interaction; the held-out test rows stay unseen.
    seen = split != SPLIT_TEST
    sampler = NegativeSampler(users[seen], anime[seen], len(anime_ids), rng)
    batches = EpochBatches(users[train_rows], anime[train_rows], scaled_targets(ratings["rating"].to_numpy()[train_rows], config),
                           int(training["batch_size"]), negatives, sampler, rng)
    validation = None
    if validation_rows.any():
        validation_batches = EpochBatches(users[validation_rows], anime[validation_rows],
                                          scaled_targets(ratings["rating"].to_numpy()[validation_rows], config),
                                          int(training["batch_size"]), negatives, sampler, np.random.default_rng(seed + 1))
        validation = ({"user": validation_batches.epoch_users, "anime": validation_batches.epoch_anime},
                      validation_batches.epoch_targets)
    return TrainingData(ratings, pd.read_parquet(processed_dir / "anime.parquet"), user_ids, anime_ids,
                        read_json(processed_dir / "summary.json"), batches, validation)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def train(config: dict[str, Any], processed_dir: Path | None = None, destination: Path | None = None,
          epochs: int | None = None, comet_directory: Path | None = None) -> dict[str, Any]:
    """Train, then publish model.keras, normalised embeddings, id maps, tables and manifest; return the manifest."""
    processed_dir = processed_dir or paths_config.processed_dir()
    destination = destination or paths_config.model_dir()
    training = config["training"]
    epochs = int(training["epochs"] if epochs is None else epochs)
    if epochs < 1:
        raise UserError(f"epochs must be at least 1, not {epochs}")
    seed = int(config["seed"])
    keras.utils.set_random_seed(seed)
    data = prepare_training_data(config, processed_dir, seed)
    logger.info("training on %d rated pairs (+%d negatives per positive, %s objective) for up to %d epochs; "
                "%d users, %d anime", len(data.batches.users), data.batches.negatives_per_positive,
                training["objective"], epochs, len(data.user_ids), len(data.anime_ids))

    model = build_model(len(data.user_ids), len(data.anime_ids), config)
    monitor = "val_loss" if data.validation is not None else "loss"
    with publish_model(destination, config) as staging:
        with tracked_experiment(config, comet_directory or paths_config.comet_dir()) as tracked:
            experiment = tracked.experiment
            experiment.log_parameters(flatten(config))
            experiment.log_others({f"data.{key}": value for key, value in data.summary.items()
                                   if not isinstance(value, dict)})
            # EarlyStopping puts the best epoch's weights back at the end, so the model is saved once, after fit.
            callbacks = [
                keras.callbacks.LearningRateScheduler(learning_rate_schedule(training["learning_rate"])),
                keras.callbacks.EarlyStopping(monitor=monitor, patience=int(training["early_stopping_patience"]),
                                              restore_best_weights=True),
                CometEpochLogger(experiment),
            ]
            started = time.perf_counter()
            history = model.fit(data.batches, validation_data=data.validation, epochs=epochs, callbacks=callbacks,
                                verbose=training["verbose"]).history
            seconds = time.perf_counter() - started
            model.save(staging / "model.keras")
            user_embeddings, anime_embeddings = extract_embeddings(model)
            best_epoch = int(np.argmin(history[monitor]))
            final = {"epochs_run": len(history["loss"]), "best_epoch": best_epoch + 1,
                     "training_seconds": round(seconds, 2),
                     **{f"best_{name}": float(values[best_epoch]) for name, values in history.items()}}
            save_embeddings(staging, user_embeddings, anime_embeddings, data.user_ids, data.anime_ids)
            experiment.log_metrics(final)
            for name in ("user_embeddings.npy", "anime_embeddings.npy", "user_ids.json", "anime_ids.json"):
                experiment.log_asset(str(staging / name))
        manifest = _manifest(config, data, final)
        manifest["comet"] = {"experiment_key": tracked.key,
                             "offline_archive": str(tracked.archive) if tracked.archive else None}
        write_tables(staging, data.anime, data.ratings)
        write_manifest(staging, manifest)
        write_json(staging / "history.json", history)
    logger.info("published model artifacts to %s after %d epochs in %.1f s (best %s %.4f at epoch %d)", destination,
                final["epochs_run"], seconds, monitor, final[f"best_{monitor}"], final["best_epoch"])
    return manifest


def _manifest(config: dict[str, Any], data: TrainingData, final: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": data.summary,
        "counts": {"users": len(data.user_ids), "anime": len(data.anime_ids), "interactions": len(data.ratings),
                   "training_pairs": len(data.batches.users)},
        "training": final,
        "config": config,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__, "pandas": pd.__version__},
    }
