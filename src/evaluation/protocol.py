"""The held-out protocol: rank the catalogue for each held-out user with a method, average the metrics.

What is measured is a *ranker*: ``rank_fn(user_rows, k) -> (len(user_rows) x k)`` anime indices, best first, -1
padded, never listing anything the user already has. The serving engine is one directly (``Recommender.rank_users``,
the very code serving runs); a method scoring user rows (src/models/method.py: a baseline, ``takes == "users"``)
becomes one through ``ranker``, which cuts its scores with the same ``top_k`` and tie-break.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from config.settings import Settings
from src.data.splits import SPLIT_TEST, held_out_users
from src.engine.diversity import FranchiseRules, franchise_top_k
from src.errors import UserError
from src.evaluation.baselines import n_users_of
from src.evaluation.metrics import batch_metrics, franchise_repeats, popularity_ranks, standard_error
from src.logger import get_logger
from src.models.ease import interaction_matrix
from src.models.method import Method
from src.store.artifacts import ModelArtifacts

logger = get_logger(__name__)

RankFn = Callable[[np.ndarray, int], np.ndarray]
RANKING_METRICS = ("hr", "recall", "ndcg")


class Evaluation(NamedTuple):
    """Every method's metrics (method -> metric -> value) and its per-user Recall@k, the same users in the same
    order for every method, so that two methods can be compared user by user (``metrics.paired_difference``)."""
    metrics: dict[str, dict[str, float]]
    recalls: dict[str, np.ndarray]


@dataclass(frozen=True)
class ProtocolSettings:
    """What the held-out protocol needs of the config: k, the batch size, the users' sample and its seed."""

    k: int
    batch_size: int
    max_users: int | None
    seed: int


def settings_from_config(config: Settings | Mapping[str, Any]) -> ProtocolSettings:
    """The ``evaluation:`` section (k, batch_size, max_users) and the global seed of the project config."""
    config = Settings.of(config)
    section = config.evaluation
    return ProtocolSettings(k=int(section.k), batch_size=int(section.batch_size),
                            max_users=section.max_users, seed=int(config.seed))


def ranker(method: Method, known: sp.csr_matrix, tiebreak: np.ndarray | None = None,
           allowed: np.ndarray | None = None, rules: FranchiseRules | None = None) -> RankFn:
    """A method's rankings: its scores of user rows with the user's known anime (rows of ``known``) excluded, cut
    by ``top_k``. ``allowed`` (what any list of the app may show: no adult, unaired, recap or music title) and
    ``rules`` (the franchise rules of lists) hold a baseline to the lists the product serves, so methods are
    compared, not list policies."""
    if method.takes != "users":
        raise ValueError(f"the {method.name} method scores {method.takes}, not user rows: rank it ByUser")

    def rank(users: np.ndarray, k: int) -> np.ndarray:
        scores = np.asarray(method.score(users).values)
        if scores.shape != (len(users), known.shape[1]):
            raise ValueError(f"{method.name} scored shape {scores.shape}, expected ({len(users)}, {known.shape[1]})")
        return franchise_top_k(scores, k, rules, exclude=known[users], allowed=allowed, tiebreak=tiebreak)
    return rank


def scorer_rankers(scorers: Mapping[str, Method], train_interactions: pd.DataFrame, n_anime: int,
                   n_users: int | None = None, tiebreak: np.ndarray | None = None,
                   allowed: np.ndarray | None = None, rules: FranchiseRules | None = None,
                   also_known: sp.csr_matrix | None = None) -> dict[str, RankFn]:
    """``ranker`` for each method (scoring user rows), excluding each user's training (non-test) anime and
    ``also_known``'s (what users have on their lists beyond the training rows: ``engine_rankers``)."""
    known = interaction_matrix(train_interactions, n_users or n_users_of(train_interactions), n_anime)
    if also_known is not None:
        known = sp.csr_matrix(known + also_known)
    return {name: ranker(method, known, tiebreak, allowed, rules) for name, method in scorers.items()}


def engine_rankers(engine: Any, methods: Sequence[str] | Mapping[str, str],
                   also_known: sp.csr_matrix | None = None) -> dict[str, RankFn]:
    """The serving engine's own ranking for each method (build the engine from ``without_held_out`` artifacts), by
    its name (``methods``: a mapping names the rankers by its keys); ``also_known`` (users x catalogue): what users
    have on their lists beyond the engine's rows (``Recommender.rank_users``)."""
    def ranker_of(method: str) -> RankFn:
        def rank(users: np.ndarray, k: int) -> np.ndarray:
            if also_known is None:
                return engine.rank_users(users, k, method)
            return engine.rank_users(users, k, method, also_known=also_known[users])
        return rank
    names = methods if isinstance(methods, Mapping) else {method: method for method in methods}
    return {name: ranker_of(method) for name, method in names.items()}


def _batches(rank_fn: RankFn, users: np.ndarray, k: int, batch_size: int) -> Iterator[tuple[slice, np.ndarray]]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(users), batch_size):
        batch = slice(start, start + batch_size)
        lists = np.asarray(rank_fn(users[batch], k))
        if lists.shape != (len(users[batch]), k):
            raise ValueError(f"a ranker returned shape {lists.shape}, expected ({len(users[batch])}, {k})")
        yield batch, lists


