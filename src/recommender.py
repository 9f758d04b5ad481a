"""The serving engine: one in-memory recommender per process, composed from the parts in src/engine/.

Everything a request needs is built once from the model artifacts (normalised embeddings, per-user known and
preferred anime, the catalogue), so a request is a few matrix products plus a top-n cut; nothing here reads a
file after construction, and the object is read-only, hence thread-safe.

Public methods take MyAnimeList ids and check their input (src/engine/validation.py). The offline API
(``score_users``, ``rank_users``) takes model rows and is what evaluation calls: it runs the very scorers,
hybrid and ranking that serving runs, so an offline figure is a figure of what is served.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from config.paths_config import model_dir
from src.artifacts import ModelArtifacts, l2_normalise, load_model_artifacts
from src.engine import validation
from src.engine.catalogue import Catalogue, Filters
from src.engine.explanations import recommendation_reasons, similar_anime_reasons
from src.engine.hybrid import Hybrid, HybridScores
from src.engine.interactions import Interactions, Profiles
from src.engine.ranking import top_k, top_k_row
from src.engine.scorers import EmbeddingContentScorer, NeighbourScorer
from src.engine.serving_config import ServingConfig
from src.engine.title_index import EXACT, PREFIX
from src.engine.validation import InvalidRequestError, UnknownAnimeError, UnknownUserError
from src.errors import ArtifactError
from src.logger import get_logger

__all__ = ["Filters", "Recommender", "ServingConfig"]

logger = get_logger(__name__)

# "user" and "content" alone, and their mix: the methods serving offers and evaluation measures.
METHODS = ("user", "content", "hybrid")
_MATCH_LABELS = {EXACT: "title is", PREFIX: "title starts with"}


class Recommender:
    """Hybrid anime recommender over preloaded embeddings."""

    def __init__(self, artifacts: ModelArtifacts, config: ServingConfig) -> None:
        self.config = config
        self.user_ids = np.asarray(artifacts.user_ids, dtype=np.int64)
        self._user_position = _position_map(self.user_ids, "user_ids.json")
        _position_map(artifacts.anime_ids, "anime_ids.json")
        # Re-normalising is cheap and makes cosine = dot product even if a writer forgot to.
        self.user_embeddings = l2_normalise(artifacts.user_embeddings)
        self.anime_embeddings = l2_normalise(artifacts.anime_embeddings)
        self.catalogue = Catalogue(artifacts.anime, artifacts.anime_ids)
        self.interactions = Interactions(artifacts.user_ratings, len(self.user_ids), len(self.catalogue),
                                         config.preference_percentile)
        self.neighbours = NeighbourScorer(self.user_embeddings, self.anime_embeddings, self.interactions,
                                          self.catalogue, config.similar_users, config.genre_boost,
                                          config.preferred_genres)
        self.hybrid = Hybrid({"user": self.neighbours, "content": EmbeddingContentScorer(self.anime_embeddings)})
        self.manifest = artifacts.manifest
        logger.info("recommender ready: %d users, %d anime, %d known interactions, %d genres",
                    self.n_users, self.n_anime, len(self.interactions), len(self.genres))

    @classmethod
    def from_folder(cls, folder: str | Path | None, config: ServingConfig) -> Recommender:
        """Load the artifacts in ``folder`` (default: the model dir) and build the engine; raises ArtifactError."""
        return cls(load_model_artifacts(Path(folder) if folder is not None else model_dir()), config)

    # ------------------------------------------------------------------ lookups
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_anime(self) -> int:
        return len(self.catalogue)

    @property
    def anime_ids(self) -> np.ndarray:
        return self.catalogue.anime_ids

    @property
    def genres(self) -> tuple[str, ...]:
        return self.catalogue.genres

    @property
    def types(self) -> tuple[str, ...]:
        return self.catalogue.types

    def user_index(self, user_id: int) -> int:
        """Model row of a MyAnimeList user id; raises UnknownUserError."""
        position = self._user_position.get(int(user_id))
        if position is None:
            raise UnknownUserError(f"user {user_id} is not in the model: check the id, or pick a few anime you "
                                   "liked to get favourites-based recommendations")
        return position

    def anime_index(self, anime_id: int) -> int:
        """Catalogue index of a MyAnimeList anime id; raises UnknownAnimeError."""
        position = self.catalogue.index_of(anime_id)
        if position is None:
            raise UnknownAnimeError(f"anime {anime_id} is not in the model: search a title to find a valid id")
        return position

    def anime(self, anime_id: int) -> dict[str, Any]:
        """The metadata item of one anime (with an empty reasons list)."""
        return self.catalogue.item(self.anime_index(anime_id))

    def preferred_genres(self, user_id: int) -> tuple[str, ...]:
        """The genres most frequent among the anime the user rated at or above their own preference percentile."""
        profiles = self.interactions.profiles([self.user_index(user_id)])
        return self.catalogue.top_genres(profiles.preferred, self.config.preferred_genres)[0]

    def preferred_anime(self, user_id: int) -> list[tuple[int, float]]:
        """[(anime id, rating)] the user rated at or above their own preference percentile, best first."""
        anime, ratings = self.interactions.profiles([self.user_index(user_id)]).preferred_of(0)
        return [(int(self.anime_ids[j]), float(r)) for j, r in zip(anime, ratings)]

    def similar_users(self, user_id: int, k: int | None = None) -> list[tuple[int, float]]:
        """[(user id, cosine)] of the ``k`` users closest to ``user_id`` (default ``similar_users``), closest first."""
        k = validation.check_n(k if k is not None else self.config.similar_users, self.config, "k")
        nearest, similarity = self.neighbours.nearest_users(self.interactions.profiles([self.user_index(user_id)]), k)
        return [(int(self.user_ids[row]), round(float(value), 4))
                for row, value in zip(nearest[0], similarity[0]) if row >= 0]

    # ------------------------------------------------------------------ recommendations
    def recommend_for_user(self, user_id: int, n: int | None = None, user_weight: float | None = None,
                           content_weight: float | None = None, filters: Filters | None = None) -> list[dict[str, Any]]:
        """Top-n hybrid recommendations for a known user, never anything they already rated or watched."""
        n = validation.check_n(self.config.default_n if n is None else n, self.config)
        profiles = self.interactions.profiles([self.user_index(user_id)])
        return self._recommend(profiles, n, validation.weights(user_weight, content_weight, self.config), filters)

    def recommend_from_favourites(self, liked_anime_ids: Sequence[int], n: int | None = None,
                                  user_weight: float | None = None, content_weight: float | None = None,
                                  filters: Filters | None = None) -> list[dict[str, Any]]:
        """Cold start without retraining: the liked anime make a profile, recommended for like a user's.

        Ids the catalogue does not know are skipped (``unknown_anime`` lists them); only when none is known is
        the request refused.
        """
        n = validation.check_n(self.config.default_n if n is None else n, self.config)
        liked = validation.check_liked(liked_anime_ids, self.config)
        known = [self.catalogue.index_of(anime_id) for anime_id in liked if self.catalogue.index_of(anime_id) is not None]
        if not known:
            raise UnknownAnimeError(f"none of the anime id(s) {', '.join(map(str, liked[:10]))} is known: "
                                    "search a title to find valid ids")
        profiles = Profiles.from_favourites([np.array(known)], self.n_anime)
        return self._recommend(profiles, n, validation.weights(user_weight, content_weight, self.config), filters)

    def unknown_anime(self, anime_ids: Sequence[int]) -> list[int]:
        """The ids among ``anime_ids`` that the catalogue does not have, in the order given."""
        return [int(anime_id) for anime_id in anime_ids if self.catalogue.index_of(anime_id) is None]

    def similar_anime(self, anime_id: int, n: int | None = None, filters: Filters | None = None) -> list[dict[str, Any]]:
        """The n anime closest to ``anime_id`` by cosine over anime embeddings, itself excluded."""
        n = validation.check_n(self.config.default_n if n is None else n, self.config)
        index = self.anime_index(anime_id)
        similarity = self.anime_embeddings @ self.anime_embeddings[index]
        top = top_k_row(similarity, n, exclude=np.array([index]), allowed=self.catalogue.filter_mask(filters),
                        tiebreak=self.catalogue.popularity_order)
        items = []
        for j, reasons in zip(top, similar_anime_reasons(top, similarity, index, self.catalogue)):
            item = self.catalogue.item(int(j), reasons)
            item["similarity"] = round(float(similarity[j]), 4)
            items.append(item)
        return items

    def search(self, query: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Titles (original or English) matching ``query``: exact, then prefix, then substring; popular first."""
        limit = validation.check_n(self.config.default_n if limit is None else limit, self.config, "limit")
        query = validation.check_query(query, self.config)
        return [self.catalogue.item(j, [f'{_MATCH_LABELS.get(kind, "title contains")} "{query.strip()}"'])
                for j, kind in self.catalogue.search(query, limit)]

    def _recommend(self, profiles: Profiles, n: int, weights: tuple[float, float],
                   filters: Filters | None) -> list[dict[str, Any]]:
        mask = self.catalogue.filter_mask(filters)
        scores = self.hybrid.score(profiles, self._component_weights("hybrid", weights))
        top = top_k(scores.total, n, exclude=profiles.known, allowed=mask, tiebreak=self.catalogue.popularity_order)[0]
        top = top[top >= 0]
        return self._explain(top, scores, profiles)

    def _explain(self, top: np.ndarray, scores: HybridScores, profiles: Profiles) -> list[dict[str, Any]]:
        preferred, ratings = profiles.preferred_of(0)
        genres = self.catalogue.top_genres(profiles.preferred, self.config.preferred_genres)[0]
        reasons = recommendation_reasons(top, scores, 0, preferred, ratings, genres, self.catalogue,
                                         self.anime_embeddings, profiles.is_newcomer)
        items = []
        for j, item_reasons in zip(top, reasons):
            item = self.catalogue.item(int(j), item_reasons)
            item["match"] = round(float(scores.total[0, j]), 4)
            items.append(item)
        return items

    # ------------------------------------------------------------------ offline API (model rows, no validation of ids)
    def score_users(self, user_rows: Sequence[int] | np.ndarray, method: str = "hybrid",
                    user_weight: float | None = None, content_weight: float | None = None) -> np.ndarray:
        """(len(user_rows) x n_anime) float32 scores in [0, 1] that serving ranks by; known anime NOT masked."""
        weights = self._component_weights(method, validation.weights(user_weight, content_weight, self.config))
        return self.hybrid.score(self.interactions.profiles(user_rows), weights).total

    def rank_users(self, user_rows: Sequence[int] | np.ndarray, k: int, method: str = "hybrid") -> np.ndarray:
        """(len(user_rows) x k) anime indices exactly as serving ranks them (known anime excluded), -1 padded."""
        profiles = self.interactions.profiles(user_rows)
        scores = self.hybrid.score(profiles, self._component_weights(method, validation.weights(None, None, self.config)))
        return top_k(scores.total, k, exclude=profiles.known, tiebreak=self.catalogue.popularity_order)

    def _component_weights(self, method: str, weights: tuple[float, float]) -> dict[str, float]:
        if method not in METHODS:
            raise InvalidRequestError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
        if method != "hybrid":
            return {method: 1.0}
        return {"user": weights[0], "content": weights[1]}


def _position_map(ids: np.ndarray, source: str) -> dict[int, int]:
    positions = {int(value): index for index, value in enumerate(ids)}
    if len(positions) != len(ids):
        raise ArtifactError(f"{source} lists an id more than once; the id maps must be unique: retrain")
    return positions
