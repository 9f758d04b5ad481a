"""Baselines fitted on the training rows, and the NCF's own score.

The item-based baselines (popularity, item-kNN, EASE) score from a person's interaction row alone, so the same
fitted model scores known users (their training row) and newcomers (their favourites). ALS and the NCF score by
user row. A *scorer* is ``score_fn(user_rows) -> (len(user_rows) x n_anime)`` scores, higher is better.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from src.engine.scorers import rows_times
from src.models.ease import ease_weights, gram, keep_top_neighbours, most_rated
from src.store.artifacts import l2_normalise

ScoreFn = Callable[[np.ndarray], np.ndarray]
RowScoreFn = Callable[[sp.csr_matrix], np.ndarray]


def n_users_of(*frames: pd.DataFrame) -> int:
    return int(max((frame["user_index"].max() for frame in frames if len(frame)), default=-1)) + 1


def by_user(score_rows: RowScoreFn, matrix: sp.csr_matrix) -> ScoreFn:
    """A row-based scorer applied to the users' rows of ``matrix``."""
    def score(users: np.ndarray) -> np.ndarray:
        return score_rows(matrix[_check_users(users, matrix.shape[0], "the interaction matrix")])
    return score


def _check_users(users: np.ndarray, n_rows: int, what: str) -> np.ndarray:
    users = np.asarray(users, dtype=np.int64)
    if users.size and (users.min() < 0 or users.max() >= n_rows):
        raise ValueError(f"user index outside the {n_rows} users {what} knows; "
                         "build it with n_users covering the test users")
    return users


def popularity(matrix: sp.csr_matrix) -> RowScoreFn:
    """Score = number of users with a training interaction with the anime, the same list for everyone."""
    counts = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()
    return lambda rows: np.broadcast_to(counts, (rows.shape[0], len(counts)))


def item_similarity(matrix: sp.csr_matrix, shrink: float = 0.0, neighbours: int | None = None
                    ) -> np.ndarray | sp.csr_matrix:
    """Cosine similarity between the anime columns of a users x anime matrix, zero diagonal: dense float32, or
    with ``neighbours`` each anime (column) keeping only its that many most similar anime, as sparse CSR.

    sim(i, j) = x_i · x_j / (|x_i| |x_j| + shrink), with x_i anime i's column; shrinkage damps pairs seen by few
    users.
    """
    return keep_neighbours(cosine_similarity(matrix, shrink), neighbours)


def cosine_similarity(matrix: sp.csr_matrix, shrink: float = 0.0, block_rows: int = 2048) -> np.ndarray:
    """The dense float32 (shrunk) cosine similarity of ``item_similarity``, without pruning: one per values and
    shrink serves every neighbour count of a search. Normalised in place, a block of rows at a time."""
    similarity = gram(matrix)
    norms = np.sqrt(np.diag(similarity)).copy()
    for start in range(0, len(similarity), block_rows):
        rows = slice(start, start + block_rows)
        similarity[rows] /= np.outer(norms[rows], norms) + np.float32(shrink + 1e-9)
    np.fill_diagonal(similarity, 0.0)  # an anime is not its own neighbour
    return similarity


def keep_neighbours(similarity: np.ndarray, neighbours: int | None) -> np.ndarray | sp.csr_matrix:
    """``similarity`` as it is (no limit, or one above the anime count), or each column's ``neighbours`` largest
    entries as sparse CSR (a similarity is never negative, so largest = strongest)."""
    if not neighbours or neighbours >= len(similarity):
        return similarity
    return keep_top_neighbours(similarity, int(neighbours))


def item_knn(matrix: sp.csr_matrix, shrink: float = 0.0, neighbours: int | None = None,
             similarity: np.ndarray | None = None) -> RowScoreFn:
    """Score(u, j) = sum over u's anime i of sim(i, j). ``similarity``: the matrix's ``cosine_similarity`` with
    this shrink, when it was already computed (a search over neighbour counts)."""
    dense = cosine_similarity(matrix, shrink) if similarity is None else similarity
    pruned = keep_neighbours(dense, neighbours)
    return lambda rows: rows_times(rows, pruned)


def ease(matrix: sp.csr_matrix, regularisation: float, max_anime: int | None = None) -> RowScoreFn:
    """EASE (src/models/ease.py), dense: Score(u) = x_u · B, over the ``max_anime`` most-rated anime (all when None;
    the others score -inf) as the engine's item-item part is fitted."""
    support = most_rated(matrix, max_anime)
    weights = ease_weights(matrix[:, support], regularisation)
    if len(support) == matrix.shape[1]:
        return lambda rows: rows_times(rows, weights)

    def score(rows: sp.csr_matrix) -> np.ndarray:
        scores = np.full((rows.shape[0], matrix.shape[1]), -np.inf, np.float32)
        scores[:, support] = rows_times(rows[:, support], weights)
        return scores
    return score


def als(matrix: sp.csr_matrix, factors: int, regularization: float, alpha: float, iterations: int,
        seed: int) -> ScoreFn:
    """Implicit-feedback ALS (benfred/implicit) on the binary training matrix, confidence 1 + alpha; by user row."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises itself; BLAS threads on top of its own only contend (its own warning says so)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                        iterations=iterations, random_state=seed, use_gpu=False)
        model.fit(matrix, show_progress=False)
    user_factors, item_factors = np.asarray(model.user_factors), np.asarray(model.item_factors)

    def score(users: np.ndarray) -> np.ndarray:
        return user_factors[_check_users(users, len(user_factors), "the ALS scorer")] @ item_factors.T
    return score


def embedding_scorer(user_embeddings: np.ndarray, anime_embeddings: np.ndarray) -> ScoreFn:
    """The NCF "direct" score: cosine of the user's and the anime's embedding (rows are re-normalised)."""
    user_embeddings, anime_embeddings = l2_normalise(user_embeddings), l2_normalise(anime_embeddings)

    def score(users: np.ndarray) -> np.ndarray:
        return user_embeddings[_check_users(users, len(user_embeddings), "the embedding scorer")] @ anime_embeddings.T
    return score
