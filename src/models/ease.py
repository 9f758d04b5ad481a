"""EASE (Steck 2019): a closed-form linear item-item model, the strongest simple baseline of the field.

For a users x anime interaction matrix X (binary, or weighted by rating) and a regularisation lambda::

    P = (XᵀX + λI)⁻¹,   B = I − P · diag(1 / diag(P))   (so diag(B) = 0),   score(u) = x_u · B

Its cost is one inversion of an anime x anime matrix, done in float32 with a Cholesky factorisation (the Gram
matrix plus λI is symmetric positive definite).

With a ``dropout`` p > 0 it is EDLAE, the emphasised denoising linear autoencoder of Steck (NeurIPS 2020,
"Autoencoders that don't overfit towards the identity"): trained to complete a profile from a random (1 - p) of
it, which in full rank is EASE with each anime's regularisation raised by p / (1 - p) times its own count,
``XᵀX + λI + p/(1-p) · diag(XᵀX)``. Newcomers send a few favourites out of a whole list, which is what it learns.

For serving a large catalogue, B can be kept to each anime's ``neighbours`` strongest weights, so a profile's
scores are a sparse row times a sparse matrix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.linalg import blas, lapack

INTERACTION_VALUES = ("any", "rated", "weighted")


def interaction_matrix(interactions: pd.DataFrame, n_users: int, n_anime: int, values: str = "any") -> sp.csr_matrix:
    """users x anime CSR matrix of the interactions.

    ``values``: "any" = 1 for every row (rated or not); "rated" = 1 for rated rows only; "weighted" = rating / 10
    for rated rows and 0.5 for watched-but-unrated ones. Which one suits a baseline is chosen on the carve.
    """
    rating = interactions["rating"].to_numpy() if "rating" in interactions else np.ones(len(interactions))
    rows = interactions
    if values == "rated":
        rows, rating = interactions[rating > 0], rating[rating > 0]
    if values == "weighted":
        data = np.where(rating > 0, rating / 10.0, 0.5).astype(np.float32)
    elif values in INTERACTION_VALUES:
        data = np.ones(len(rows), np.float32)
    else:
        raise ValueError(f"interaction values must be one of {', '.join(INTERACTION_VALUES)}, not {values!r}")
    matrix = sp.csr_matrix((data, (rows["user_index"].to_numpy(np.int64), rows["anime_index"].to_numpy(np.int64))),
                           shape=(n_users, n_anime))
    matrix.sum_duplicates()
    if values != "weighted":
        matrix.data[:] = 1.0  # duplicates were summed; presence is what counts
    return matrix


def gram(interactions: sp.spmatrix, block_bytes: int = 1 << 28) -> np.ndarray:
    """XᵀX of a users x anime matrix as a dense (anime x anime) float32 array, C-contiguous and symmetric.

    Built from dense blocks of users with BLAS (ssyrk, one triangle): the result is dense anyway, and this is
    about five times faster than a sparse product on 2 cores. Memory: the n x n result plus one block of users
    (``block_bytes``, 256 MB by default). Counts stay exact in float32 up to 2^24 users.
    """
    matrix = sp.csr_matrix(interactions, dtype=np.float32)
    n_users, n = matrix.shape
    result = np.zeros((n, n), np.float32, order="F")  # BLAS writes in place into a Fortran array
    if n == 0 or n_users == 0:
        return np.ascontiguousarray(result)
    rows = max(1, block_bytes // (4 * max(n, 1)))
    for start in range(0, n_users, rows):
        block = matrix[start:start + rows].toarray()
        result = blas.ssyrk(1.0, block, beta=1.0, c=result, trans=1, lower=0, overwrite_c=1)
    result = result.T  # symmetric: the transpose is the same matrix, C-ordered, without a copy
    _mirror_lower_triangle(result)  # ssyrk filled the Fortran array's upper triangle: this one's lower
    return result


def ease_weights(interactions: sp.spmatrix, regularisation: float, dropout: float = 0.0) -> np.ndarray:
    """The dense (anime x anime) float32 EASE weight matrix B of a users x anime matrix (binary or weighted)."""
    return ease_from_gram(gram(interactions), regularisation, dropout, overwrite=True)


def ease_from_gram(gram_matrix: np.ndarray, regularisation: float, dropout: float = 0.0,
                   overwrite: bool = False) -> np.ndarray:
    """EASE's B from the Gram matrix XᵀX (``gram``), so several regularisations share one Gram; EDLAE's with a
    ``dropout`` in (0, 1). ``overwrite``: work in ``gram_matrix`` itself (one n x n float32 array in all);
    otherwise it is copied first."""
    if regularisation <= 0:
        raise ValueError(f"the EASE regularisation must be > 0, got {regularisation}")
    if not 0 <= dropout < 1:
        raise ValueError(f"the EASE dropout must be in [0, 1), got {dropout}")
    regularised = gram_matrix if overwrite else gram_matrix.copy()
    diagonal = np.diag_indices_from(regularised)
    regularised[diagonal] += np.float32(regularisation) + np.float32(dropout / (1 - dropout)) * regularised[diagonal]
    # inv(G) from its Cholesky factor (LAPACK potrf + potri): G is symmetric positive definite by construction,
    # and this is about twice as fast as a general inverse. Both work in place. G is symmetric, so its C-ordered
    # memory is also its Fortran-ordered transpose: LAPACK takes it without a copy ("upper" of the transpose).
    factor, info = lapack.spotrf(regularised.T, lower=0, clean=0, overwrite_a=1)
    if info == 0:
        precision, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise ValueError(f"EASE: the regularised Gram matrix could not be inverted (LAPACK info {info})")
    precision = precision.T  # C order again; its lower triangle holds the inverse
    _mirror_lower_triangle(precision)
    precision /= -np.diag(precision).copy()  # B_ij = -P_ij / P_jj
    np.fill_diagonal(precision, 0.0)
    # a sparse row times B would copy all of B to C order every time if it were Fortran-ordered
    return np.ascontiguousarray(precision)


def _mirror_lower_triangle(matrix: np.ndarray, block_size: int = 1024) -> None:
    """Copy the lower triangle onto the upper one, in place, a block of rows at a time (no n x n temporary)."""
    n = len(matrix)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        matrix[start:stop, stop:] = matrix[stop:, start:stop].T
        block = matrix[start:stop, start:stop]
        block[np.triu_indices(stop - start, 1)] = block.T[np.triu_indices(stop - start, 1)]


def keep_top_neighbours(weights: np.ndarray, neighbours: int, block_size: int = 2048) -> sp.csr_matrix:
    """B with only each column's ``neighbours`` largest weights by magnitude kept, as CSR float32.

    Column j holds what each anime adds to anime j's score, so keeping a column's strongest entries keeps the
    evidence that decides j's rank. (Per target column beat per source row on the validation carve.)
    """
    n = len(weights)
    keep = min(neighbours, n)
    rows, columns, values = [], [], []
    for start in range(0, n, block_size):
        # a block of columns, transposed into contiguous rows: partitioning along a row is far faster than down
        # a column of a C-ordered array
        block = np.ascontiguousarray(weights[:, start:start + block_size].T)
        strongest = np.argpartition(-np.abs(block), keep - 1, axis=1)[:, :keep]
        column = np.broadcast_to(np.arange(start, start + len(block))[:, None], strongest.shape)
        rows.append(strongest.ravel())
        columns.append(column.ravel())
        values.append(np.take_along_axis(block, strongest, axis=1).ravel())
    pruned = sp.csr_matrix((np.concatenate(values).astype(np.float32), (np.concatenate(rows), np.concatenate(columns))),
                           shape=(n, n))
    pruned.eliminate_zeros()
    return pruned


@dataclass
class ItemWeights:
    """EASE's weights over ``support``, the anime it was fitted on (all the model's anime, or its most-rated ones
    when the catalogue is too large to invert whole): ``weights[i, j]`` links support[i] to support[j]."""

    weights: np.ndarray | sp.csr_matrix
    support: np.ndarray
    # How a dense B was fitted: with the published interactions, enough to derive it again instead of shipping it
    # (src/store/artifacts.py: drop_derivable_item_weights).
    values: str | None = None
    regularisation: float | None = None
    dropout: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.weights.shape


def derivation_cost(users: int, anime: int) -> int:
    """Multiply-adds to derive a dense B of ``anime`` anime from ``users`` users' rows: the Gram matrix's
    users x n² / 2 plus the inversion's n³ (Cholesky factor n³ / 3, the inverse from it 2n³ / 3)."""
    return users * anime * anime // 2 + anime ** 3


