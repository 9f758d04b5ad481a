"""Scorers: one object per signal, each scoring every anime of the catalogue for a batch of profiles.

A scorer's ``score(profiles)`` returns ``ComponentScores``: an (n x anime) array, higher is better, plus the
evidence its reasons need. Scorers never mask what a user already has and never rank: the hybrid mixes them,
and ranking (src/engine/ranking.py) cuts the top n. Adding a signal is adding a scorer here and a weight.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from src.engine.catalogue import Catalogue
from src.engine.interactions import Interactions, Profiles
from src.engine.ranking import top_k


@dataclass
class ComponentScores:
    values: np.ndarray  # (n profiles x n anime)
    evidence: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    name: str

    def score(self, profiles: Profiles) -> ComponentScores: ...


def l2_normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


class NeighbourScorer:
    """User-based: how many of the most similar users prefer each anime, boosted by the profile's genres.

    Similar users are the nearest by cosine of the NCF user embeddings; a newcomer is placed among them by the
    normalised mean of their favourites' anime embeddings. Score = count x (1 + genre_boost x share of the
    anime's genres among the profile's ``preferred_genres`` most frequent genres).
    """

    name = "user"

    def __init__(self, user_embeddings: np.ndarray, anime_embeddings: np.ndarray, interactions: Interactions,
                 catalogue: Catalogue, neighbours: int, genre_boost: float, preferred_genres: int) -> None:
        self.user_embeddings, self.anime_embeddings = user_embeddings, anime_embeddings
        self.catalogue = catalogue
        self.neighbours, self.genre_boost, self.preferred_genres = neighbours, genre_boost, preferred_genres
        self._preferred = interactions.preferred.sign().astype(np.float32).tocsr()

    def vectors(self, profiles: Profiles) -> np.ndarray:
        """Each profile's position among the users: its own embedding, or its favourites' folded in."""
        if not profiles.is_newcomer:
            return self.user_embeddings[profiles.user_rows]
        return l2_normalise_rows(np.asarray(profiles.preferred.sign() @ self.anime_embeddings))

    def nearest_users(self, profiles: Profiles, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows x k) nearest user rows (a user is never their own neighbour) and their cosine similarities."""
        similarity = self.vectors(profiles) @ self.user_embeddings.T
        if not profiles.is_newcomer:
            similarity[np.arange(len(profiles)), profiles.user_rows] = -np.inf
        k = min(k or self.neighbours, len(self.user_embeddings) - (0 if profiles.is_newcomer else 1))
        if k <= 0:
            empty = np.zeros((len(profiles), 0), np.int64)
            return empty, empty.astype(np.float32)
        nearest = top_k(similarity, k)
        return nearest, np.take_along_axis(similarity, np.maximum(nearest, 0), axis=1)

    def score(self, profiles: Profiles) -> ComponentScores:
        nearest, _ = self.nearest_users(profiles)
        rows = np.repeat(np.arange(len(profiles)), nearest.shape[1])
        chosen = nearest.ravel()
        keep = chosen >= 0
        indicator = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], chosen[keep])),
                                  shape=(len(profiles), len(self.user_embeddings)))
        counts = np.asarray((indicator @ self._preferred).todense())
        values = counts
        if self.genre_boost > 0:
            genres = self.catalogue.top_genres(profiles.preferred, self.preferred_genres)
            values = counts * (1.0 + self.genre_boost * self.catalogue.genre_share(genres))
        return ComponentScores(values.astype(np.float32), {"neighbour_counts": counts.astype(np.int32),
                                                           "neighbours": nearest.shape[1]})


class EmbeddingContentScorer:
    """Content by embedding: the cosine of each anime to the sum of the profile's preferred anime's embeddings
    (up to a positive factor, the mean cosine to the preferred anime)."""

    name = "content"

    def __init__(self, anime_embeddings: np.ndarray) -> None:
        self.anime_embeddings = anime_embeddings

    def score(self, profiles: Profiles) -> ComponentScores:
        profile_vectors = np.asarray(profiles.preferred.sign() @ self.anime_embeddings)
        return ComponentScores((profile_vectors @ self.anime_embeddings.T).astype(np.float32))
