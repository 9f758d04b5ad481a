"""Each user's known and preferred anime, and ``Profiles``: whom a batch of recommendations is scored for.

A user *knows* every anime on their list (rated or not: rating 0 means watched or listed but not rated, which
says nothing about taste). A user *prefers* the anime they rated at or above their own ``preference_percentile``.
Both are kept per user best-rated first, so a reason can name the favourite.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from src.store.artifacts import order_by, packed_order_key

FAVOURITE_RATING = 10.0


@dataclass(frozen=True)
class Profiles:
    """A batch of people to recommend for: known users (their model rows) or newcomers (favourites only).

    ``known`` and ``preferred`` are (n x anime) sparse rows; a preferred entry holds the rating (1 for a favourite),
    and within a row the anime are stored best first.
    """

    known: sp.csr_matrix
    preferred: sp.csr_matrix
    user_rows: np.ndarray | None = None  # None: newcomers, who have no row in the model
    # What one request computes twice otherwise (a newcomer's fold-in: the NCF's scores and the similar users both
    # need it), kept for this batch only: a Profiles lives for one request, so nothing is shared between threads.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return self.known.shape[0]

    @property
    def is_newcomer(self) -> bool:
        return self.user_rows is None

    def preferred_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(anime indices, ratings) of one profile's preferred anime, best first."""
        return stored_row(self.preferred, row)

    def known_of(self, row: int) -> np.ndarray:
        return stored_row(self.known, row)[0]

    @classmethod
    def from_lists(cls, anime: Sequence[np.ndarray], ratings: Sequence[np.ndarray], n_anime: int,
                   preference_percentile: float) -> Profiles:
        """People the model never saw, given by their whole lists (an imported MyAnimeList export): each list's
        anime with its ratings (0: watched, not rated), known and preferred exactly as a known user's would be
        (preferred: rated at or above their own ``preference_percentile``), best first."""
        known, preferred, preferred_ratings = [], [], []
        for listed, rated in zip(anime, ratings, strict=True):
            listed, rated = np.asarray(listed, dtype=np.int64), np.asarray(rated, dtype=np.float64)
            order = np.lexsort((listed, -rated))
            listed, rated = listed[order], rated[order]
            known.append((listed, rated))
            scores = rated[rated > 0]
            threshold = np.percentile(scores, preference_percentile) if len(scores) else np.inf
            keep = (rated > 0) & (rated >= threshold)
            preferred.append(listed[keep])
            preferred_ratings.append(rated[keep])
        return cls(known=csr_rows([anime for anime, _ in known], [rated for _, rated in known], n_anime),
                   preferred=csr_rows(preferred, preferred_ratings, n_anime))

    @classmethod
    def from_favourites(cls, liked: Sequence[np.ndarray], n_anime: int) -> Profiles:
        """Newcomers: each one's liked anime are both what they know and what they prefer, in the order given;
        a favourite counts as a rating of 10."""
        indices = [np.asarray(anime, dtype=np.int32) for anime in liked]
        rows = csr_rows(indices, [np.full(len(anime), FAVOURITE_RATING, np.float32) for anime in indices], n_anime)
        return cls(known=rows, preferred=rows)


class Interactions:
    """Known and preferred anime of every user in the model, indexed once at load time."""

    def __init__(self, ratings: pd.DataFrame, n_users: int, n_anime: int, preference_percentile: float) -> None:
        self.n_users, self.n_anime = n_users, n_anime
        users = ratings["user_index"].to_numpy(dtype=np.int64)
        anime = ratings["anime_index"].to_numpy(dtype=np.int64)
        rating = ratings["rating"]
        values = (rating.to_numpy(dtype=np.float64) if pd.api.types.is_integer_dtype(rating)  # no NaN to replace
                  else np.nan_to_num(pd.to_numeric(rating, errors="coerce").to_numpy(dtype=np.float64)))
        # Training writes the rows already best first and one per (user, anime): checked in linear time, which
        # spares a server start two sorts of every row (9 s at full size); other tables are sorted here.
        key = packed_order_key(users, anime, values, n_anime)
        in_order = key is not None and bool(np.all(key[1:] > key[:-1]))  # strictly: no equal neighbours either
        if not (in_order and not _has_repeats(users, anime, n_users, n_anime)):
            order = order_by(key, users, anime, values)
            users, anime, values = users[order], anime[order], values[order]
            # One row per (user, anime), keeping the first, i.e. highest, rating: a repeat would double-count.
            _, first = np.unique(users * n_anime + anime, return_index=True)
            if len(first) < len(users):
                keep = np.sort(first)
                users, anime, values = users[keep], anime[keep], values[keep]
        offsets = np.searchsorted(users, np.arange(n_users + 1))
        self.known = sp.csr_matrix((values.astype(np.float32), anime.astype(np.int32), offsets),
                                   shape=(n_users, n_anime))
        self.thresholds = _preference_thresholds(values, offsets, users, n_users, preference_percentile)
        preferred = (values > 0) & (values >= self.thresholds[users])
        self.preferred = sp.csr_matrix(
            (values[preferred].astype(np.float32), anime[preferred].astype(np.int32),
             np.searchsorted(users[preferred], np.arange(n_users + 1))), shape=(n_users, n_anime))

    def __len__(self) -> int:
        """Distinct (user, anime) pairs known."""
        return self.known.nnz

    def profiles(self, user_rows: Sequence[int] | np.ndarray) -> Profiles:
        """The profiles of known users, by model row."""
        rows = np.asarray(user_rows, dtype=np.int64)
        return Profiles(known=_take_rows(self.known, rows), preferred=_take_rows(self.preferred, rows), user_rows=rows)

    def known_of(self, user_row: int) -> np.ndarray:
        """A known user's anime (a view, best first), without building a ``Profiles``."""
        return stored_row(self.known, user_row)[0]

    def preferred_of(self, user_row: int) -> tuple[np.ndarray, np.ndarray]:
        """(anime indices, ratings) of a known user's preferred anime, best first (views)."""
        return stored_row(self.preferred, user_row)

    def threshold(self, user_row: int) -> float | None:
        value = float(self.thresholds[user_row])
        return value if np.isfinite(value) else None


