"""Evaluate a published model on its held-out test set, next to baselines and the original objective.

Methods compared on the same users and split (metrics are defined in src/evaluation.py):

- ``popularity``, ``item_knn`` (and ``als`` when ``implicit`` is installed): baselines fitted on training rows;
- ``ncf_direct``: the trained NCF's own score, the cosine of user and anime embeddings;
- ``content``, ``user``, ``hybrid``: this project's recommender engine, built without the held-out rows;
- ``original_direct``, ``original_hybrid``: the same, with an NCF trained on the original objective
  (observed scaled ratings only, the original learning-rate schedule) on the same training rows.
"""
from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from config import paths_config
from src.artifacts import ModelArtifacts, load_model_artifacts, read_ids
from src.errors import UserError
from src.evaluation import (
    baseline_scorers, embedding_scorer, engine_scorers, evaluate_methods, held_out_users, log_to_comet,
    settings_from_config, split_interactions, without_held_out, write_reports,
)
from src.logger import get_logger
from src.recommender import Recommender, ServingConfig

logger = get_logger(__name__)


def original_objective_config(config: dict[str, Any]) -> dict[str, Any]:
    """The original design's training: ratings only, no negatives, its learning-rate schedule and epochs."""
    original = copy.deepcopy(config)
    original["training"].update(config["evaluation"]["original_objective"])
    original["training"]["objective"] = "rating"
    original["training"]["negatives_per_positive"] = 0
    return original


def train_original_objective(config: dict[str, Any], processed_dir: Path, artifacts: ModelArtifacts) -> ModelArtifacts:
    """Train the original-objective NCF on the same processed split; return the artifacts with its embeddings."""
    from src.model_training import train  # TensorFlow is only needed here

    if not np.array_equal(read_ids(processed_dir / "user_ids.json"), artifacts.user_ids):
        raise UserError(f"processed data in {processed_dir} does not match the model: rerun the training pipeline")
    with tempfile.TemporaryDirectory(prefix="original-objective-") as scratch:
        scratch = Path(scratch)
        train(original_objective_config(config), processed_dir=processed_dir, destination=scratch / "model",
              comet_directory=scratch / "comet")
        original = load_model_artifacts(scratch / "model")
    return dataclasses.replace(artifacts, user_embeddings=original.user_embeddings,
                               anime_embeddings=original.anime_embeddings)


def engine_for(artifacts: ModelArtifacts, config: dict[str, Any]) -> Recommender:
    return Recommender(without_held_out(artifacts), ServingConfig.from_mapping(config["serving"]))


def evaluate_model(config: dict[str, Any], model_dir: Path | None = None, processed_dir: Path | None = None,
                   reports_dir: Path | None = None, compare_original: bool | None = None,
                   experiment: Any = None) -> dict[str, Any]:
    """Evaluate every method, write metrics.json, evaluation.md and chart.png; return the metrics document."""
    model_dir = model_dir or paths_config.model_dir()
    processed_dir = processed_dir or paths_config.processed_dir()
    reports_dir = reports_dir or paths_config.reports_dir()
    artifacts = load_model_artifacts(model_dir)
    known, test = split_interactions(artifacts.user_ratings)
    if test.empty:
        raise UserError("the model has no held-out test set (evaluation.holdout_fraction was 0): "
                        "retrain with a holdout to evaluate it")
    n_users, n_anime = len(artifacts.user_ids), len(artifacts.anime_ids)
    settings = settings_from_config(config)

    scorers = baseline_scorers(known, n_anime, n_users, settings.seed)
    scorers["ncf_direct"] = embedding_scorer(artifacts.user_embeddings, artifacts.anime_embeddings)
    scorers.update(engine_scorers(engine_for(artifacts, config)))
    if config["evaluation"]["compare_original_objective"] if compare_original is None else compare_original:
        original = train_original_objective(config, processed_dir, artifacts)
        scorers["original_direct"] = embedding_scorer(original.user_embeddings, original.anime_embeddings)
        scorers["original_hybrid"] = engine_scorers(engine_for(original, config), ("hybrid",))["hybrid"]

    results = evaluate_methods(scorers, known, test, n_anime, settings)
    data = artifacts.manifest.get("data", {})
    meta = {
        "k": settings.k, "seed": settings.seed, "users_evaluated": len(held_out_users(test, settings.max_users, settings.seed)),
        "users": n_users, "anime": n_anime, "test_interactions": len(test),
        "min_user_ratings": data.get("min_user_ratings"), "holdout_fraction": data.get("holdout_fraction"),
        "data_source": data.get("source", {}).get("origin"), "model_created_at": artifacts.manifest.get("created_at"),
        "training": artifacts.manifest.get("training"),
        "user_weight": config["serving"]["user_weight"], "content_weight": config["serving"]["content_weight"],
    }
    files = write_reports(results, reports_dir, meta)
    log_to_comet(experiment, results, files.values())
    return {"methods": results, "meta": meta}


def evaluate_and_track(config: dict[str, Any], compare_original: bool | None = None) -> dict[str, Any]:
    """``evaluate_model`` with its metrics and reports logged to a Comet experiment of its own (online or offline)."""
    from src.experiment_tracking import finish_experiment, start_experiment  # imports comet_ml, then keras

    experiment = start_experiment(config, paths_config.comet_dir())
    experiment.set_name("evaluation")
    try:
        return evaluate_model(config, compare_original=compare_original, experiment=experiment)
    finally:
        finish_experiment(experiment)
