"""The catalogue: every anime the engine can show, its metadata, filters, genres, franchises and the title index.

Row j of every array here is anime index j, the same index the model's embeddings use. Items are built once
as JSON-ready dicts, so a request only copies the few it returns.

What a list may show, before any filter a person chooses (``filter_mask``):

- never an adult title (MyAnimeList's "Rx - Hentai" rating), unless the request opts in (``include_adult``):
  not in search, similar anime, recommendations or favourites, whatever a known user's own history holds;
- never a title that has not aired (src/data/metadata.py: ``unaired``) nor a recap or a music video
  (src/engine/franchises.py): search still finds them, marked, but no list recommends them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from src.engine import validation
from src.engine.diversity import FranchiseRules
from src.engine.franchises import build_franchises
from src.engine.ranking import top_k
from src.engine.title_index import TitleIndex, normalise_title

ADULT_RATING = "rx"  # MyAnimeList's "Rx - Hentai", the one rating no anime site shows by default


@dataclass(frozen=True)
class Filters:
    """Catalogue filters, applied before the top-n cut. Genres: an anime must have every one listed.
    ``include_adult``: adult titles may be shown too (they never are by default)."""

    genres: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    min_score: float | None = None
    include_adult: bool = False

    def is_empty(self) -> bool:
        """No filter a person chose (``include_adult`` widens what may be shown, it filters nothing)."""
        return not (self.genres or self.types or self.year_from is not None or self.year_to is not None
                    or self.min_score is not None)


class Catalogue:
    """Every anime of the metadata (row j = anime index j), read-only after construction.

    The first ``n_rated`` rows are the model's anime (row j is embedding row j); the others have no community
    ratings in the data the model learned from, and are found, compared and recommended through their content.
    """

    def __init__(self, anime: pd.DataFrame, n_rated: int | None = None, content_features: np.ndarray | None = None,
                 franchise_rules: bool = True, seen_franchise_cap: int | None = None) -> None:
        """``content_features``: L2-normalised, row j = anime j (they help tell franchises apart);
        ``franchise_rules``, ``seen_franchise_cap``: the franchise rules of lists (src/engine/diversity.py)."""
        self.anime_ids = pd.to_numeric(anime["anime_id"]).to_numpy(dtype=np.int64)
        self.n_rated = len(self.anime_ids) if n_rated is None else int(n_rated)
        self._position = {int(anime_id): j for j, anime_id in enumerate(self.anime_ids)}
        genre_lists = [_as_list(value) for value in anime["genres"]]
        self.genres = tuple(sorted({genre for genres in genre_lists for genre in genres}))
        self._genre_lookup = {genre.casefold(): genre for genre in self.genres}
        column = {genre: j for j, genre in enumerate(self.genres)}
        matrix = np.zeros((len(self.anime_ids), len(self.genres)), dtype=np.float32)
        for row, genres in enumerate(genre_lists):
            matrix[row, [column[genre] for genre in genres]] = 1.0
        self.genre_matrix = matrix
        # genre-major copy: a filter touches a few genres, i.e. a few contiguous rows here
        self._genre_rows = np.ascontiguousarray(matrix.T)
        type_values = [clean_text(value) for value in anime["type"]]
        self.types = tuple(sorted({value for value in type_values if value}))
        self._type_lookup = {value.casefold(): value for value in self.types}
        type_code = {value: code for code, value in enumerate(self.types)}
        self._type_codes = np.array([type_code.get(value, -1) for value in type_values], dtype=np.int16)
        self._years = _numeric(anime["year"])
        self._scores = _numeric(anime["score"])
        self.members = np.nan_to_num(_numeric(anime["members"])).astype(np.int64)
        # The ranking tie-break: among equal scores, the anime with more members comes first.
        self.popularity_order = np.argsort(-self.members, kind="stable")
        names = [clean_text(value) or f"Anime {anime_id}"
                 for value, anime_id in zip(anime["name"], self.anime_ids, strict=True)]
        english_names = [clean_text(value) for value in anime["english_name"]]
        japanese_names = [clean_text(value) for value in anime["japanese_name"]]
        synonyms = [[text for text in map(clean_text, _as_list(value)) if text] for value in anime["synonyms"]]
        self.studios = [[text for text in map(clean_text, _as_list(value)) if text] for value in anime["studios"]]
        # which studios made each anime, one column per studio: whether two anime share one is a product of rows
        studio_ids: dict[str, int] = {}
        columns = [studio_ids.setdefault(studio, len(studio_ids)) for studios in self.studios for studio in studios]
        self._studio_rows = sp.csr_matrix(
            (np.ones(len(columns), np.float32), np.array(columns, dtype=np.int32),
             np.concatenate([[0], np.cumsum([len(studios) for studios in self.studios])])),
            shape=(len(self.studios), len(studio_ids)))
        self.titles_shown = [english or name for english, name in zip(english_names, names, strict=True)]
        self.title_index = TitleIndex([[name, english or "", japanese or "", *others]
                                       for name, english, japanese, others
                                       in zip(names, english_names, japanese_names, synonyms, strict=True)],
                                      self.members, type_values)
        self.adult = np.array([str(value or "").strip().casefold().startswith(ADULT_RATING)
                               for value in anime["age_rating"]], dtype=bool)
        self.unaired = np.array([value is True or value is np.True_ for value in anime["unaired"]], dtype=bool)
        franchises = build_franchises(anime.assign(name=names), content_features)
        self.franchise = franchises.ids  # each anime's franchise (its seasons, movies, OVAs share one)
        self.unrecommendable = franchises.unrecommendable  # recaps and music videos
        self.franchise_rules = (FranchiseRules(franchises.ids, franchises.first_entry, seen_franchise_cap)
                                if franchise_rules else None)
        # What lists may show before the person's own filters (module docstring): without and with adult titles.
        listable = ~(franchises.unrecommendable | self.unaired)
        self._listable = {False: listable & ~self.adult, True: listable}
        episodes = _numeric(anime["episodes"])
        premiered, synopses = anime["premiered"].tolist(), anime["synopsis"].tolist()
        images = [_image_url(value) for value in anime["image_url"]]
        self._items = [{
            "anime_id": int(self.anime_ids[row]),
            "name": names[row],
            "english_name": english_names[row],
            "japanese_name": japanese_names[row],
            "genres": genres,
            "type": type_values[row],
            "episodes": _optional_int(episodes[row]),
            "premiered": clean_text(premiered[row]),
            "year": _optional_int(self._years[row]),
            "score": round(float(self._scores[row]), 2) if math.isfinite(self._scores[row]) else None,
            "members": int(self.members[row]),
            "studios": self.studios[row],
            "synopsis": clean_text(synopses[row]),
            "image_url": images[row],
            "rated": row < self.n_rated,
            "not_yet_aired": bool(self.unaired[row]),
        } for row, genres in enumerate(genre_lists)]
        # words in each synopsis: whether a "story like" reason has enough text to stand on (explanations.py)
        self.synopsis_words = np.array([len(item["synopsis"].split()) if isinstance(item["synopsis"], str) else 0
                                        for item in self._items], dtype=np.int32)

    def __len__(self) -> int:
        return len(self.anime_ids)

    def index_of(self, anime_id: int) -> int | None:
        """Anime index of a MyAnimeList id, None when the catalogue does not have it."""
        return self._position.get(int(anime_id))

    def item(self, index: int, reasons: list[str] | None = None) -> dict[str, Any]:
        """A fresh JSON-ready copy of one anime's item, with its reasons."""
        item = dict(self._items[index])
        item["genres"] = list(item["genres"])
        item["studios"] = list(item["studios"])
        item["reasons"] = list(reasons or [])
        return item

    def item_genres(self, index: int) -> list[str]:
        return self._items[index]["genres"]

    # ------------------------------------------------------------------ genres and types
    def canonical_genre(self, genre: str) -> str:
        found = self._genre_lookup.get(genre.strip().casefold())
        if found is None:
            raise validation.InvalidRequestError(
                f"unknown genre {validation.quoted(genre)}: use one of {', '.join(self.genres)}")
        return found

    def canonical_type(self, type_name: str) -> str:
        found = self._type_lookup.get(type_name.strip().casefold())
        if found is None:
            raise validation.InvalidRequestError(
                f"unknown type {validation.quoted(type_name)}: use one of {', '.join(self.types)}")
        return found

    def top_genres(self, preferred: sp.spmatrix, count: int) -> list[tuple[str, ...]]:
        """For each row of ``preferred`` (n x anime, non-zero = preferred): its ``count`` most frequent genres,
        most frequent first, alphabetical among equals."""
        preferred = sp.csr_matrix(preferred)
        # 1 where an entry is non-zero, on the stored entries as they are (a profile stores each anime once):
        # ``preferred != 0`` would build a new sparse matrix first, which costs more than the product
        indicator = sp.csr_matrix(((preferred.data != 0).astype(np.float32), preferred.indices, preferred.indptr),
                                  shape=preferred.shape)
        counts = np.asarray(indicator @ self.genre_matrix)
        if not self.genres:
            return [() for _ in range(preferred.shape[0])]
        top = top_k(np.where(counts > 0, counts, -np.inf), min(count, len(self.genres)))
        return [tuple(self.genres[j] for j in row if j >= 0) for row in top]

    def genre_share(self, genre_sets: list[tuple[str, ...]]) -> np.ndarray:
        """(n x anime): for each set of genres, the share of each anime's genres that are in the set."""
        chosen = np.zeros((len(genre_sets), len(self.genres)), dtype=np.float32)
        column = {genre: j for j, genre in enumerate(self.genres)}
        for row, genres in enumerate(genre_sets):
            chosen[row, [column[genre] for genre in genres]] = 1.0
        per_anime = np.maximum(self.genre_matrix.sum(axis=1), 1.0)
        return (chosen @ self._genre_rows) / per_anime

    # ------------------------------------------------------------------ filters and search
    def share_a_studio(self, anime: np.ndarray, others: np.ndarray) -> np.ndarray:
        """(len(anime) x len(others)) booleans: whether the two were made by a studio in common."""
        rows = self._studio_rows
        return (rows[np.asarray(anime, dtype=np.int64)] @ rows[np.asarray(others, dtype=np.int64)].T).toarray() > 0

    def listable(self, include_adult: bool = False) -> np.ndarray:
        """What lists may show without a filter (module docstring), adult titles only with ``include_adult``."""
        return self._listable[include_adult]

    def filter_mask(self, filters: Filters | None) -> np.ndarray:
        """Boolean mask of the anime a list may show: what lists show by default (module docstring), passing
        ``filters``; validates genres and types."""
        listable = self._listable[bool(filters and filters.include_adult)]
        if filters is None or filters.is_empty():
            return listable
        mask = listable.copy()
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

    def search(self, text: str, limit: int, include_adult: bool = False) -> list[tuple[int, int]]:
        """[(anime index, match kind)] for a title query, best first (see TitleIndex.search); adult titles only
        with ``include_adult``."""
        normalised = normalise_title(text)
        return self.title_index.search(normalised, limit, self._searchable(include_adult)) if normalised else []

    def search_and_count(self, text: str, limit: int, include_adult: bool = False) -> tuple[list[tuple[int, int]], int]:
        """``search`` and ``count_matches`` at once (one matching of the query)."""
        normalised = normalise_title(text)
        if not normalised:
            return [], 0
        return self.title_index.search_and_count(normalised, limit, self._searchable(include_adult))

    def count_matches(self, text: str, include_adult: bool = False) -> int:
        """How many anime a title query finds in all."""
        return self.title_index.count(normalise_title(text), self._searchable(include_adult))

    def _searchable(self, include_adult: bool) -> np.ndarray | None:
        return None if include_adult or not self.adult.any() else ~self.adult


def clean_text(value: Any) -> str | None:
    """A metadata string, or None for the dataset's many spellings of "missing"."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text if text and text.casefold() not in {"unknown", "nan", "none"} else None


def _as_list(value: Any) -> list[str]:
    """A list cell (a list, an array, or comma-separated text) as distinct, non-empty, known labels."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    labels = [str(item).strip() for item in items if item is not None]
    return list(dict.fromkeys(label for label in labels if label and label.casefold() != "unknown"))


def _image_url(value: Any) -> str | None:
    """A poster address, only when it is an https URL (the pages load it as an image)."""
    text = clean_text(value)
    return text if text and text.startswith("https://") else None


def _numeric(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _optional_int(value: float) -> int | None:
    return int(value) if math.isfinite(value) else None
