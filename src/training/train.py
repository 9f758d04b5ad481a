"""Training: fit the NCF model and its item-item companion on processed ratings, then publish the artifact set.

The NCF (src/models/ncf.py) learns, for every user, a softmax over the whole catalogue: its target is the
user's list, each anime weighted by rating / 10 (``training.unrated_weight`` for watched but unrated ones).
Batches are users, shuffled with the seed every epoch; the rows of the validation split give ``val_loss``.
EASE (src/models/ease.py) is fitted on the same rows with the settings chosen on the validation carve
(src/tuning/hybrid.py).
What serving reads is written into a temporary folder and published only when complete (src/store/registry.py).
"""
from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp

from config import paths_config
from config.settings import Settings, TrainingSettings
from src.data.files import load_content_features, read_ids, save_content_features
from src.data.processing import INTERACTIONS_FILE, read_interactions
from src.data.splits import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VALIDATION, Carve, carve, training_view
from src.engine.model_check import ServingCheck
from src.engine.scorers import save_nearest_users
from src.errors import UserError
from src.logger import get_logger
from src.models.ease import fit_item_weight_sets
from src.models.ncf import build_model, extract_embeddings, learning_rate_schedule
from src.store.artifacts import save_embeddings, save_item_weights, write_manifest, write_tables
from src.store.registry import publish_model
from src.training.ledger import check_published_rows
from src.training.tracking import CometEpochLogger, tracked_experiment  # comet before keras
from utils.atomic import atomic_directory, write_json
from utils.common_functions import read_json

logger = get_logger(__name__)
PROCESSED_FILES = (INTERACTIONS_FILE, "anime.parquet", "user_ids.json", "anime_ids.json", "summary.json",
                   "content_features.npy", "story.npz")


def user_targets(ratings: pd.DataFrame, n_users: int, n_anime: int, unrated_weight: float) -> sp.csr_matrix:
    """users x anime target weights: rating / 10 for a rated anime, ``unrated_weight`` for a watched-but-unrated one."""
    rating = ratings["rating"].to_numpy().astype(np.float32)
    weights = np.where(rating > 0, rating / 10.0, unrated_weight).astype(np.float32)
    targets = sp.csr_matrix((weights, (ratings["user_index"].to_numpy(), ratings["anime_index"].to_numpy())),
                            shape=(n_users, n_anime), dtype=np.float32)
    targets.sum_duplicates()
    targets.eliminate_zeros()
    return targets


class UserBatches(keras.utils.PyDataset):
    """Batches of users with their dense target rows, reshuffled every epoch; the last batch is filled up with
    users from the start, so every step has the same shape (XLA compiles it once)."""

    def __init__(self, targets: sp.csr_matrix, batch_size: int, rng: np.random.Generator | None) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.targets, self.rng = targets, rng
        self.users = np.flatnonzero(np.diff(targets.indptr) > 0).astype(np.int32)
        self.batch_size = max(1, min(batch_size, len(self.users)))
        self.order = self.users
        self.on_epoch_end()

    def __len__(self) -> int:
        return int(np.ceil(len(self.users) / self.batch_size))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        users = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        if len(users) < self.batch_size:
            users = np.concatenate([users, self.order[:self.batch_size - len(users)]])
        return users, self.targets[users].toarray()

    def on_epoch_end(self) -> None:
        if self.rng is not None:
            self.order = self.rng.permutation(self.users)


@dataclass
class TrainingData:
    ratings: pd.DataFrame
    anime: pd.DataFrame
    user_ids: np.ndarray
    anime_ids: np.ndarray
    summary: dict[str, Any]
    train_targets: sp.csr_matrix
    validation_targets: sp.csr_matrix
    content_features: np.ndarray  # (catalogue x f): every anime of anime.parquet, rated or not
    story: sp.csr_matrix
    # Where the rows come from, and whether they are every kept row (the served model) or the evaluation model's:
    # the model trained on them is checked against that table before it is published (src/training/ledger.py).
    processed_dir: Path | None = None
    every_rating: bool = False

    @property
    def known(self) -> pd.DataFrame:
        """Every row the model may learn from: all but the held-out test rows."""
        return self.ratings[self.ratings["split"].to_numpy() != SPLIT_TEST]

    def carve(self, config: Settings) -> Carve:
        """The validation carve of these rows (src/data/splits.py): what every setting is chosen on."""
        return carve(self.known, len(self.user_ids), len(self.anime_ids), len(self.anime), config)


def prepare_training_data(config: Settings | Mapping[str, Any], processed_dir: Path) -> TrainingData:
    """The evaluation model's rows (the training view of the processed table, src/data/splits.py) with
    the training and validation target matrices."""
    config = Settings.of(config)
    if missing := [name for name in PROCESSED_FILES if not (processed_dir / name).is_file()]:
        raise UserError(f"processed data in {processed_dir} is missing {', '.join(missing)}: "
                        "run the process stage first")
    user_ids, anime_ids = read_ids(processed_dir / "user_ids.json"), read_ids(processed_dir / "anime_ids.json")
    ratings = training_view(read_interactions(processed_dir), user_ids)
    features, story = load_content_features(processed_dir)
    return training_data(config, ratings, pd.read_parquet(processed_dir / "anime.parquet"), user_ids, anime_ids,
                         read_json(processed_dir / "summary.json"), features, story, processed_dir)


