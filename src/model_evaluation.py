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
from src.evaluation.baselines import baseline_scorers, embedding_scorer
from src.evaluation.protocol import engine_rankers, evaluate_methods, scorer_rankers, settings_from_config
from src.evaluation.reports import log_to_comet, write_reports
from src.evaluation.splitting import held_out_users, split_interactions, without_held_out
from src.logger import get_logger
from src.recommender import METHODS, Recommender, ServingConfig

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
    """The serving engine, built the way the web app builds it, from everything but the held-out rows."""
    return Recommender(without_held_out(artifacts), ServingConfig.from_config(config))


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

    engine = engine_for(artifacts, config)
    scorers = baseline_scorers(known, n_anime, n_users, settings.seed)
    scorers["ncf_direct"] = embedding_scorer(artifacts.user_embeddings, artifacts.anime_embeddings)
    # Every method is cut by the same top_k and tie-break as serving; the engine's methods by serving's own code.
    rankers = scorer_rankers(scorers, known, n_anime, n_users, engine.catalogue.popularity_order)
    rankers.update(engine_rankers(engine, METHODS))
    if config["evaluation"]["compare_original_objective"] if compare_original is None else compare_original:
        original = train_original_objective(config, processed_dir, artifacts)
        rankers.update(scorer_rankers({"original_direct": embedding_scorer(original.user_embeddings,
                                                                           original.anime_embeddings)},
                                      known, n_anime, n_users, engine.catalogue.popularity_order))
        rankers["original_hybrid"] = engine_rankers(engine_for(original, config), ["hybrid"])["hybrid"]

    results = evaluate_methods(rankers, known, test, n_anime, settings)
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
    from src.experiment_tracking import tracked_experiment  # imports comet_ml, then keras

    with tracked_experiment(config, paths_config.comet_dir(), name="evaluation") as tracked:
        return evaluate_model(config, compare_original=compare_original, experiment=tracked.experiment)
