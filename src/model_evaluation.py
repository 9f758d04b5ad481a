"""Evaluate the evaluation model on its held-out test set and its newcomers, next to tuned baselines.

Known users (the held-out 20 % of each user's ratings), on the same users and split for every method:

- ``popularity``, ``item_knn``, ``als``, ``ease``: baselines fitted on the training rows, each with the settings
  that scored best on the validation carve (src/tuning.py's carve: the test set is never read to choose);
- ``ncf_direct``, ``item_item``, ``user``, ``content``: the serving engine's components alone, and ``hybrid``:
  their mix as served, ranked by the engine's own code (Recommender.rank_users);
- ``original_direct``, ``original_hybrid`` (opt-in): the original design's NCF trained on the same rows.

Newcomers (users held out of training entirely, recommended for from their favourites): ``favourites`` (the
engine's cold start, as the favourites endpoint serves it), ``ncf_fold_in`` (the NCF alone), and the baselines
``popularity``, ``item_knn`` and ``ease`` built from the same favourites.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from config import paths_config
from src.artifacts import ModelArtifacts, load_model_artifacts
from src.engine.ranking import top_k
from src.engine.serving_config import ServingConfig
from src.errors import UserError
from src.evaluation import baselines
from src.evaluation.newcomers import favourites_ranker, item_scorer_rankers, newcomer_split
from src.evaluation.protocol import (
    EvaluationSettings, RankFn, engine_rankers, evaluate_methods, scorer_rankers, settings_from_config,
)
from src.evaluation.metrics import popularity_ranks
from src.evaluation.reports import log_to_comet, write_reports
from src.evaluation.splitting import held_out_users, split_interactions, without_held_out
from src.logger import get_logger
from src.model_training import prepare_training_data
from src.recommender import Recommender
from src.tuning import Carve, carve, recall_per_user

logger = get_logger(__name__)
# Engine methods as the report names them: "ncf_direct" is the NCF's own score, as in the original project.
ENGINE_METHODS = {"ncf_direct": "ncf", "item_item": "item_item", "user": "user", "content": "content",
                  "hybrid": "hybrid"}
# Baselines that score from an interaction row alone: they serve newcomers from their favourites too.
ROW_BASELINES: dict[str, Callable[..., baselines.RowScoreFn]] = {
    "popularity": lambda matrix: baselines.popularity(matrix),
    "item_knn": lambda matrix, shrink, neighbours: baselines.item_knn(matrix, shrink, neighbours),
    "ease": lambda matrix, regularisation: baselines.ease(matrix, regularisation),
}


def engine_for(artifacts: ModelArtifacts, config: dict[str, Any]) -> Recommender:
    """The serving engine, built the way the web app builds it, from everything but the held-out rows."""
    return Recommender(without_held_out(artifacts), ServingConfig.from_config(config), config["hybrid"]["default"])


# ------------------------------------------------------------------------------------------ baselines on the carve
def _grid(section: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(section)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(section[n] for n in names))]


def baseline_grids(config: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every baseline's candidate settings: evaluation.baselines, and for EASE the dense candidates of hybrid.item_item."""
    grids = {name: _grid(section) for name, section in config["evaluation"]["baselines"].items()}
    item_item = config["hybrid"]["item_item"]
    grids["ease"] = _grid({"values": item_item["values"], "regularisation": item_item["regularisation"]})
    grids["popularity"] = [{"values": "any"}]
    return grids


def _fit_row_baseline(name: str, rows: pd.DataFrame, n_users: int, n_anime: int,
                      setting: dict[str, Any]) -> baselines.RowScoreFn:
    matrix = baselines.interaction_matrix(rows, n_users, n_anime, setting["values"])
    options = {key: value for key, value in setting.items() if key != "values"}
    return ROW_BASELINES[name](matrix, **options)