def training_data(config: Settings | Mapping[str, Any],
                  ratings: pd.DataFrame, anime: pd.DataFrame, user_ids: np.ndarray,
                  anime_ids: np.ndarray, summary: dict[str, Any], features: np.ndarray, story: sp.csr_matrix,
                  processed_dir: Path | None = None, every_rating: bool = False) -> TrainingData:
    """Rows (``user_index``, ``anime_index``, ``rating``, ``split``) made into a model's training data."""
    config = Settings.of(config)
    split = ratings["split"].to_numpy()
    if not (split == SPLIT_TRAIN).any():
        raise UserError("no training rows left after processing: lower --min-user-ratings or "
                        "evaluation.holdout_fraction")
    unrated = float(config.training.unrated_weight)
    shape = (len(user_ids), len(anime_ids))
    return TrainingData(ratings, anime, user_ids, anime_ids, summary,
                        user_targets(ratings[split == SPLIT_TRAIN], *shape, unrated),
                        user_targets(ratings[split == SPLIT_VALIDATION], *shape, unrated), features, story,
                        processed_dir, every_rating)


def batch_size_for(config: Settings, n_users: int) -> int:
    """``training.batch_size`` users, but at most a fifth of them: a small dataset still gets several steps an epoch."""
    return max(1, min(int(config.training.batch_size), int(np.ceil(n_users / 5))))


def validation_interval(training: TrainingSettings, epochs: int) -> int:
    """Epochs between val_loss passes (Keras validates after epochs every, 2 x every, ...):
    ``training.validation_every``, at most ``epochs`` (so there is at least one), 1 under early stopping."""
    if training.early_stopping_patience is not None:
        return 1
    return max(1, min(int(training.validation_every), epochs))


@dataclass
class FittedNCF:
    model: keras.Model
    history: dict[str, list[float]]
    seconds: float
    validation_every: int = 1

    def embeddings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return extract_embeddings(self.model)

    @property
    def val_epochs(self) -> list[int]:
        """The epoch (1-based) each val_loss was measured after: every ``validation_every`` epochs."""
        return [(i + 1) * self.validation_every for i in range(len(self.history.get("val_loss", [])))]


def fit_ncf(config: Settings | Mapping[str, Any],
            train_targets: sp.csr_matrix, validation_targets: sp.csr_matrix | None = None,
            epochs: int | None = None, callbacks: list[keras.callbacks.Callback] | None = None,
            strategy: Any = None) -> FittedNCF:
    """Train the NCF on a users x anime target matrix; seeded, so the same inputs give the same model.

    ``strategy``: a ``tf.distribute`` strategy (e.g. MultiWorkerMirroredStrategy) to build the model in and train
    under, each replica taking its share of every batch (src/training/distributed.py); None (default) is the plain
    fit."""
    config = Settings.of(config)
    training = config.training
    epochs = int(training.epochs if epochs is None else epochs)
    if epochs < 1:
        raise UserError(f"epochs must be at least 1, not {epochs}")
    seed = int(config.seed)
    keras.utils.set_random_seed(seed)
    n_users, n_anime = train_targets.shape
    batches = UserBatches(train_targets, batch_size_for(config, len(np.flatnonzero(np.diff(train_targets.indptr)))),
                          np.random.default_rng(seed))
    validation = None
    if validation_targets is not None and validation_targets.nnz:
        validation = UserBatches(validation_targets, batches.batch_size, None)
    # Large data needs fewer passes: the number of steps, not of epochs, is what the model needs.
    epochs = max(1, min(epochs, int(np.ceil(int(training.max_steps) / max(len(batches), 1)))))
    if strategy is None:
        model = build_model(n_users, n_anime, config)
    else:
        with strategy.scope():
            model = build_model(n_users, n_anime, config)
    schedule = [keras.callbacks.LearningRateScheduler(learning_rate_schedule(training.learning_rate))]
    # A validation pass costs about a third of an epoch of training: val_loss only every few epochs, unless early
    # stopping watches it.
    validation_every = validation_interval(training, epochs)
    if training.early_stopping_patience is not None and validation is not None:
        schedule.append(keras.callbacks.EarlyStopping(monitor="val_loss", restore_best_weights=True,
                                                      patience=int(training.early_stopping_patience)))
    logger.info("training the NCF on %d users' lists (%d anime, batches of %d users) for up to %d epochs",
                len(batches.users), n_anime, batches.batch_size, epochs)
    started = time.perf_counter()
    if strategy is None:
        history = model.fit(batches, validation_data=validation, epochs=epochs, verbose=training.verbose,
                            validation_freq=validation_every, callbacks=schedule + list(callbacks or [])).history
    else:
        from src.training.distributed import fit_distributed

        history = fit_distributed(model, batches, validation, epochs, strategy, schedule + list(callbacks or []))
    return FittedNCF(model, {name: [float(v) for v in values] for name, values in history.items()},
                     time.perf_counter() - started, validation_every if strategy is None else 1)


