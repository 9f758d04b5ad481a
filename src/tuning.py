"""Hyper-parameter tuning on a validation split carved from the training rows; the test set is never read.

The processed training rows are re-split (the same seeded per-user holdout as processing, with another seed),
so a trial trains on 80% of each user's training ratings and is scored on the other 20%. The search is one
setting at a time from the current config (coordinate descent over ``tuning.grid``), selecting on the hybrid
recommender's Recall@k; then the hybrid weights and neighbour count, which need no retraining, are swept on the
best model.
"""
from __future__ import annotations

import copy
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from src.artifacts import load_model_artifacts
from src.evaluation.protocol import engine_rankers, evaluate_methods, settings_from_config
from src.evaluation.splitting import carve_validation, split_interactions
from src.logger import get_logger
from src.model_evaluation import engine_for

logger = get_logger(__name__)
SERVING_PATHS = ("serving.user_weight", "serving.content_weight", "serving.similar_users")
PROCESSED_FILES = ("anime.parquet", "user_ids.json", "anime_ids.json", "summary.json")


def carve_validation_split(processed_dir: Path, destination: Path, config: dict[str, Any]) -> None:
    """Write a processed folder whose 'test' rows are a per-user holdout of the original training rows."""
    destination.mkdir(parents=True, exist_ok=True)
    carved = carve_validation(pd.read_parquet(processed_dir / "ratings.parquet"),
                              float(config["evaluation"]["holdout_fraction"]),
                              float(config["processing"]["validation_fraction"]), int(config["seed"]) + 1000)
    carved.to_parquet(destination / "ratings.parquet", index=False)
    for name in PROCESSED_FILES:
        shutil.copy(processed_dir / name, destination / name)


def set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested config; a peak learning rate also scales the schedule's start and floor."""
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[leaf] = value
    if dotted == "training.learning_rate.max":
        node["start"] = node["min"] = value / 5  # keep the original schedule's shape: ramp from max/5, decay to max/5


def run_trial(config: dict[str, Any], validation_dir: Path, scratch: Path) -> tuple[float, dict[str, Any], Path]:
    """Train on the validation split's training rows; return (hybrid recall, metrics, model folder)."""
    from src.model_training import train

    model_dir = scratch / f"model-{time.monotonic_ns()}"
    manifest = train(config, processed_dir=validation_dir, destination=model_dir, comet_directory=scratch / "comet")
    metrics = score_engine(config, model_dir)
    metrics["training_seconds"] = manifest["training"]["training_seconds"]
    metrics["epochs_run"] = manifest["training"]["epochs_run"]
    return metrics["hybrid"]["recall"], metrics, model_dir


def score_engine(config: dict[str, Any], model_dir: Path, methods: tuple[str, ...] = ("content", "user", "hybrid")) -> dict[str, Any]:
    artifacts = load_model_artifacts(model_dir)
    known, test = split_interactions(artifacts.user_ratings)
    rankers = engine_rankers(engine_for(artifacts, config), methods)
    return evaluate_methods(rankers, known, test, len(artifacts.anime_ids), settings_from_config(config))


def tune(config: dict[str, Any], processed_dir: Path) -> dict[str, Any]:
    """Search ``tuning.grid`` one setting at a time, then the serving sweeps; return the trials and the best setting."""
    tuning = config["tuning"]
    trials: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tuning-") as scratch_name:
        scratch = Path(scratch_name)
        validation_dir = scratch / "processed"
        carve_validation_split(processed_dir, validation_dir, config)
        best_config = copy.deepcopy(config)
        best_recall, best_metrics, best_model = run_trial(best_config, validation_dir, scratch)
        trials.append({"setting": "current config", "recall": best_recall, "metrics": best_metrics})
        logger.info("tuning baseline: hybrid recall %.4f", best_recall)
        for dotted, values in tuning["grid"].items():
            for value in values:
                candidate = copy.deepcopy(best_config)
                set_path(candidate, dotted, value)
                if candidate == best_config:
                    continue
                recall, metrics, model_dir = run_trial(candidate, validation_dir, scratch)
                trials.append({"setting": f"{dotted}={value}", "recall": recall, "metrics": metrics})
                logger.info("tuning %s=%s: hybrid recall %.4f (best so far %.4f)", dotted, value, recall, best_recall)
                if recall > best_recall:
                    best_config, best_recall, best_metrics, best_model = candidate, recall, metrics, model_dir
        serving_trials = sweep_serving(best_config, best_model, tuning)
        trials.extend(serving_trials)
        best_serving = max(serving_trials, key=lambda trial: trial["recall"])
        for dotted, value in best_serving["values"].items():
            set_path(best_config, dotted, value)
    chosen = {dotted: _get_path(best_config, dotted) for dotted in [*tuning["grid"], *SERVING_PATHS]}
    return {"best": chosen, "best_validation_recall": max(t["recall"] for t in trials), "trials": trials}


def sweep_serving(config: dict[str, Any], model_dir: Path, tuning: dict[str, Any]) -> list[dict[str, Any]]:
    """Hybrid weights and neighbour count on a trained model: no retraining needed."""
    trials = []
    for user_weight in tuning["user_weights"]:
        for neighbours in tuning["similar_users"]:
            candidate = copy.deepcopy(config)
            values = {"serving.user_weight": user_weight, "serving.content_weight": round(1 - user_weight, 4),
                      "serving.similar_users": neighbours}
            for dotted, value in values.items():
                set_path(candidate, dotted, value)
            metrics = score_engine(candidate, model_dir, ("hybrid",))
            trials.append({"setting": ", ".join(f"{k}={v}" for k, v in values.items()), "values": values,
                           "recall": metrics["hybrid"]["recall"], "metrics": metrics})
            logger.info("tuning serving %s: hybrid recall %.4f", trials[-1]["setting"], trials[-1]["recall"])
    return trials


def _get_path(config: dict[str, Any], dotted: str) -> Any:
    node = config
    for key in dotted.split("."):
        node = node[key]
    return node
