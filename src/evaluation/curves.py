"""Recall@k for every k from 1 to ``max_k``: the report's methods, rebuilt as the evaluation builds them.

``evaluate_model`` measures each method at one k (``evaluation.k``). A curve ranks each held-out user's catalogue
once, to depth ``max_k``, and reads Recall@1..max_k off that one list: ``top_k`` is deterministic, so the first
k anime of the depth-``max_k`` list are exactly the top-k list, and the point at ``evaluation.k`` is the report's
Recall (same users, same exclusions, same tie-break). The formula is the one of ``metrics``::

    Recall@k = mean_u (hits among the first k of L_u) / min(k, |T_u|)

``report_rankers`` rebuilds the rankers of ``metrics.json``: the baselines with the settings the report records
(chosen on the validation carve, ``meta.baselines.users``), fitted on the known rows, and the engine's methods.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from config import paths_config
from config.settings import Settings
from src.data.splits import held_out_users, split_interactions
from src.errors import UserError
from src.evaluation.baselines import n_users_of
from src.evaluation.protocol import (
    ProtocolSettings,
    RankFn,
    recommend_top_k,
    settings_from_config,
)
from src.evaluation.runner import ENGINE_METHODS, RowBaselines, engine_for, known_user_rankers, listed_new_anime
from src.logger import get_logger
from src.models.ease import interaction_matrix
from src.store.artifacts import load_model_artifacts

logger = get_logger(__name__)


def recall_at_each_k(rank_fn: RankFn, train_interactions: pd.DataFrame, test_interactions: pd.DataFrame,
                     n_anime: int, max_k: int, batch_size: int,
                     users: np.ndarray | None = None) -> np.ndarray:
    """Recall@1..max_k (an array of ``max_k`` values) of one ranker over the held-out users, as
    ``protocol.evaluate_ranker`` computes Recall@k: ``users`` (default: every test user) restricted to those with
    held-out anime, each user's known anime excluded by the ranker."""
    if max_k < 1:
        raise ValueError(f"max_k must be at least 1, got {max_k}")
    n_users = n_users_of(train_interactions, test_interactions)
    relevant = interaction_matrix(test_interactions, n_users, n_anime)
    users = held_out_users(test_interactions) if users is None else np.asarray(users, dtype=np.int64)
    users = users[(users >= 0) & (users < n_users)]
    users = users[np.diff(relevant.indptr)[users] > 0]
    if len(users) == 0:
        raise UserError("no users with held-out test ratings: set evaluation.holdout_fraction > 0 and rerun training")
    lists = recommend_top_k(rank_fn, users, max_k, batch_size)
    rows = relevant[users]
    hits = np.take_along_axis(rows.toarray() > 0, np.maximum(lists, 0), axis=1) & (lists >= 0)
    depth = np.arange(1, max_k + 1)
    ideal = np.minimum(depth[None, :], np.diff(rows.indptr)[:, None])
    return (np.cumsum(hits, axis=1) / ideal).mean(axis=0)


@dataclass
class ReportRankers:
    """The report's known-user methods as rankers, with what they rank: the known and held-out rows, the catalogue
    width, and the evaluation settings (k, batch size, max_users and seed) of the config."""

    rankers: dict[str, RankFn]
    known: pd.DataFrame
    test: pd.DataFrame
    width: int
    settings: ProtocolSettings

    def users(self) -> np.ndarray:
        """The held-out users the report measured: all, or ``evaluation.max_users`` of them drawn with the seed."""
        return held_out_users(self.test, self.settings.max_users, self.settings.seed)


def report_rankers(metrics: Mapping[str, Any], model_dir: Path | None = None,
                   config: Settings | Mapping[str, Any] | None = None,
                   processed_dir: Path | None = None) -> ReportRankers:
    """The rankers of the report's known-user methods, in the report's order.

    ``metrics``: metrics.json as ``evaluate_model`` wrote it; ``model_dir``: the evaluation model it measured
    (default: ``evaluation_model_dir()``); ``config``: the project config (default: the one the model was trained
    with, from its manifest); ``processed_dir``: the processed data it was trained on (default: ``processed_dir()``).
    A method the report has but this code cannot rebuild is left out, with a warning.
    """
    artifacts = load_model_artifacts(model_dir or paths_config.evaluation_model_dir())
    config = config or artifacts.manifest.get("config")
    if config is None:
        raise UserError("the model's manifest records no config: pass the config it was trained with")
    config = Settings.of(config)
    known, test = split_interactions(artifacts.user_ratings)
    if test.empty:
        raise UserError("the model has no held-out test set: curves need the evaluation model (artifacts/evaluation/"
                        "model), not a refitted one")
    engine = engine_for(artifacts, config)
    n_users, width = len(artifacts.user_ids), engine.n_anime
    wanted = list(metrics["methods"])
    chosen = {name: {"setting": setting} for name, setting in metrics["meta"]["baselines"]["users"].items()
              if name in wanted}
    listed = listed_new_anime(processed_dir or paths_config.processed_dir(), artifacts.user_ids, width)
    rankers = known_user_rankers(config, artifacts, engine, RowBaselines(known, n_users, engine.n_model_anime, width),
                                 chosen, listed, {name: method for name, method in ENGINE_METHODS.items()
                                                  if name in wanted},
                                 any(name.startswith("original_") for name in wanted))
    if missing := [name for name in wanted if name not in rankers]:
        logger.warning("no curve for %s: this code does not rebuild those methods", ", ".join(missing))
    return ReportRankers({name: rankers[name] for name in wanted if name in rankers}, known, test, width,
                         settings_from_config(config))


def recall_curves(metrics: Mapping[str, Any], model_dir: Path | None = None,
                  config: Settings | Mapping[str, Any] | None = None, max_k: int = 50,
                  processed_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Recall@1..max_k of every known-user method of the report (method -> array of ``max_k`` values), on the
    users the report measured."""
    rebuilt = report_rankers(metrics, model_dir, config, processed_dir)
    users = rebuilt.users()
    return {name: recall_at_each_k(rank_fn, rebuilt.known, rebuilt.test, rebuilt.width, max_k,
                                   rebuilt.settings.batch_size, users)
            for name, rank_fn in rebuilt.rankers.items()}
