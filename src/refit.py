"""Refit: once the evaluation has measured the model, train the served model on every rating.

The evaluation model learns from the training split only: the test rows and the newcomers are held out so they
can measure it. A model that people use should learn from everything, so after the evaluation the NCF and EASE
are trained again on every rating of every kept user, newcomers included, with the settings the validation carve
chose for the evaluation model, and that model is published. Its manifest says which run each figure comes from.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from config import paths_config
from src.artifacts import (
    SPLIT_TRAIN,
    load_content_features,
    load_model_artifacts,
    read_ids,
    save_content_features,
    write_ids,
)
from src.data_processing import catalogue_order, encode
from src.errors import UserError
from src.evaluation.splitting import assign_splits
from src.logger import get_logger
from src.model_registry import publish_model
from utils.atomic import write_json
from utils.common_functions import read_json

logger = get_logger(__name__)


def write_refit_view(processed_dir: Path, destination: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A processed folder holding every rating, newcomers' and new anime's included, with no test split (a
    validation share only). The new anime become model anime, so the catalogue and its content features are
    reordered: the model's anime first, as always."""
    ratings = pd.read_parquet(processed_dir / "ratings.parquet")
    user_ids = read_ids(processed_dir / "user_ids.json")
    catalogue = pd.read_parquet(processed_dir / "anime.parquet")
    newcomers = _optional(processed_dir / "newcomers.parquet", ["user_id", "anime_index", "rating"])
    new_anime = _optional(processed_dir / "new_anime.parquet", ["user_index", "anime_index", "rating"])
    all_user_ids = np.concatenate([user_ids[ratings["user_index"].to_numpy()], newcomers["user_id"].to_numpy(np.int64),
                                   user_ids[new_anime["user_index"].to_numpy(np.int64)]])
    ids, user_index = encode(all_user_ids)
    old_index = np.concatenate([ratings["anime_index"].to_numpy(), newcomers["anime_index"].to_numpy(),
                                new_anime["anime_index"].to_numpy()]).astype(np.int64)
    rating = np.concatenate([ratings["rating"].to_numpy(), newcomers["rating"].to_numpy(),
                             new_anime["rating"].to_numpy()]).astype(np.int8)
    # the model's anime: every anime with a row now, in catalogue order
    model_rows = np.unique(old_index)
    new_catalogue = catalogue_order(catalogue, catalogue["anime_id"].to_numpy()[model_rows])
    position = pd.Series(np.arange(len(catalogue)), index=catalogue["anime_id"].to_numpy())
    permutation = position.loc[new_catalogue["anime_id"].to_numpy()].to_numpy()  # new row -> old row
    old_to_new = np.empty(len(catalogue), np.int64)
    old_to_new[permutation] = np.arange(len(catalogue))
    anime_index = old_to_new[old_index].astype(np.int32)
    rng = np.random.default_rng(int(config["seed"]))
    split = assign_splits(user_index, rating, 0.0, float(config["processing"]["validation_fraction"]), rng)
    destination.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_index": user_index.astype(np.int32), "anime_index": anime_index, "rating": rating,
                  "split": split}).to_parquet(destination / "ratings.parquet", index=False)
    write_ids(destination / "user_ids.json", ids)
    write_ids(destination / "anime_ids.json", new_catalogue["anime_id"].to_numpy()[:len(model_rows)])
    new_catalogue.to_parquet(destination / "anime.parquet", index=False)
    features, story = load_content_features(processed_dir)
    save_content_features(destination, features[permutation], story[permutation] if story.shape[0] else story)
    summary = {**read_json(processed_dir / "summary.json"), "refit": True, "users": len(ids),
               "anime": len(model_rows), "interactions": len(rating), "train": int((split == SPLIT_TRAIN).sum()),
               "validation": int((split != SPLIT_TRAIN).sum()), "test": 0, "newcomers": 0, "new_anime": 0}
    write_json(destination / "summary.json", summary)
    return summary


def _optional(path: Path, columns: list[str]) -> pd.DataFrame:
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame({column: [] for column in columns}, dtype=np.int64)


def refit(config: dict[str, Any], epochs: int | None = None) -> dict[str, Any]:
    """Train on every rating with the evaluation model's chosen settings and publish; return the manifest."""
    from src.model_training import train

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
    with tempfile.TemporaryDirectory(prefix="refit-") as scratch:
        view = Path(scratch) / "processed"
        summary = write_refit_view(paths_config.processed_dir(), view, config)
        logger.info("refitting on every rating: %d users, %d interactions", summary["users"], summary["interactions"])
        return train(config, settings, processed_dir=view, destination=paths_config.model_dir(), epochs=epochs)


def publish_evaluation_model(config: dict[str, Any]) -> None:
    """Serve the evaluation model as it is (``evaluation.refit: false``): copy it in as a new version."""
    source = paths_config.evaluation_model_dir()
    with publish_model(paths_config.model_dir(), config) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
