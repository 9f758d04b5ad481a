"""Refit: once the evaluation has measured the model, train the served model on every rating.

The evaluation model learns from the training split only: the test rows, the newcomers and the new anime are held
out so they can measure it. A model that people use should learn from everything, so after the evaluation the NCF
and EASE are trained again on every row of the processed table (src/data/processing.py), with the settings the
validation carve chose for the evaluation model, and that model is published once the row ledger confirms it holds
every kept row (src/training/ledger.py). Its manifest says which run each figure comes from.
"""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from config import paths_config
from config.settings import Settings
from src.data.files import load_content_features
from src.data.processing import catalogue_order, encode, read_interactions
from src.data.splits import SPLIT_TRAIN, assign_splits
from src.engine.model_check import ServingCheck
from src.errors import UserError
from src.logger import get_logger
from src.store.artifacts import load_model_artifacts
from src.store.registry import publish_model
from src.training.ledger import check_published_rows
from utils.common_functions import read_json

if TYPE_CHECKING:
    from src.training.train import TrainingData

logger = get_logger(__name__)


def every_rating(config: Settings | Mapping[str, Any], processed_dir: Path) -> TrainingData:
    """Every kept rating of the processed table, newcomers' and new anime's included (a newcomer's rating of a new
    anime too), with no test split (a validation share only). The new anime become model anime, so the catalogue
    and its content features are reordered: the model's anime first, as always."""
    config = Settings.of(config)
    from src.training.train import training_data  # imports TensorFlow

    interactions = read_interactions(processed_dir)
    catalogue = pd.read_parquet(processed_dir / "anime.parquet")
    ids, user_index = encode(interactions["user_id"].to_numpy(np.int64))
    old_index = interactions["anime_index"].to_numpy().astype(np.int64)
    rating = interactions["rating"].to_numpy().astype(np.int8)
    # the model's anime: every anime with a row now, in catalogue order
    model_rows = np.unique(old_index)
    new_catalogue = catalogue_order(catalogue, catalogue["anime_id"].to_numpy()[model_rows])
    position = pd.Series(np.arange(len(catalogue)), index=catalogue["anime_id"].to_numpy())
    permutation = position.loc[new_catalogue["anime_id"].to_numpy()].to_numpy()  # new row -> old row
    old_to_new = np.empty(len(catalogue), np.int64)
    old_to_new[permutation] = np.arange(len(catalogue))
    rng = np.random.default_rng(int(config.seed))
    split = assign_splits(user_index, rating, 0.0, float(config.processing.validation_fraction), rng)
    ratings = pd.DataFrame({"user_index": user_index.astype(np.int32),
                            "anime_index": old_to_new[old_index].astype(np.int32), "rating": rating, "split": split})
    features, story = load_content_features(processed_dir)
    summary = {**read_json(processed_dir / "summary.json"), "refit": True, "users": len(ids),
               "anime": len(model_rows), "interactions": len(rating), "train": int((split == SPLIT_TRAIN).sum()),
               "validation": int((split != SPLIT_TRAIN).sum()), "test": 0, "newcomers": 0, "new_anime": 0}
    return training_data(config, ratings, new_catalogue, ids, new_catalogue["anime_id"].to_numpy()[:len(model_rows)],
                         summary, features[permutation], story[permutation] if story.shape[0] else story,
                         processed_dir, every_rating=True)


def refit(config: Settings | Mapping[str, Any], epochs: int | None = None) -> dict[str, Any]:
    """Train on every rating with the evaluation model's chosen settings and publish; return the manifest."""
    config = Settings.of(config)
    from src.training.train import train

    evaluation_dir = paths_config.evaluation_model_dir()
    if not (evaluation_dir / "manifest.json").is_file():
        raise UserError(f"no evaluation model in {evaluation_dir}: run the train stage first")
    evaluated = load_model_artifacts(evaluation_dir).manifest
    settings = {key: value for key, value in evaluated["hybrid"].items()}
    reports = paths_config.reports_dir() / "metrics.json"
    settings["evaluated"] = {
        "note": "the figures of artifacts/reports come from the evaluation model, trained on the training split; "
                "this model has the same settings, refitted on every rating (test rows and newcomers included)",
        "evaluation_model_created_at": evaluated.get("created_at"),
        "metrics": str(reports) if reports.is_file() else None,
    }
    data = every_rating(config, paths_config.processed_dir())
    logger.info("refitting on every rating: %d users, %d interactions", len(data.user_ids), len(data.ratings))
    return train(config, settings, destination=paths_config.model_dir(), epochs=epochs, data=data)


def publish_evaluation_model(config: Settings | Mapping[str, Any]) -> None:
    """Serve the evaluation model as it is (``evaluation.refit: false``): copy it in as a new version. It holds
    the rows in no held-out set; its ledger counts the held-out ones as not published."""
    config = Settings.of(config)
    source = paths_config.evaluation_model_dir()
    with publish_model(paths_config.model_dir(), config, ServingCheck.from_config(config)) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        check_published_rows(staging, paths_config.processed_dir(), every_rating=False)