def train(config: Settings | Mapping[str, Any], settings: dict[str, Any], processed_dir: Path | None = None,
          destination: Path | None = None, epochs: int | None = None, comet_directory: Path | None = None,
          versioned: bool = True, data: TrainingData | None = None) -> dict[str, Any]:
    """Train the NCF and fit EASE on the processed rows, then publish the model artifact set; return its manifest.

    ``settings`` are the hybrid's settings chosen on the validation carve (src/tuning/hybrid.py), recorded in the
    manifest for serving. ``versioned``: publish as a new version of the served model (src/store/registry.py);
    otherwise just replace the folder atomically (the evaluation model). ``data``: the rows to train on (default:
    the evaluation model's rows of ``processed_dir``; the refit gives every rating). The written model is checked
    against the processed row ledger before it is published (src/training/ledger.py).
    """
    config = Settings.of(config)
    processed_dir = processed_dir or paths_config.processed_dir()
    destination = destination or paths_config.model_dir()
    data = data or prepare_training_data(config, processed_dir)
    publisher = (publish_model(destination, config, ServingCheck.from_config(config)) if versioned
                 else atomic_directory(destination))
    with publisher as staging:
        with tracked_experiment(config, comet_directory or paths_config.comet_dir()) as tracked:
            experiment = tracked.experiment
            experiment.log_parameters(flatten(config.as_dict()))
            experiment.log_others({f"data.{key}": value for key, value in data.summary.items()
                                   if not isinstance(value, dict)})
            fitted = fit_ncf(config, data.train_targets, data.validation_targets, epochs,
                             [CometEpochLogger(experiment)])
            fitted.model.save(staging / "model.keras")
            user_embeddings, anime_embeddings, anime_bias = fitted.embeddings()
            save_embeddings(staging, user_embeddings, anime_embeddings, data.user_ids, data.anime_ids, anime_bias)
            save_nearest_users(staging, int(settings["similar_users"]))
            item_started = time.perf_counter()
            chosen = [settings["item_item"]]
            if settings.get("favourites_item_item"):  # the newcomers' own EASE, chosen for them on the carve
                chosen.append(settings["favourites_item_item"])
            item_weights = fit_item_weight_sets(data.known, len(data.user_ids), len(data.anime_ids), chosen)
            for weights, name in zip(item_weights, ("item_weights.npz", "favourites_item_weights.npz"), strict=False):
                save_item_weights(staging, weights, name)
            final = _training_summary(fitted, time.perf_counter() - item_started)
            experiment.log_metrics(final)
            for name in ("user_embeddings.npy", "anime_embeddings.npy", "anime_bias.npy"):
                experiment.log_asset(str(staging / name))
        manifest = _manifest(config, data, final, settings)
        manifest["comet"] = {"experiment_key": tracked.key,
                             "offline_archive": str(tracked.archive) if tracked.archive else None}
        write_tables(staging, data.anime, data.ratings)
        if data.processed_dir is not None:
            manifest["ledger"] = check_published_rows(staging, data.processed_dir, data.every_rating)
        save_content_features(staging, data.content_features, data.story)
        write_manifest(staging, manifest)
        schedule = learning_rate_schedule(config.training.learning_rate)
        write_json(staging / "history.json", {
            **fitted.history, "learning_rate_schedule": [schedule(epoch) for epoch in range(final["epochs_run"])],
            "val_epochs": fitted.val_epochs})
    logger.info("published model artifacts to %s: NCF %d epochs in %.1f s, EASE in %.1f s", destination,
                final["epochs_run"], final["training_seconds"], final["item_item_seconds"])
    return manifest


def _training_summary(fitted: FittedNCF, item_seconds: float) -> dict[str, Any]:
    """The best epoch by val_loss (by loss without validation) and every figure of that epoch. val_loss may be
    measured only every few epochs (``validation_interval``)."""
    history = fitted.history
    epochs = len(history["loss"])
    monitor = "val_loss" if history.get("val_loss") else "loss"
    best = int(np.argmin(history[monitor]))  # an index into the monitored list
    best_epoch = fitted.val_epochs[best] if monitor == "val_loss" else best + 1  # 1-based
    figures = {name: values[best_epoch - 1] if len(values) == epochs else values[best]
               for name, values in history.items() if values}
    return {"epochs_run": epochs, "best_epoch": best_epoch,
            "training_seconds": round(fitted.seconds, 2), "item_item_seconds": round(item_seconds, 2),
            **{f"best_{name}": float(value) for name, value in figures.items()}}


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _manifest(config: Settings, data: TrainingData, final: dict[str, Any],
              settings: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": data.summary,
        "counts": {"users": len(data.user_ids), "anime": len(data.anime_ids), "interactions": len(data.ratings),
                   "training_users": int(np.count_nonzero(np.diff(data.train_targets.indptr)))},
        "training": final,
        "model": {"temperature": float(config.model.temperature)},
        "hybrid": settings,
        "config": config.as_dict(),
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__, "pandas": pd.__version__},
    }
