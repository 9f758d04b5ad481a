"""Baselines fitted on the training rows, and the NCF's own score: each one a method (src/models/method.py).

A baseline is fitted by its class's ``fit(matrix, **setting)`` (the setting's options, and a ``seed`` for one
fitted at random: ``seeded``, ALS), then scores a batch with ``score``. The item-based baselines (popularity,
item-kNN, EASE) score from a person's interaction row alone (``takes == "rows"``), so the same fitted model scores
known users (their training row) and newcomers (their favourites). ALS and the NCF's embeddings score by user row
(``takes == "users"``). ``ByUser`` scores a row baseline by user row; ``OnCatalogue`` widens a method fitted on the
model's rated anime to the whole catalogue.

``BASELINES`` names the tuned baselines, in the report's order: the evaluation tunes on the carve, fits and reports
each one given a grid of settings in the config's ``evaluation.baselines`` (popularity needs none; EASE's come from
the hybrid's own search), and tests/test_method_contract.py holds each to the contract. Adding one is a class here,
its entry there and its grid.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from src.engine.scorers import over_catalogue, rows_times
from src.models.ease import ease_weights, gram, keep_top_neighbours, most_rated
from src.models.method import Method, Scores
from src.store.artifacts import l2_normalise


def n_users_of(*frames: pd.DataFrame) -> int:
    return int(max((frame["user_index"].max() for frame in frames if len(frame)), default=-1)) + 1


def _check_users(users: np.ndarray, n_rows: int, what: str) -> np.ndarray:
    users = np.asarray(users, dtype=np.int64)
    if users.size and (users.min() < 0 or users.max() >= n_rows):
        raise ValueError(f"user index outside the {n_rows} users {what} knows; "
                         "build it with n_users covering the test users")
    return users


class Popularity:
    """Score = number of users with a training interaction with the anime, the same list for everyone."""

    name, takes, seeded = "popularity", "rows", False

    def __init__(self, counts: np.ndarray) -> None:
        self.counts, self.width = counts, len(counts)

    @classmethod
    def fit(cls, matrix: sp.csr_matrix) -> Popularity:
        return cls(np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel())

    def score(self, rows: sp.csr_matrix) -> Scores:
        return Scores(np.broadcast_to(self.counts, (rows.shape[0], self.width)))


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


class ItemKNN:
    """Score(u, j) = sum over u's anime i of sim(i, j), the (shrunk, pruned) cosine of ``item_similarity``."""

    name, takes, seeded = "item_knn", "rows", False

    def __init__(self, similarity: np.ndarray | sp.csr_matrix) -> None:
        self.similarity, self.width = similarity, similarity.shape[1]

    @classmethod
    def fit(cls, matrix: sp.csr_matrix, shrink: float = 0.0, neighbours: int | None = None,
            similarity: np.ndarray | None = None) -> ItemKNN:
        """``similarity``: the matrix's ``cosine_similarity`` with this shrink, when it was already computed (a
        search over neighbour counts)."""
        dense = cosine_similarity(matrix, shrink) if similarity is None else similarity
        return cls(keep_neighbours(dense, neighbours))

    def score(self, rows: sp.csr_matrix) -> Scores:
        return Scores(rows_times(rows, self.similarity))


class EASE:
    """EASE (src/models/ease.py), dense: Score(u) = x_u · B, over the ``max_anime`` most-rated anime (all when None;
    the others score -inf) as the engine's item-item part is fitted."""

    name, takes, seeded = "ease", "rows", False

    def __init__(self, weights: np.ndarray, support: np.ndarray, width: int) -> None:
        self.weights, self.support, self.width = weights, support, width

    @classmethod
    def fit(cls, matrix: sp.csr_matrix, regularisation: float, max_anime: int | None = None) -> EASE:
        support = most_rated(matrix, max_anime)
        return cls(ease_weights(matrix[:, support], regularisation), support, matrix.shape[1])

    def score(self, rows: sp.csr_matrix) -> Scores:
        if len(self.support) == self.width:
            return Scores(rows_times(rows, self.weights))
        scores = np.full((rows.shape[0], self.width), -np.inf, np.float32)
        scores[:, self.support] = rows_times(rows[:, self.support], self.weights)
        return Scores(scores)


class ALS:
    """Implicit-feedback ALS (benfred/implicit) on the binary training matrix, confidence 1 + alpha; by user row."""

    name, takes, seeded = "als", "users", True

    def __init__(self, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        self.user_factors, self.item_factors, self.width = user_factors, item_factors, len(item_factors)

    @classmethod
    def fit(cls, matrix: sp.csr_matrix, factors: int, regularization: float, alpha: float, iterations: int,
            seed: int) -> ALS:
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # implicit parallelises itself; BLAS threads on top of its own only contend (its own warning says so)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                            iterations=iterations, random_state=seed, use_gpu=False)
            model.fit(matrix, show_progress=False)
        return cls(np.asarray(model.user_factors), np.asarray(model.item_factors))

    def score(self, users: np.ndarray) -> Scores:
        return Scores(self.user_factors[_check_users(users, len(self.user_factors), "the ALS scorer")]
                      @ self.item_factors.T)


class EmbeddingCosine:
    """The NCF "direct" score: cosine of the user's and the anime's embedding (rows are re-normalised); built from
    embeddings trained elsewhere (the original design's NCF)."""

    name, takes = "embedding_cosine", "users"

    def __init__(self, user_embeddings: np.ndarray, anime_embeddings: np.ndarray) -> None:
        self.user_embeddings, self.anime_embeddings = l2_normalise(user_embeddings), l2_normalise(anime_embeddings)
        self.width = len(self.anime_embeddings)

    def score(self, users: np.ndarray) -> Scores:
        rows = _check_users(users, len(self.user_embeddings), "the embedding scorer")
        return Scores(self.user_embeddings[rows] @ self.anime_embeddings.T)


# The tuned baselines by name (the config's and the report's), in the report's order.
BASELINES: dict[str, type[Popularity | ItemKNN | ALS | EASE]] = {
    baseline.name: baseline for baseline in (Popularity, ItemKNN, ALS, EASE)}
# The ones that score a person's row alone, so a newcomer's favourites or an imported list too.
ROW_BASELINES = tuple(name for name, baseline in BASELINES.items() if baseline.takes == "rows")


class ByUser:
    """A row method scoring users: each user's row of ``matrix`` (what the method was fitted on)."""

    takes = "users"

    def __init__(self, method: Method[sp.csr_matrix], matrix: sp.csr_matrix) -> None:
        self.method, self.matrix, self.name, self.width = method, matrix, method.name, method.width

    def score(self, users: np.ndarray) -> Scores:
        return self.method.score(self.matrix[_check_users(users, self.matrix.shape[0], "the interaction matrix")])


class OnCatalogue:
    """A method fitted on the model's rated anime (the catalogue's first ``method.width``), scoring the catalogue
    (``width`` wide): the anime without ratings get -inf, as a baseline has nothing to say about them, and rows
    given catalogue-wide are cut to the method's anime."""

    def __init__(self, method: Method, width: int) -> None:
        self.method, self.name, self.takes, self.width = method, method.name, method.takes, width

    def score(self, who: np.ndarray | sp.csr_matrix) -> Scores:
        if self.takes == "rows":
            who = sp.csr_matrix(who[:, :self.method.width])
        return Scores(over_catalogue(np.asarray(self.method.score(who).values), self.width))
