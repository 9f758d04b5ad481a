"""The one ranking contract: serving, offline evaluation, similar anime and similar users all rank with ``top_k``.

Order: higher score first. Ties go to the candidate listed earlier in ``tiebreak`` (for anime: the catalogue's
popularity order, so among equal scores the better-known title comes first), and without ``tiebreak`` to the
lower index. Candidates scored -inf or NaN, excluded or masked out are never returned; a row with fewer than
``k`` candidates is padded with -1.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from src.engine.parallel import by_row_blocks


def top_k(scores: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None, allowed: np.ndarray | None = None,
          tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Column indices of the ``k`` best candidates of each row of ``scores`` (n x m), best first; (n x k), -1 padded.

    ``exclude``: an (n x m) sparse matrix whose stored entries are never returned (what a user already has).
    ``allowed``: a length-m boolean mask of the candidates that may be returned (filters).
    ``tiebreak``: a permutation of the m columns; among equal scores, the column that comes first in it wins.
    ``scores`` is not modified.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    scores = np.asarray(scores)
    scores = scores[None, :] if scores.ndim == 1 else scores
    # A copy (exclusions are written into it), in the scores' own float type: float32 stays float32, which halves
    # the memory traffic and changes no order and no tie; integers become float64, which holds them exactly.
    dtype = np.result_type(scores.dtype, np.float32)
    exclude = sp.csr_matrix(exclude) if exclude is not None and exclude.nnz else None
    masked = ~np.asarray(allowed, dtype=bool) if allowed is not None else None
    order = np.asarray(tiebreak, dtype=np.int64) if tiebreak is not None else None

    def rank(start: int, stop: int) -> np.ndarray:
        block = np.array(scores[start:stop], dtype=dtype)
        block[np.isnan(block)] = -np.inf
        if exclude is not None:
            excluded = exclude[start:stop]
            block[np.repeat(np.arange(stop - start), np.diff(excluded.indptr)), excluded.indices] = -np.inf
        if masked is not None:
            block[:, masked] = -np.inf
        if order is None:
            return _top_k_lowest_index(block, k)
        positions = _top_k_lowest_index(block[:, order], k)
        return np.where(positions >= 0, order[np.maximum(positions, 0)], -1)

    blocks = by_row_blocks(rank, len(scores))  # a large batch over the cores, each row ranked exactly as alone
    return blocks[0] if len(blocks) == 1 else np.vstack(blocks)


def top_k_row(scores: np.ndarray, k: int, *, exclude: np.ndarray | None = None, allowed: np.ndarray | None = None,
              tiebreak: np.ndarray | None = None) -> np.ndarray:
    """``top_k`` for one score vector and an array of excluded indices: the indices found, best first, no padding."""
    excluded = None
    if exclude is not None and len(exclude):
        columns = np.asarray(exclude, dtype=np.int64)
        excluded = sp.csr_matrix((np.ones(len(columns)), (np.zeros(len(columns), np.int64), columns)),
                                 shape=(1, len(scores)))
    top = top_k(scores, k, exclude=excluded, allowed=allowed, tiebreak=tiebreak)[0]
    return top[top >= 0]


def _top_k_lowest_index(scores: np.ndarray, k: int) -> np.ndarray:
    """Best first per row; among equal scores the lower column index wins; -1 where a row runs out of candidates."""
    n_rows, n_columns = scores.shape
    k_available = min(k, n_columns)
    if n_rows == 0 or k_available == 0:
        return np.full((n_rows, k), -1, dtype=np.int64)
    # the k-th best score of each row; every score at or above it is selected: exactly k_available per row,
    # unless several are tied with the k-th best (then the lowest-index tied ones are taken, see below)
    kth_best = np.partition(scores, n_columns - k_available, axis=1)[:, n_columns - k_available, None]
    selected = scores >= kth_best
    crowded = np.flatnonzero(np.count_nonzero(selected, axis=1) > k_available)  # usually only rows with many ties
    if len(crowded):
        rows = scores[crowded]
        above, tied = rows > kth_best[crowded], rows == kth_best[crowded]
        still_needed = k_available - above.sum(axis=1)
        selected[crowded] = above | (tied & (np.cumsum(tied, axis=1) <= still_needed[:, None]))
    candidates = np.nonzero(selected)[1].reshape(n_rows, k_available)  # ascending index within each row
    order = np.argsort(-np.take_along_axis(scores, candidates, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    top[np.isneginf(np.take_along_axis(scores, top, axis=1))] = -1  # -inf = excluded, never recommended
    if k_available < k:
        top = np.hstack([top, np.full((n_rows, k - k_available), -1, dtype=np.int64)])
    return top
