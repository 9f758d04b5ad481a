"""Baselines fitted on the training rows, and the NCF's own score, as batch scorers.

A scorer is ``score_fn(user_rows) -> (len(user_rows) x n_anime)`` scores, higher is better, NaN = never.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from src.artifacts import l2_normalise
from src.evaluation.metrics import interaction_counts
from src.logger import get_logger

logger = get_logger(__name__)

ScoreFn = Callable[[np.ndarray], np.ndarray]


def interaction_matrix(interactions: pd.DataFrame, n_users: int, n_anime: int) -> sp.csr_matrix:
    """Binary users x anime CSR matrix: 1 where the user has any row for the anime."""
    users = interactions["user_index"].to_numpy(np.int64)
    anime = interactions["anime_index"].to_numpy(np.int64)
    matrix = sp.csr_matrix((np.ones(len(users), np.float32), (users, anime)), shape=(n_users, n_anime))
    matrix.data[:] = 1.0  # duplicates were summed; presence is what counts
    return matrix


def n_users_of(*frames: pd.DataFrame) -> int:
    return int(max((frame["user_index"].max() for frame in frames if len(frame)), default=-1)) + 1


def _check_users(users: np.ndarray, n_rows: int, what: str) -> np.ndarray:
    users = np.asarray(users, dtype=np.int64)
    if users.size and (users.min() < 0 or users.max() >= n_rows):
        raise ValueError(f"user index outside the {n_rows} users {what} knows; build it with n_users covering the test users")
    return users


def popularity_scorer(train_interactions: pd.DataFrame, n_anime: int) -> ScoreFn:
    """Score = number of users with a training interaction with the anime, the same list for everyone."""
    counts = interaction_counts(train_interactions, n_anime).astype(np.float64)

    def score(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(counts, (len(users), n_anime))
    return score


def item_similarity(train_matrix: sp.csr_matrix, block_size: int = 1024) -> np.ndarray:
    """Dense float32 cosine similarity between anime columns of a binary users x anime matrix, zero diagonal.

    sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|), with U_i the users who interacted with anime i. Built in column
    blocks so the sparse intermediate never exceeds n_anime x block_size entries.
    """
    counts = np.asarray(train_matrix.sum(axis=0)).ravel()
    inverse_norms = np.divide(1.0, np.sqrt(counts), out=np.zeros_like(counts, dtype=np.float64), where=counts > 0)
    normalised = sp.csc_matrix(train_matrix @ sp.diags(inverse_norms))
    transposed = normalised.T.tocsr()
    n_anime = train_matrix.shape[1]
    similarity = np.zeros((n_anime, n_anime), dtype=np.float32)
    for start in range(0, n_anime, block_size):
        stop = min(start + block_size, n_anime)
        similarity[:, start:stop] = (transposed @ normalised[:, start:stop]).toarray()
    np.fill_diagonal(similarity, 0.0)  # an anime is not its own neighbour
    return similarity


def item_knn_scorer(train_interactions: pd.DataFrame, n_anime: int, n_users: int | None = None) -> ScoreFn:
    """Score(u, j) = sum of cosine similarities between anime j and the anime in u's training rows."""
    n_users = n_users or n_users_of(train_interactions)
    train_matrix = interaction_matrix(train_interactions, n_users, n_anime)
    similarity = item_similarity(train_matrix)

    def score(users: np.ndarray) -> np.ndarray:
        users = _check_users(users, n_users, "the item-kNN scorer")
        return np.asarray(train_matrix[users] @ similarity)
    return score


def als_scorer(train_interactions: pd.DataFrame, n_anime: int, n_users: int | None = None, factors: int = 64,
               regularization: float = 0.05, alpha: float = 1.0, iterations: int = 15, seed: int = 42) -> ScoreFn:
    """Implicit-feedback ALS (benfred/implicit) on the binary training matrix, confidence 1 + alpha."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    n_users = n_users or n_users_of(train_interactions)
    model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                    iterations=iterations, random_state=seed, use_gpu=False)
    # implicit parallelises itself; BLAS threads on top of its own only contend (its own warning says so)
    with threadpool_limits(1, "blas"):
        model.fit(interaction_matrix(train_interactions, n_users, n_anime), show_progress=False)
    user_factors, item_factors = np.asarray(model.user_factors), np.asarray(model.item_factors)

    def score(users: np.ndarray) -> np.ndarray:
        return user_factors[_check_users(users, n_users, "the ALS scorer")] @ item_factors.T
    return score


def embedding_scorer(user_embeddings: np.ndarray, anime_embeddings: np.ndarray) -> ScoreFn:
    """The NCF "direct" score: cosine of the user's and the anime's embedding (rows are re-normalised)."""
    user_embeddings, anime_embeddings = l2_normalise(user_embeddings), l2_normalise(anime_embeddings)

    def score(users: np.ndarray) -> np.ndarray:
        return user_embeddings[_check_users(users, len(user_embeddings), "the embedding scorer")] @ anime_embeddings.T
    return score


def baseline_scorers(train_interactions: pd.DataFrame, n_anime: int, n_users: int | None = None,
                     seed: int = 42) -> dict[str, ScoreFn]:
    """Popularity, item-kNN and ALS, all fitted on the training rows."""
    return {
        "popularity": popularity_scorer(train_interactions, n_anime),
        "item_knn": item_knn_scorer(train_interactions, n_anime, n_users),
        "als": als_scorer(train_interactions, n_anime, n_users, seed=seed),
    }