def tune_baselines(config: dict[str, Any], carve_data: Carve, tiebreak: np.ndarray) -> dict[str, Any]:
    """Each baseline's best settings on the carve: for known users, and (row baselines) for newcomers."""
    k = int(config["evaluation"]["k"])
    chosen: dict[str, Any] = {"users": {}, "newcomers": {}, "trials": []}
    known = baselines.interaction_matrix(carve_data.train, carve_data.n_users, carve_data.n_anime)
    favourites = carve_data.newcomers.favourites_matrix(carve_data.n_anime)
    newcomer_relevant = baselines.interaction_matrix(carve_data.newcomers.relevant_rows, len(carve_data.newcomers),
                                                     carve_data.n_anime)
    for name, grid in baseline_grids(config).items():
        for setting in grid:
            started = time.perf_counter()
            if name == "als":
                score_users = baselines.als(baselines.interaction_matrix(carve_data.train, carve_data.n_users,
                                                                         carve_data.n_anime, setting["values"]),
                                            setting["factors"], setting["regularization"], setting["alpha"],
                                            setting["iterations"], int(config["seed"]))
                scores = {"users": score_users(carve_data.users)}
            else:
                score_rows = _fit_row_baseline(name, carve_data.train, carve_data.n_users, carve_data.n_anime, setting)
                scores = {"users": score_rows(known[carve_data.users]), "newcomers": score_rows(favourites)}
            recalls = {}
            for purpose, values in scores.items():
                exclude, relevant = ((known[carve_data.users], carve_data.relevant[carve_data.users])
                                     if purpose == "users" else (favourites, newcomer_relevant))
                lists = top_k(np.asarray(values), k, exclude=exclude, tiebreak=tiebreak)
                recalls[purpose] = float(recall_per_user(lists, relevant, k).mean())
                if name not in chosen[purpose] or recalls[purpose] > chosen[purpose][name]["carve_recall"]:
                    chosen[purpose][name] = {"setting": setting, "carve_recall": recalls[purpose]}
            chosen["trials"].append({"baseline": name, "setting": setting, "carve_recall": recalls,
                                     "seconds": round(time.perf_counter() - started, 2)})
            logger.info("carve %s %s: %s", name, setting, {p: round(r, 4) for p, r in recalls.items()})
    return chosen


# ------------------------------------------------------------------------------------------ evaluation
def evaluate_model(config: dict[str, Any], model_dir: Path | None = None, processed_dir: Path | None = None,
                   reports_dir: Path | None = None, compare_original: bool | None = None,
                   experiment: Any = None) -> dict[str, Any]:
    """Evaluate every method, write metrics.json, evaluation.md and chart.png; return the metrics document."""
    model_dir = model_dir or paths_config.evaluation_model_dir()
    processed_dir = processed_dir or paths_config.processed_dir()
    reports_dir = reports_dir or paths_config.reports_dir()
    artifacts = load_model_artifacts(model_dir)
    known, test = split_interactions(artifacts.user_ratings)
    if test.empty:
        raise UserError("the model has no held-out test set (evaluation.holdout_fraction was 0): "
                        "retrain with a holdout to evaluate it")
    data = prepare_training_data(config, processed_dir)
    if not np.array_equal(data.user_ids, artifacts.user_ids):
        raise UserError(f"processed data in {processed_dir} does not match the model: rerun the training pipeline")
    n_users, n_anime = len(artifacts.user_ids), len(artifacts.anime_ids)
    settings = settings_from_config(config)
    engine = engine_for(artifacts, config)
    tiebreak = engine.catalogue.popularity_order
    chosen = tune_baselines(config, carve(data, config), tiebreak)

    rankers = scorer_rankers(_fit_baselines(config, known, n_users, n_anime, chosen["users"]), known, n_anime,
                             n_users, tiebreak)
    rankers.update({name: engine_rankers(engine, [method])[method] for name, method in ENGINE_METHODS.items()})
    if config["evaluation"]["compare_original_objective"] if compare_original is None else compare_original:
        rankers.update(_original_rankers(config, artifacts, known, tiebreak))
    results = evaluate_methods(rankers, known, test, n_anime, settings)

    newcomer_results, newcomer_meta = _evaluate_newcomers(config, processed_dir, engine, known, chosen["newcomers"],
                                                          settings)
    data_summary = artifacts.manifest.get("data", {})
    meta = {
        "k": settings.k, "seed": settings.seed,
        "users_evaluated": len(held_out_users(test, settings.max_users, settings.seed)),
        "users": n_users, "anime": n_anime, "test_interactions": len(test),
        "min_user_ratings": data_summary.get("min_user_ratings"),
        "holdout_fraction": data_summary.get("holdout_fraction"),
        "data_source": data_summary.get("source", {}).get("origin"),
        "model": {"version": artifacts.manifest.get("version"), "created_at": artifacts.manifest.get("created_at"),
                  "trained_on": "the training split (test rows and newcomers held out)"},
        "training": artifacts.manifest.get("training"),
        "hybrid": {key: value for key, value in artifacts.manifest.get("hybrid", {}).items() if key != "carve"},
        "baselines": {purpose: {name: entry["setting"] for name, entry in values.items()}
                      for purpose, values in chosen.items() if purpose != "trials"},
    }
    files = write_reports(results, reports_dir, meta, newcomers={"methods": newcomer_results, "meta": newcomer_meta})
    log_to_comet(experiment, {**results, **{f"newcomers.{m}": v for m, v in newcomer_results.items()}}, files.values())
    return {"methods": results, "newcomers": {"methods": newcomer_results, "meta": newcomer_meta}, "meta": meta}