def recommend_top_k(rank_fn: RankFn, users: np.ndarray, k: int, batch_size: int) -> np.ndarray:
    """The (len(users) x k) top-k lists the evaluator scores; -1 pads short lists."""
    users = np.asarray(users, dtype=np.int64)
    lists = np.empty((len(users), k), dtype=np.int64)
    for batch, top in _batches(rank_fn, users, k, batch_size):
        lists[batch] = top
    return lists


def evaluate_ranker(rank_fn: RankFn, train_interactions: pd.DataFrame, test_interactions: pd.DataFrame,
                    n_anime: int, k: int, batch_size: int, users: np.ndarray | None = None,
                    popularity_rank: np.ndarray | None = None, franchise: np.ndarray | None = None) -> dict[str, float]:
    """Rank the catalogue for each test user and return the metrics of src/evaluation/metrics.py.

    ``train_interactions`` holds every known (non-test) row, ``test_interactions`` the held-out rows; both need
    ``user_index`` and ``anime_index``. ``users`` restricts the evaluation to some test users (default: all).
    ``popularity_rank``: pop_rank per anime when the training rows are not the popularity reference (newcomers).
    ``franchise``: each anime's franchise id, to count ``franchise_repeats``.
    Returns ``hr``, ``recall``, ``ndcg`` (means over users), ``recall_se`` (the standard error of that mean),
    ``coverage``, ``mean_popularity_rank``, ``franchise_repeats`` (given ``franchise``) and ``users``.
    """
    return _evaluate_ranker(rank_fn, train_interactions, test_interactions, n_anime, k, batch_size, users,
                            popularity_rank, franchise)[0]


def _evaluate_ranker(rank_fn: RankFn, train_interactions: pd.DataFrame, test_interactions: pd.DataFrame,
                     n_anime: int, k: int, batch_size: int, users: np.ndarray | None,
                     popularity_rank: np.ndarray | None,
                     franchise: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
    """``evaluate_ranker``'s metrics and each evaluated user's Recall@k (in the order of ``users``)."""
    n_users = n_users_of(train_interactions, test_interactions)
    relevant = interaction_matrix(test_interactions, n_users, n_anime)
    users = held_out_users(test_interactions) if users is None else np.asarray(users, dtype=np.int64)
    users = users[(users >= 0) & (users < n_users)]
    users = users[np.diff(relevant.indptr)[users] > 0]  # metrics are undefined without held-out anime
    if len(users) == 0:
        raise UserError("no users with held-out test ratings: set evaluation.holdout_fraction > 0 and rerun training")
    pop_rank = popularity_ranks(train_interactions, n_anime) if popularity_rank is None else popularity_rank
    per_user = {name: np.empty(len(users)) for name in RANKING_METRICS}
    recommended = np.zeros(n_anime, dtype=bool)
    rank_sum, n_recommended, repeats = 0.0, 0, 0
    for batch, top in _batches(rank_fn, users, k, batch_size):
        relevant_rows = relevant[users[batch]]
        hits = np.take_along_axis(relevant_rows.toarray() > 0, np.maximum(top, 0), axis=1) & (top >= 0)
        for name, values in batch_metrics(hits, np.diff(relevant_rows.indptr), k).items():
            per_user[name][batch] = values
        shown = top[top >= 0]
        recommended[shown] = True
        rank_sum += float(pop_rank[shown].sum())
        n_recommended += shown.size
        if franchise is not None:
            repeats += int(franchise_repeats(top, franchise).sum())
    metrics = {name: float(values.mean()) for name, values in per_user.items()}
    metrics["recall_se"] = standard_error(per_user["recall"])
    metrics["coverage"] = float(recommended.sum() / n_anime)
    metrics["mean_popularity_rank"] = rank_sum / n_recommended if n_recommended else float("nan")
    if franchise is not None:
        metrics["franchise_repeats"] = repeats / len(users)
    metrics["users"] = int(len(users))
    return metrics, per_user["recall"]


def evaluate_methods(rankers: Mapping[str, RankFn], train_interactions: pd.DataFrame,
                     test_interactions: pd.DataFrame, n_anime: int, settings: ProtocolSettings,
                     popularity_rank: np.ndarray | None = None, franchise: np.ndarray | None = None) -> Evaluation:
    """Evaluate every method on the same (seeded) set of test users: their metrics and per-user recalls."""
    users = held_out_users(test_interactions, settings.max_users, settings.seed)
    results, recalls = {}, {}
    for method, rank_fn in rankers.items():
        started = time.perf_counter()
        results[method], recalls[method] = _evaluate_ranker(rank_fn, train_interactions, test_interactions, n_anime,
                                                            settings.k, settings.batch_size, users, popularity_rank,
                                                            franchise)
        logger.info("%s: HR@%d %.4f, Recall@%d %.4f, NDCG@%d %.4f over %d users (%.1f s)", method,
                    settings.k, results[method]["hr"], settings.k, results[method]["recall"], settings.k,
                    results[method]["ndcg"], results[method]["users"], time.perf_counter() - started)
    return Evaluation(results, recalls)


def without_held_out(artifacts: ModelArtifacts) -> ModelArtifacts:
    """The same artifacts with the test rows dropped from ``user_ratings``: what an engine may know offline.

    The serving engine builds user profiles and neighbour preferences from every row it is given; an engine
    built from the full artifacts would see the held-out anime it is being evaluated on.
    """
    ratings = artifacts.user_ratings
    return dataclasses.replace(artifacts, user_ratings=ratings[ratings["split"].to_numpy() != SPLIT_TEST])