def dense_item_weights(matrix: sp.csr_matrix, support: np.ndarray, values: str, regularisation: float,
                       dropout: float = 0.0) -> ItemWeights:
    """EASE's (EDLAE's, with a ``dropout``) dense B over the ``support`` columns of ``matrix`` (interaction_matrix
    with ``values``)."""
    return ItemWeights(ease_weights(matrix[:, support], regularisation, dropout), support, values, regularisation,
                       dropout)


def fit_item_weights(interactions: pd.DataFrame, n_users: int, n_anime: int, settings: dict[str, Any]) -> ItemWeights:
    """EASE on the rows of ``interactions`` with ``settings`` as the carve chose them (values, regularisation,
    neighbours, max_anime: at most that many of the most-rated anime, all of them when null; dropout: EDLAE's,
    0 when absent)."""
    return fit_item_weight_sets(interactions, n_users, n_anime, [settings])[0]


def fit_item_weight_sets(interactions: pd.DataFrame, n_users: int, n_anime: int,
                         settings: list[dict[str, Any]]) -> list[ItemWeights]:
    """``fit_item_weights`` for each of several settings (the known users' EASE and the newcomers' own); settings
    that differ only in their neighbours share one inversion."""
    dense: dict[tuple[Any, ...], ItemWeights] = {}
    fitted = []
    for each in settings:
        key = (each["values"], float(each["regularisation"]), each.get("max_anime"), float(each.get("dropout", 0.0)))
        if key not in dense:
            matrix = interaction_matrix(interactions, n_users, n_anime, each["values"])
            support = most_rated(matrix, each.get("max_anime"))
            dense[key] = dense_item_weights(matrix, support, each["values"], key[1], key[3])
        weights = dense[key]
        if each["neighbours"] is not None:
            weights = ItemWeights(keep_top_neighbours(weights.weights, int(each["neighbours"])), weights.support)
        fitted.append(weights)
    return fitted


def most_rated(matrix: sp.spmatrix, limit: int | None) -> np.ndarray:
    """Column indices of the ``limit`` columns with the most entries (every column when ``limit`` is None or larger),
    ascending: EASE's cost grows with the cube of its anime, so a huge catalogue is cut to its best-known part."""
    if limit is None or limit >= matrix.shape[1]:
        return np.arange(matrix.shape[1])
    counts = np.asarray((matrix != 0).sum(axis=0)).ravel()
    return np.sort(np.argsort(-counts, kind="stable")[:int(limit)])