def csr_rows(index_lists: Sequence[np.ndarray], value_lists: Sequence[np.ndarray] | None,
             n_columns: int) -> sp.csr_matrix:
    """Rows in the given order (not sorted by column), values 1 unless given."""
    indptr = np.concatenate([[0], np.cumsum([len(indices) for indices in index_lists])]).astype(np.int64)
    indices = np.concatenate(index_lists).astype(np.int32) if index_lists else np.zeros(0, np.int32)
    data = (np.concatenate(value_lists).astype(np.float32) if value_lists
            else np.ones(len(indices), np.float32))
    return sp.csr_matrix((data, indices, indptr), shape=(len(index_lists), n_columns))


def _take_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """Rows of a CSR matrix, keeping each row's stored order (best first)."""
    taken, indptr = stored_positions(matrix, rows)
    return sp.csr_matrix((matrix.data[taken], matrix.indices[taken], indptr), shape=(len(rows), matrix.shape[1]))


def stored_row(matrix: sp.csr_matrix, row: int) -> tuple[np.ndarray, np.ndarray]:
    """(column indices, values) stored in one row of a CSR matrix, in their stored order (views)."""
    start, end = matrix.indptr[row], matrix.indptr[row + 1]
    return matrix.indices[start:end], matrix.data[start:end]


def row_columns(matrix: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """The column indices stored in the chosen rows of a CSR matrix, one after the other: what
    ``matrix[rows].indices`` gives, without building the sub-matrix (scipy's fancy indexing costs far more than
    the copy on a request's path)."""
    taken, _ = stored_positions(matrix, rows)
    return matrix.indices[taken]


def stored_positions(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(every stored position of the chosen rows in order, the indptr of those rows taken alone), without a Python
    loop over the rows."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    lengths = ends - starts
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return np.arange(indptr[-1]) + np.repeat(starts - indptr[:-1], lengths), indptr


def _has_repeats(users: np.ndarray, anime: np.ndarray, n_users: int, n_anime: int,
                 cells_per_block: int = 2**25) -> bool:
    """Does any (user, anime) pair come twice? Rows must be grouped by user: a bitmap of a block of users at a
    time (a few tens of MB) instead of sorting every row."""
    users_per_block = max(1, cells_per_block // max(n_anime, 1))
    offsets = np.searchsorted(users, np.arange(0, n_users + users_per_block, users_per_block))
    seen = np.zeros(users_per_block * n_anime, bool)
    for block, (start, end) in enumerate(zip(offsets[:-1], offsets[1:], strict=False)):
        if end <= start:
            continue
        cells = (users[start:end] - block * users_per_block) * n_anime + anime[start:end]
        seen[cells] = True
        if np.count_nonzero(seen) < end - start:
            return True
        seen[cells] = False
    return False


def _preference_thresholds(values: np.ndarray, offsets: np.ndarray, users: np.ndarray, n_users: int,
                           percentile: float) -> np.ndarray:
    """Each user's ``percentile`` of their own ratings (numpy's linear method), vectorised; inf without ratings.

    Rows are sorted by user then rating descending, so a user's rated anime (rating > 0) come first.
    """
    rated_counts = np.bincount(users[values > 0], minlength=n_users)
    starts = offsets[:-1]
    thresholds = np.full(n_users, np.inf)
    has = rated_counts > 0
    counts = rated_counts[has]
    position = (counts - 1) * float(percentile) / 100.0
    low, high = np.floor(position).astype(np.int64), np.ceil(position).astype(np.int64)
    # ascending position k is descending position count-1-k
    low_value = values[starts[has] + counts - 1 - low]
    high_value = values[starts[has] + counts - 1 - high]
    thresholds[has] = low_value + (high_value - low_value) * (position - low)
    return thresholds
