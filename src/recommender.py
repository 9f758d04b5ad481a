"""The serving engine: one in-memory recommender per process, built once from the model artifacts.

Everything a request needs is precomputed at load time as numpy arrays (normalised embeddings, per-user
CSR-style slices of known and preferred anime, a genre matrix, a title index), so a request is a couple of
matrix-vector products plus a top-n cut. Nothing here reads a file after ``Recommender.__init__``.

Scores: every component (user-based, content-based) is scaled to [0, 1] by dividing by its maximum over the
whole catalogue, and the hybrid is their weighted mean, so the weights mix comparable numbers.
``score_catalogue`` exposes exactly the scores serving ranks by, for offline evaluation.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from config.paths_config import CONFIG_PATH, model_dir
from src.artifacts import ModelArtifacts, l2_normalise, load_model_artifacts
from src.errors import ArtifactError, UserError
from src.logger import get_logger
from utils.common_functions import read_yaml

logger = get_logger(__name__)

METHODS = ("user", "content", "hybrid")
# Ranking ties (e.g. many anime nobody similar prefers) are broken by popularity, far below any real difference.
_POPULARITY_TIEBREAK = 1e-6
_REASON_TITLES = 3
# Below this cosine, "similar to X" would be a stretch; such items are explained by other reasons.
_MIN_REASON_SIMILARITY = 0.25


class RecommendationError(UserError):
    """A request the engine cannot answer; the message says how to fix it."""


class UnknownUserError(RecommendationError):
    """The user id is not in the model."""


class UnknownAnimeError(RecommendationError):
    """An anime id is not in the model."""


class InvalidRequestError(RecommendationError):
    """A parameter is out of range or names an unknown genre or type."""


@dataclass(frozen=True)
class ServingConfig:
    """The ``serving:`` section of config/config.yaml."""

    similar_users: int = 10
    preference_percentile: float = 75.0
    genre_boost: float = 0.5
    preferred_genres: int = 5
    default_n: int = 10
    max_n: int = 100
    user_weight: float = 0.5
    content_weight: float = 0.5
    max_liked: int = 50
    max_query_length: int = 100

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any] | None) -> ServingConfig:
        known = {f.name: f.type for f in fields(cls)}
        values = {key: value for key, value in (mapping or {}).items() if key in known}
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path = CONFIG_PATH) -> ServingConfig:
        return cls.from_mapping(read_yaml(path).get("serving"))

    def validate(self) -> None:
        problems = []
        if not (isinstance(self.similar_users, int) and self.similar_users >= 1):
            problems.append("similar_users must be an integer >= 1")
        if not (0 <= float(self.preference_percentile) <= 100):
            problems.append("preference_percentile must be between 0 and 100")
        if not (float(self.genre_boost) >= 0):
            problems.append("genre_boost must be >= 0")
        if not (isinstance(self.max_n, int) and 1 <= self.default_n <= self.max_n):
            problems.append("default_n must be between 1 and max_n")
        if not (float(self.user_weight) >= 0 and float(self.content_weight) >= 0
                and float(self.user_weight) + float(self.content_weight) > 0):
            problems.append("user_weight and content_weight must be >= 0 and not both 0")
        if not (isinstance(self.max_liked, int) and self.max_liked >= 1):
            problems.append("max_liked must be an integer >= 1")
        if problems:
            raise UserError("config.yaml serving section: " + "; ".join(problems))


@dataclass(frozen=True)
class Filters:
    """Catalogue filters, applied before the top-n cut. Genres: an anime must have every one listed."""

    genres: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    min_score: float | None = None

    def is_empty(self) -> bool:
        return not (self.genres or self.types or self.year_from is not None or self.year_to is not None
                    or self.min_score is not None)


@dataclass(frozen=True)
class UserPreferences:
    """What a user (or a favourites profile) prefers: anime indices best first, and top genres."""

    anime_indices: np.ndarray
    ratings: np.ndarray
    genres: tuple[str, ...]
    threshold: float | None = None


@dataclass
class _Scores:
    """The components behind a ranking, kept so reasons can be written for the top items only."""

    user: np.ndarray
    content: np.ndarray
    hybrid: np.ndarray
    neighbour_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    n_neighbours: int = 0


class Recommender:
    """Hybrid anime recommender over preloaded embeddings; thread-safe because it is read-only after init."""

    def __init__(self, artifacts: ModelArtifacts, config: ServingConfig | None = None) -> None:
        self.config = config or ServingConfig()
        self.user_ids = np.asarray(artifacts.user_ids, dtype=np.int64)
        self.anime_ids = np.asarray(artifacts.anime_ids, dtype=np.int64)
        self._user_position = _position_map(self.user_ids, "user_ids.json")
        self._anime_position = _position_map(self.anime_ids, "anime_ids.json")
        # Re-normalising is cheap and makes cosine = dot product even if a writer forgot to.
        self.user_embeddings = l2_normalise(artifacts.user_embeddings)
        self.anime_embeddings = l2_normalise(artifacts.anime_embeddings)
        self._index_ratings(artifacts.user_ratings)
        self._index_metadata(artifacts.anime)
        self._titles = _TitleIndex(self._names, self._english_names, self._members)
        self.manifest = artifacts.manifest
        logger.info("recommender ready: %d users, %d anime, %d known interactions, %d genres",
                    self.n_users, self.n_anime, self.n_interactions, len(self.genres))

    @classmethod
    def from_folder(cls, folder: str | Path | None = None, config: ServingConfig | None = None) -> Recommender:
        """Load the artifacts in ``folder`` (default: the model dir) and build the engine; raises ArtifactError."""
        folder = Path(folder) if folder is not None else model_dir()
        return cls(load_model_artifacts(folder), config)

    # ------------------------------------------------------------------ load-time indexing
    def _index_ratings(self, ratings: pd.DataFrame) -> None:
        users = ratings["user_index"].to_numpy(dtype=np.int64)
        anime = ratings["anime_index"].to_numpy(dtype=np.int64)
        values = np.nan_to_num(pd.to_numeric(ratings["rating"], errors="coerce").to_numpy(dtype=np.float64))
        # CSR by user, best-rated first within a user (so reasons can name the favourite).
        order = self._user_best_first_order(users, anime, values)
        users, anime, values = users[order], anime[order], values[order]
        # One row per (user, anime), keeping the first, i.e. highest, rating: a repeat would double-count.
        _, first = np.unique(users * self.n_anime + anime, return_index=True)
        if len(first) < len(users):
            keep = np.sort(first)
            users, anime, values = users[keep], anime[keep], values[keep]
        self._known_anime = anime.astype(np.int32)
        self._known_rating = values.astype(np.float32)
        self._known_offsets = np.searchsorted(users, np.arange(self.n_users + 1))
        thresholds = self._preference_thresholds(users, values)
        preferred = (values > 0) & (values >= thresholds[users])
        self._preference_thresholds_by_user = thresholds
        self._pref_anime = self._known_anime[preferred]
        self._pref_rating = self._known_rating[preferred]
        self._pref_offsets = np.searchsorted(users[preferred], np.arange(self.n_users + 1))

    def _user_best_first_order(self, users: np.ndarray, anime: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Row order by user, then rating descending, then anime.

        Ratings are small integers by contract, so one argsort over a packed int64 key does it; that is several
        times faster than a lexsort on the tens of millions of rows a full dataset has.
        """
        if len(values) and np.array_equal(values, np.round(values)) and -16 < values.min() and values.max() < 16:
            key = (users * 32 + (15 - values).astype(np.int64)) * self.n_anime + anime
            return np.argsort(key)
        return np.lexsort((anime, -values, users))

    def _preference_thresholds(self, users: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Each user's ``preference_percentile`` of their own ratings (numpy's linear method), vectorised.

        Rows are sorted by user then rating descending, so a user's rated anime (rating > 0) come first.
        Rating 0 means watched but not rated: it says nothing about taste and is left out.
        """
        rated_counts = np.bincount(users[values > 0], minlength=self.n_users)
        starts = self._known_offsets[:-1]
        thresholds = np.full(self.n_users, np.inf)
        has = rated_counts > 0
        counts = rated_counts[has]
        position = (counts - 1) * float(self.config.preference_percentile) / 100.0
        low, high = np.floor(position).astype(np.int64), np.ceil(position).astype(np.int64)
        # ascending position k is descending position count-1-k
        low_value = values[starts[has] + counts - 1 - low]
        high_value = values[starts[has] + counts - 1 - high]
        thresholds[has] = low_value + (high_value - low_value) * (position - low)
        return thresholds

    def _index_metadata(self, anime: pd.DataFrame) -> None:
        genre_lists = [_as_genre_list(value) for value in anime["genres"]]
        self.genres = tuple(sorted({genre for genres in genre_lists for genre in genres}))
        genre_column = {genre: j for j, genre in enumerate(self.genres)}
        self._genre_lookup = {genre.casefold(): genre for genre in self.genres}
        matrix = np.zeros((self.n_anime, len(self.genres)), dtype=np.float32)
        for row, genres in enumerate(genre_lists):
            matrix[row, [genre_column[genre] for genre in genres]] = 1.0
        self._genre_matrix = matrix
        # genre-major copy: a request touches a few genres, i.e. a few contiguous rows here
        self._genre_rows = np.ascontiguousarray(matrix.T)
        self._genre_counts = matrix.sum(axis=1)
        type_values = [_clean_text(value) for value in anime["type"]]
        self.types = tuple(sorted({value for value in type_values if value}))
        self._type_lookup = {value.casefold(): value for value in self.types}
        type_code = {value: code for code, value in enumerate(self.types)}
        self._type_codes = np.array([type_code.get(value, -1) for value in type_values], dtype=np.int16)
        self._years = _numeric(anime["year"])
        self._scores = _numeric(anime["score"])
        self._members = np.nan_to_num(_numeric(anime["members"])).astype(np.int64)
        self._names = [_clean_text(value) or f"Anime {anime_id}" for value, anime_id in zip(anime["name"], self.anime_ids)]
        self._english_names = [_clean_text(value) for value in anime["english_name"]]
        self._titles_shown = [english or name for english, name in zip(self._english_names, self._names)]
        ranks = np.empty(self.n_anime)
        ranks[np.argsort(self._members, kind="stable")] = np.arange(self.n_anime)
        self._popularity = ranks / max(self.n_anime - 1, 1)
        # Plain JSON-ready dicts built once: a request only copies the few it returns (NaN/NA become None here).
        episodes = _numeric(anime["episodes"])
        premiered, synopses = anime["premiered"].tolist(), anime["synopsis"].tolist()
        self._items = [{
            "anime_id": int(self.anime_ids[row]),
            "name": self._names[row],
            "english_name": self._english_names[row],
            "genres": genres,
            "type": type_values[row],
            "episodes": _optional_int(episodes[row]),
            "premiered": _clean_text(premiered[row]),
            "year": _optional_int(self._years[row]),
            "score": round(float(self._scores[row]), 2) if math.isfinite(self._scores[row]) else None,
            "members": int(self._members[row]),
            "synopsis": _clean_text(synopses[row]),
        } for row, genres in enumerate(genre_lists)]

    # ------------------------------------------------------------------ lookups
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_anime(self) -> int:
        return len(self.anime_ids)

    @property
    def n_interactions(self) -> int:
        """Distinct (user, anime) pairs known to the engine."""
        return len(self._known_anime)

    def user_index(self, user_id: int) -> int:
        """Embedding row of a MyAnimeList user id; raises UnknownUserError."""
        position = self._user_position.get(int(user_id))
        if position is None:
            raise UnknownUserError(f"user {user_id} is not in the model: check the id, or pick a few anime you "
                                   "liked to get favourites-based recommendations")
        return position

    def anime_index(self, anime_id: int) -> int:
        """Embedding row of a MyAnimeList anime id; raises UnknownAnimeError."""
        position = self._anime_position.get(int(anime_id))
        if position is None:
            raise UnknownAnimeError(f"anime {anime_id} is not in the model: search a title to find a valid id")
        return position

    def has_user(self, user_id: int) -> bool:
        return int(user_id) in self._user_position

    def anime(self, anime_id: int) -> dict[str, Any]:
        """The metadata item of one anime (with an empty reasons list)."""
        return self._item(self.anime_index(anime_id), [])

    def known_anime(self, user_index: int) -> np.ndarray:
        """Anime indices the user rated or watched (any split, rating 0 included), best-rated first."""
        return self._known_anime[self._known_offsets[user_index]:self._known_offsets[user_index + 1]]

    def canonical_genre(self, genre: str) -> str:
        found = self._genre_lookup.get(genre.strip().casefold())
        if found is None:
            raise InvalidRequestError(f"unknown genre {_quoted(genre)}: use one of {', '.join(self.genres)}")
        return found

    def canonical_type(self, type_name: str) -> str:
        found = self._type_lookup.get(type_name.strip().casefold())
        if found is None:
            raise InvalidRequestError(f"unknown type {_quoted(type_name)}: use one of {', '.join(self.types)}")
        return found

    # ------------------------------------------------------------------ preferences and neighbours
    def user_preferences(self, user_index: int) -> UserPreferences:
        """Anime the user rated at or above their own ``preference_percentile``, and their top genres."""
        start, end = self._pref_offsets[user_index], self._pref_offsets[user_index + 1]
        anime, ratings = self._pref_anime[start:end], self._pref_rating[start:end]
        threshold = float(self._preference_thresholds_by_user[user_index])
        return UserPreferences(anime, ratings, self._top_genres(anime), threshold if math.isfinite(threshold) else None)

    def _top_genres(self, anime_indices: np.ndarray) -> tuple[str, ...]:
        if len(anime_indices) == 0 or not self.genres:
            return ()
        counts = self._genre_matrix[anime_indices].sum(axis=0)
        # stable sort keeps the alphabetical order among equally frequent genres
        order = np.argsort(-counts, kind="stable")[: self.config.preferred_genres]
        return tuple(self.genres[j] for j in order if counts[j] > 0)

    def similar_users(self, user_index: int, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` users most similar to ``user_index`` by cosine (itself excluded): (indices, similarities)."""
        return self._nearest_users(self.user_embeddings[user_index], k or self.config.similar_users, user_index)

    def _nearest_users(self, vector: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        similarity = self.user_embeddings @ vector
        if exclude is not None:
            similarity[exclude] = -np.inf
        k = min(k, self.n_users - (exclude is not None))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-similarity, k - 1)[:k]
        top = top[np.argsort(-similarity[top], kind="stable")]
        return top, similarity[top]

    # ------------------------------------------------------------------ scoring
    def score_catalogue(self, user_index: int, method: str = "hybrid", user_weight: float | None = None,
                        content_weight: float | None = None) -> np.ndarray:
        """Scores in [0, 1] for every anime index (float32, length ``n_anime``) for one user.

        ``method``: "user" (preferred by similar users, genre-boosted), "content" (similarity to the user's
        preferred anime) or "hybrid" (their weighted mean). Known anime are NOT masked here; serving and
        offline evaluation both mask them, so both rank by exactly these numbers.
        """
        if method not in METHODS:
            raise InvalidRequestError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
        weights = {"user": (1.0, 0.0), "content": (0.0, 1.0)}.get(method) or self._weights(user_weight, content_weight)
        return self._score_user(user_index, weights).hybrid

    def _score_user(self, user_index: int, weights: tuple[float, float]) -> _Scores:
        preferences = self.user_preferences(user_index)
        neighbours = self.similar_users(user_index)[0] if weights[0] > 0 else np.zeros(0, np.int64)
        return self._score(preferences, neighbours, weights)

    def _weights(self, user_weight: float | None, content_weight: float | None) -> tuple[float, float]:
        user_weight = self.config.user_weight if user_weight is None else user_weight
        content_weight = self.config.content_weight if content_weight is None else content_weight
        if not all(math.isfinite(w) and w >= 0 for w in (user_weight, content_weight)) or user_weight + content_weight <= 0:
            raise InvalidRequestError("user_weight and content_weight must be finite numbers >= 0 and not both 0")
        total = user_weight + content_weight
        return user_weight / total, content_weight / total

    def _score(self, preferences: UserPreferences, neighbours: np.ndarray, weights: tuple[float, float]) -> _Scores:
        user_weight, content_weight = weights
        counts = np.zeros(self.n_anime, np.int32)
        user_part = np.zeros(self.n_anime, np.float32)
        if user_weight > 0 and len(neighbours):
            counts = self._neighbour_counts(neighbours)
            user_part = _scale_to_unit(counts * self._genre_multiplier(preferences.genres))
        content_part = np.zeros(self.n_anime, np.float32)
        if content_weight > 0 and len(preferences.anime_indices):
            profile = self.anime_embeddings[preferences.anime_indices].sum(axis=0)
            # cosine to the mean profile = mean cosine to the preferred anime, up to a positive factor
            content_part = _scale_to_unit(self.anime_embeddings @ profile)
        hybrid = (user_weight * user_part + content_weight * content_part).astype(np.float32)
        return _Scores(user_part, content_part, hybrid, counts, len(neighbours))

    def _neighbour_counts(self, neighbours: np.ndarray) -> np.ndarray:
        """How many of the neighbours prefer each anime (each neighbour counts once per anime)."""
        slices = [self._pref_anime[self._pref_offsets[u]:self._pref_offsets[u + 1]] for u in neighbours]
        return np.bincount(np.concatenate(slices), minlength=self.n_anime).astype(np.int32)

    def _genre_multiplier(self, preferred_genres: tuple[str, ...]) -> np.ndarray:
        """1 + genre_boost * (share of each anime's genres that are among the preferred genres)."""
        if not preferred_genres or self.config.genre_boost == 0:
            return np.ones(self.n_anime, np.float32)
        rows = [self.genres.index(genre) for genre in preferred_genres]
        share = self._genre_rows[rows].sum(axis=0) / np.maximum(self._genre_counts, 1.0)
        return (1.0 + float(self.config.genre_boost) * share).astype(np.float32)

    # ------------------------------------------------------------------ ranking and filters
    def filter_mask(self, filters: Filters | None) -> np.ndarray | None:
        """Boolean mask of the anime passing ``filters`` (None when there are none); validates genres/types."""
        if filters is None or filters.is_empty():
            return None
        mask = np.ones(self.n_anime, dtype=bool)
        if filters.genres:
            columns = [self.genres.index(self.canonical_genre(genre)) for genre in filters.genres]
            mask &= self._genre_rows[columns].min(axis=0) > 0
        if filters.types:
            codes = [self.types.index(self.canonical_type(type_name)) for type_name in filters.types]
            mask &= np.isin(self._type_codes, codes)
        if filters.year_from is not None:
            mask &= self._years >= filters.year_from  # unknown year (NaN) fails any year bound
        if filters.year_to is not None:
            mask &= self._years <= filters.year_to
        if filters.min_score is not None:
            mask &= self._scores >= filters.min_score
        return mask

    def _top(self, scores: np.ndarray, n: int, exclude: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Indices of the n best candidates: excluded and filtered-out anime are dropped before the cut."""
        key = scores.astype(np.float64) + _POPULARITY_TIEBREAK * self._popularity
        key[exclude] = -np.inf
        if mask is not None:
            key[~mask] = -np.inf
        available = int(np.isfinite(key).sum())
        n = min(n, available)
        if n <= 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-key, n - 1)[:n]
        return top[np.argsort(-key[top], kind="stable")]

    def _check_n(self, n: int) -> int:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= self.config.max_n:
            raise InvalidRequestError(f"n must be an integer between 1 and {self.config.max_n}")
        return int(n)

    # ------------------------------------------------------------------ public recommendations
    def recommend_for_user(self, user_id: int, n: int | None = None, user_weight: float | None = None,
                           content_weight: float | None = None, filters: Filters | None = None) -> list[dict[str, Any]]:
        """Top-n hybrid recommendations for a known user, never anything they already rated or watched."""
        n = self._check_n(self.config.default_n if n is None else n)
        user_index = self.user_index(user_id)
        weights = self._weights(user_weight, content_weight)
        mask = self.filter_mask(filters)
        preferences = self.user_preferences(user_index)
        scores = self._score_user(user_index, weights)
        top = self._top(scores.hybrid, n, self.known_anime(user_index), mask)
        return self._explain(top, scores, preferences, weights, cold_start=False)

    def recommend_from_favourites(self, liked_anime_ids: list[int], n: int | None = None,
                                  user_weight: float | None = None, content_weight: float | None = None,
                                  filters: Filters | None = None) -> list[dict[str, Any]]:
        """Cold start without retraining: fold the liked anime into a profile and recommend like for a user."""
        n = self._check_n(self.config.default_n if n is None else n)
        liked = self._liked_indices(liked_anime_ids)
        weights = self._weights(user_weight, content_weight)
        mask = self.filter_mask(filters)
        profile = l2_normalise(self.anime_embeddings[liked].mean(axis=0, keepdims=True))[0]
        neighbours, _ = self._nearest_users(profile, self.config.similar_users)
        preferences = UserPreferences(liked, np.zeros(len(liked), np.float32), self._top_genres(liked))
        scores = self._score(preferences, neighbours, weights)
        top = self._top(scores.hybrid, n, liked, mask)
        return self._explain(top, scores, preferences, weights, cold_start=True)

    def _liked_indices(self, liked_anime_ids: list[int]) -> np.ndarray:
        if not liked_anime_ids:
            raise InvalidRequestError("liked must list at least one anime id")
        if len(liked_anime_ids) > self.config.max_liked:
            raise InvalidRequestError(f"liked may list at most {self.config.max_liked} anime ids")
        unknown = [anime_id for anime_id in liked_anime_ids if int(anime_id) not in self._anime_position]
        if unknown:
            raise UnknownAnimeError(f"unknown anime id(s) {', '.join(map(str, unknown[:10]))}: "
                                    "search a title to find valid ids")
        # dict.fromkeys dedupes but keeps the order the person gave
        return np.array([self._anime_position[int(i)] for i in dict.fromkeys(liked_anime_ids)], dtype=np.int64)

    def similar_anime(self, anime_id: int, n: int | None = None, filters: Filters | None = None) -> list[dict[str, Any]]:
        """The n anime closest to ``anime_id`` by cosine over anime embeddings, itself excluded."""
        n = self._check_n(self.config.default_n if n is None else n)
        index = self.anime_index(anime_id)
        mask = self.filter_mask(filters)
        similarity = self.anime_embeddings @ self.anime_embeddings[index]
        top = self._top(similarity, n, np.array([index]), mask)
        source = self._titles_shown[index]
        source_genres = set(self._items[index]["genres"])
        results = []
        for j in top:
            shared = [genre for genre in self._items[j]["genres"] if genre in source_genres][:_REASON_TITLES]
            reasons = [f"{max(float(similarity[j]), 0.0):.0%} similar to {source}"]
            if shared:
                reasons.append(f"also {', '.join(shared)}")
            item = self._item(j, reasons)
            item["similarity"] = round(float(similarity[j]), 4)
            results.append(item)
        return results

    def search(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        """Titles (original or English) matching ``query``: exact, then prefix, then substring; popular first."""
        limit = self._check_n(limit)
        if not query or len(query) > self.config.max_query_length:
            raise InvalidRequestError(f"q must hold 1 to {self.config.max_query_length} characters of a title")
        text = _normalise_query(query)
        if not text:  # only whitespace or control characters: no title is "found" by that
            return []
        labels = {3: "title is", 2: "title starts with", 1: "title contains"}
        return [self._item(j, [f'{labels[kind]} "{query.strip()}"']) for j, kind in self._titles.search(text, limit)]

    # ------------------------------------------------------------------ explanations
    def _item(self, index: int, reasons: list[str]) -> dict[str, Any]:
        item = dict(self._items[index])
        item["genres"] = list(item["genres"])
        item["reasons"] = reasons
        return item

    def _explain(self, top: np.ndarray, scores: _Scores, preferences: UserPreferences,
                 weights: tuple[float, float], cold_start: bool) -> list[dict[str, Any]]:
        """Items with a short reason each: which neighbours liked it, which favourite it resembles, genres."""
        liked = preferences.anime_indices
        nearest_liked = np.zeros(len(top), np.int64)
        nearest_similarity = np.zeros(len(top), np.float32)
        if len(liked) and len(top):
            similarity = self.anime_embeddings[top] @ self.anime_embeddings[liked].T
            nearest_liked = similarity.argmax(axis=1)
            nearest_similarity = similarity[np.arange(len(top)), nearest_liked]
        preferred_genres = set(preferences.genres)
        results = []
        for row, j in enumerate(top):
            reasons = []
            count = int(scores.neighbour_counts[j]) if len(scores.neighbour_counts) else 0
            if weights[0] > 0 and count > 0:
                reasons.append(f"liked by {count} of {scores.n_neighbours} users with similar taste" if cold_start
                               else f"liked by {count} of your {scores.n_neighbours} most similar users")
            if weights[1] > 0 and len(liked) and nearest_similarity[row] >= _MIN_REASON_SIMILARITY:
                source = int(liked[nearest_liked[row]])
                if cold_start:
                    reasons.append(f"similar to {self._titles_shown[source]}, which you liked")
                else:
                    rating = preferences.ratings[nearest_liked[row]]
                    reasons.append(f"similar to {self._titles_shown[source]}, which you rated {rating:g}")
            shared = [genre for genre in self._items[j]["genres"] if genre in preferred_genres][:_REASON_TITLES]
            if shared:
                reasons.append(f"{', '.join(shared)}: genres you like")
            if not reasons:
                reasons.append(f"popular on MyAnimeList ({int(self._members[j]):,} members)")
            item = self._item(int(j), reasons)
            item["match"] = round(float(scores.hybrid[j]), 4)
            results.append(item)
        return results


class _TitleIndex:
    """Title search in well under a millisecond: exact via a dict, prefix via bisect over sorted titles,
    substring via ``str.find`` over one string holding every title, most popular anime first.

    Because the big string is in popularity order, the first substring hits found are the best ones, so a
    short, common query stops after ``limit`` hits instead of visiting thousands of titles.
    """

    _SEPARATOR = "\n"

    def __init__(self, names: list[str], english_names: list[str | None], members: np.ndarray) -> None:
        self._members = members
        titles = [(_normalise_query(title), index)
                  for index, pair in enumerate(zip(names, english_names)) for title in pair if title]
        self._exact: dict[str, list[int]] = {}
        for title, index in titles:
            self._exact.setdefault(title, []).append(index)
        titles.sort()
        self._sorted_titles = [title for title, _ in titles]
        self._sorted_index = np.array([index for _, index in titles], dtype=np.int64)
        popular_first = np.argsort(-members, kind="stable")
        entries = [f"{_normalise_query(names[i])}\t{_normalise_query(english_names[i] or '')}" for i in popular_first]
        self._haystack = self._SEPARATOR.join(entries) + self._SEPARATOR
        self._entry_starts = np.cumsum([0] + [len(entry) + 1 for entry in entries])[:-1].tolist()
        self._entry_index = popular_first.tolist()

    def search(self, text: str, limit: int) -> list[tuple[int, int]]:
        """[(anime index, 3 exact | 2 prefix | 1 substring)] best first, at most ``limit``."""
        found: dict[int, int] = {}
        for index in sorted(self._exact.get(text, []), key=lambda i: -self._members[i]):
            found.setdefault(index, 3)
        if len(found) < limit:
            for index in self._prefix_matches(text, limit + len(found)):
                found.setdefault(index, 2)
        if len(found) < limit:
            for index in self._substring_matches(text, limit + len(found)):
                found.setdefault(index, 1)
        return list(found.items())[:limit]

    def _prefix_matches(self, text: str, wanted: int) -> list[int]:
        low = bisect.bisect_left(self._sorted_titles, text)
        high = bisect.bisect_left(self._sorted_titles, text + "\U0010ffff", low)
        candidates = np.unique(self._sorted_index[low:high])
        if len(candidates) > wanted:
            members = self._members[candidates]
            candidates = candidates[np.argpartition(-members, wanted - 1)[:wanted]]
        return sorted(candidates.tolist(), key=lambda i: -self._members[i])

    def _substring_matches(self, text: str, wanted: int) -> list[int]:
        hits, position = [], 0
        while len(hits) < wanted:
            position = self._haystack.find(text, position)
            if position < 0:
                break
            entry = bisect.bisect_right(self._entry_starts, position) - 1
            hits.append(self._entry_index[entry])
            next_entry = entry + 1
            position = self._entry_starts[next_entry] if next_entry < len(self._entry_starts) else len(self._haystack)
        return hits


# ---------------------------------------------------------------------- helpers
def _position_map(ids: np.ndarray, source: str) -> dict[int, int]:
    positions = {int(value): index for index, value in enumerate(ids)}
    if len(positions) != len(ids):
        raise ArtifactError(f"{source} lists an id more than once; the id maps must be unique: retrain")
    return positions


def _quoted(value: str, limit: int = 40) -> str:
    """A request value quoted in an error message, cut short: a 60 kB genre need not come back in full."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _scale_to_unit(values: np.ndarray) -> np.ndarray:
    """Clip at 0 and divide by the maximum, so every score component lives in [0, 1]."""
    values = np.maximum(values.astype(np.float32, copy=False), 0.0)
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else values


def _normalise_query(text: str) -> str:
    # tabs and newlines separate entries in the search haystack, so they must never be part of a query
    return " ".join(str(text).split()).casefold()


def _as_genre_list(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        items = value.split(",")
    else:
        items = list(value)
    genres = [str(item).strip() for item in items if item is not None]
    return list(dict.fromkeys(genre for genre in genres if genre and genre.casefold() != "unknown"))


def _clean_text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text if text and text.casefold() not in {"unknown", "nan", "none"} else None


def _numeric(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _optional_int(value: float) -> int | None:
    return int(value) if math.isfinite(value) else None
