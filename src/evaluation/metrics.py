"""Ranking metrics: small, pure functions, each with its formula.

With ``U`` the evaluated users, ``L_u`` user u's top-k list, ``T_u`` their relevant (held-out) anime and
``rel_i = 1`` if the i-th item of ``L_u`` is in ``T_u``::

    HR@k          = mean_u 1[ sum_i rel_i > 0 ]
    Recall@k      = mean_u sum_i rel_i / min(k, |T_u|)
    NDCG@k        = mean_u DCG_u / IDCG_u,   DCG_u  = sum_{i=1..k} rel_i / log2(i + 1)
                                             IDCG_u = sum_{i=1..min(k, |T_u|)} 1 / log2(i + 1)
    Coverage@k    = | union_u L_u | / n_anime
    MeanPopRank@k = sum_u sum_{j in L_u} pop_rank(j) / sum_u |L_u|
    FranchiseRepeats@k = mean_u ( |L_u| - |{ franchise(j) : j in L_u }| )

Two methods evaluated on the same users are compared per user (a paired difference)::

    d_u = Recall@k_u(A) - Recall@k_u(B),   difference = mean_u d_u,   SE = std_u(d_u) / sqrt(|U|)

Recall is truncated at ``min(k, |T_u|)`` so a perfect list scores 1 even for users with more than k held-out
anime. ``pop_rank(j)`` is the rank of anime ``j`` by number of users with a training interaction with it
(1 = most interacted; tied anime share their average rank); a low mean means mostly blockbusters.
FranchiseRepeats@k counts the entries of a list beyond the first of their franchise (src/engine/franchises.py): 3
for a top 10 holding four Golden Kamuy entries and nothing else twice.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata


def _relevance(ranked_items: Sequence[int] | np.ndarray, relevant_items: Iterable[int],
               k: int) -> tuple[list[int], int]:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevant = {int(item) for item in relevant_items}
    if not relevant:
        raise ValueError("no relevant items: the metric is undefined for this user")
    return [int(int(item) in relevant) for item in list(ranked_items)[:k]], len(relevant)


def hit_rate_at_k(ranked_items: Sequence[int] | np.ndarray, relevant_items: Iterable[int], k: int) -> float:
    """HR@k = 1 if any of the first k ranked items is relevant, else 0."""
    rel, _ = _relevance(ranked_items, relevant_items, k)
    return float(any(rel))


def recall_at_k(ranked_items: Sequence[int] | np.ndarray, relevant_items: Iterable[int], k: int) -> float:
    """Recall@k = |first k ranked items ∩ relevant| / min(k, |relevant|)."""
    rel, n_relevant = _relevance(ranked_items, relevant_items, k)
    return sum(rel) / min(k, n_relevant)


def ndcg_at_k(ranked_items: Sequence[int] | np.ndarray, relevant_items: Iterable[int], k: int) -> float:
    """NDCG@k = DCG/IDCG, DCG = sum_i rel_i / log2(i + 1) over positions i = 1..k, IDCG over min(k, |relevant|) hits."""
    rel, n_relevant = _relevance(ranked_items, relevant_items, k)
    dcg = sum(r / np.log2(position + 1) for position, r in enumerate(rel, start=1))
    idcg = sum(1 / np.log2(position + 1) for position in range(1, min(k, n_relevant) + 1))
    return float(dcg / idcg)


def catalogue_coverage(recommendations: Iterable[Iterable[int]], n_anime: int) -> float:
    """Coverage = |union of all recommendation lists| / n_anime (negative entries are padding, ignored)."""
    recommended = {int(item) for items in recommendations for item in items if int(item) >= 0}
    return len(recommended) / n_anime


def mean_popularity_rank(recommendations: Iterable[Iterable[int]], popularity_rank: np.ndarray) -> float:
    """Mean of pop_rank(j) over every recommended (user, anime j) pair; NaN when nothing was recommended."""
    ranks = [popularity_rank[int(item)] for items in recommendations for item in items if int(item) >= 0]
    return float(np.mean(ranks)) if ranks else float("nan")


def franchise_repeats(recommendations: np.ndarray, franchise: np.ndarray) -> np.ndarray:
    """Per list (a row of anime indices, -1 padded): its entries beyond the first of each franchise."""
    repeats = np.zeros(len(recommendations), np.int64)
    for row, items in enumerate(np.asarray(recommendations)):
        shown = items[items >= 0]
        repeats[row] = len(shown) - len(np.unique(franchise[shown]))
    return repeats


def interaction_counts(interactions: pd.DataFrame, n_anime: int) -> np.ndarray:
    """Number of distinct users with at least one row for each anime index."""
    pairs = interactions[["user_index", "anime_index"]].drop_duplicates()
    return np.bincount(pairs["anime_index"].to_numpy(np.int64), minlength=n_anime)[:n_anime]


def popularity_ranks(train_interactions: pd.DataFrame, n_anime: int) -> np.ndarray:
    """pop_rank per anime index: 1 = most users with a training interaction; ties share their average rank."""
    return rankdata(-interaction_counts(train_interactions, n_anime), method="average")


def batch_metrics(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """HR, Recall and NDCG per user from a (users x <=k) boolean hit matrix and each user's |T_u| (>= 1)."""
    hits = hits.astype(np.float64)
    n_hits = hits.sum(axis=1)
    ideal_hits = np.minimum(k, n_relevant)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal_dcg = np.cumsum(discounts)[ideal_hits - 1]
    return {
        "hr": (n_hits > 0).astype(np.float64),
        "recall": n_hits / ideal_hits,
        "ndcg": hits @ discounts[:hits.shape[1]] / ideal_dcg,
    }


def paired_difference(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """The mean per-user difference ``candidate - reference`` and its standard error (0 with a single user).

    Both arrays hold one value per user, the same users in the same order: pairing removes what the users
    themselves contribute (an easy user is easy for every method), so the error is that of the difference alone.
    """
    candidate, reference = np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if candidate.ndim != 1 or candidate.shape != reference.shape or candidate.size == 0:
        raise ValueError(f"expected one value per user for both methods, got shapes {candidate.shape} "
                         f"and {reference.shape}")
    difference = candidate - reference
    return float(difference.mean()), standard_error(difference)


def standard_error(values: np.ndarray) -> float:
    """The standard error of the mean of per-user values: std (ddof 1) / sqrt(n), 0 for a single user."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0


def recall_per_user(lists: np.ndarray, relevant: sp.csr_matrix | np.ndarray, k: int) -> np.ndarray:
    """Recall@k of each top-k list (a row of ``lists``, -1 padded) against the same row of ``relevant`` (sparse,
    or already a dense boolean array)."""
    relevant = relevant.toarray() > 0 if sp.issparse(relevant) else relevant
    hits = np.take_along_axis(relevant, np.maximum(lists, 0), axis=1) & (lists >= 0)
    return batch_metrics(hits, np.count_nonzero(relevant, axis=1), k)["recall"]