def _fit_baselines(config: dict[str, Any], known: pd.DataFrame, n_users: int, n_anime: int,
                   chosen: Mapping[str, Any]) -> dict[str, baselines.ScoreFn]:
    """The baselines with their carve-chosen settings, fitted on every known (non-test) row."""
    fitted: dict[str, baselines.ScoreFn] = {}
    for name in ("popularity", "item_knn", "als", "ease"):
        setting = chosen[name]["setting"]
        matrix = baselines.interaction_matrix(known, n_users, n_anime, setting["values"])
        if name == "als":
            fitted[name] = baselines.als(matrix, setting["factors"], setting["regularization"], setting["alpha"],
                                         setting["iterations"], int(config["seed"]))
        else:
            fitted[name] = baselines.by_user(_fit_row_baseline(name, known, n_users, n_anime, setting), matrix)
    return fitted


def _evaluate_newcomers(config: dict[str, Any], processed_dir: Path, engine: Recommender, known: pd.DataFrame,
                        chosen: Mapping[str, Any], settings: EvaluationSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Favourites (the engine's cold start) against the baselines built from the same favourites."""
    path = processed_dir / "newcomers.parquet"
    rows = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=["user_id", "anime_index", "rating"])
    split = newcomer_split(rows, int(config["evaluation"]["newcomer_favourites"]))
    if len(split) == 0:
        return {}, {"newcomers": 0, "reason": "no newcomers (evaluation.newcomer_fraction is 0 or the data too small)"}
    n_users, n_anime = engine.n_users, engine.n_model_anime
    tiebreak = engine.catalogue.popularity_order
    rankers: dict[str, RankFn] = {
        "favourites": favourites_ranker(split, lambda favourites, k: engine.rank_favourites(favourites, k)),
        "ncf_fold_in": favourites_ranker(split, lambda favourites, k: engine.rank_favourites(favourites, k, "ncf")),
    }
    row_baselines = {name: _fit_row_baseline(name, known, n_users, n_anime, chosen[name]["setting"])
                     for name in ("popularity", "item_knn", "ease")}
    rankers.update(item_scorer_rankers(split, row_baselines, n_anime, tiebreak))
    no_settings = dataclasses.replace(settings, max_users=None)  # every newcomer counts
    results = evaluate_methods(rankers, split.favourites_rows, split.relevant_rows, n_anime, no_settings,
                               popularity_ranks(known, n_anime))
    meta = {"newcomers": len(split), "favourites": int(config["evaluation"]["newcomer_favourites"]),
            "protocol": "each newcomer's top-rated anime (at most `favourites`) are sent as favourites; their other "
                        "rated anime are relevant; the favourites are excluded from the ranking"}
    return results, meta


def _original_rankers(config: dict[str, Any], artifacts: ModelArtifacts, known: pd.DataFrame,
                      tiebreak: np.ndarray) -> dict[str, RankFn]:
    from src.original_model import train_original_embeddings  # TensorFlow is only needed here

    n_users, n_anime = len(artifacts.user_ids), len(artifacts.anime_ids)
    user_embeddings, anime_embeddings = train_original_embeddings(config, known, n_users, n_anime)
    rankers = scorer_rankers({"original_direct": baselines.embedding_scorer(user_embeddings, anime_embeddings)},
                             known, n_anime, n_users, tiebreak)
    original = dataclasses.replace(artifacts, user_embeddings=user_embeddings, anime_embeddings=anime_embeddings,
                                   anime_bias=np.zeros(n_anime, np.float32))
    original_engine = engine_for(original, config)
    # the original design's hybrid: similar users' favourites and similar anime, half and half
    rankers["original_hybrid"] = lambda users, k: original_engine.rank_users(users, k, weights={"user": 0.5,
                                                                                               "content": 0.5})
    return rankers


def evaluate_and_track(config: dict[str, Any], compare_original: bool | None = None) -> dict[str, Any]:
    """``evaluate_model`` with its metrics and reports logged to a Comet experiment of its own (online or offline)."""
    from src.experiment_tracking import tracked_experiment  # imports comet_ml, then keras

    with tracked_experiment(config, paths_config.comet_dir(), name="evaluation") as tracked:
        return evaluate_model(config, compare_original=compare_original, experiment=tracked.experiment)
