"""Splitting: the per-user holdout that processing writes, the validation carve tuning uses, and the views of the
data each side may see. Nothing here reads the test rows for anything but holding them out.

Processing writes one table of every kept interaction (``interactions.parquet``): ``user_id``, ``anime_index``
(catalogue row), ``rating``, ``split`` and ``held_out``, a bit set of the held-out sets a row belongs to
(``NEWCOMER``, ``NEW_ANIME``; both for a newcomer's rating of a new anime). Every set the evaluation reads is a view
of it, and the served model is trained on all of it, so no row can fall between two files.

- ``training_view``: rows in no held-out set, by the evaluation model's user rows; their ``split`` is the per-user
  holdout (train, validation, test).
- ``newcomer_view``: every row of the newcomers, their ratings of new anime included: a newcomer brings their whole
  list, and the served engine places titles nobody rated by their content, so those ratings are to be found too.
- ``new_anime_view``: the known users' rows of the new anime. A newcomer's rows are not here: the new-anime
  question ranks held-out anime for a user the model knows, and the model does not know a newcomer.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from config.settings import Settings
from src.models.ease import interaction_matrix

# The ``split`` column: the per-user holdout of every kept row (test: the held-out 20 % of a user's rated anime;
# validation: the training rows kept aside for val_loss).
SPLIT_TRAIN = 0
SPLIT_VALIDATION = 1
SPLIT_TEST = 2

# Bits of the ``held_out`` column: the held-out sets a row belongs to (0: none, the evaluation model trains on it).
NEWCOMER = 1
NEW_ANIME = 2
HELD_OUT_SETS = {"newcomers": NEWCOMER, "new_anime": NEW_ANIME, "newcomers_new_anime": NEWCOMER | NEW_ANIME}


def held_out_flags(newcomer: np.ndarray, new_anime: np.ndarray) -> np.ndarray:
    """The ``held_out`` bit set of each row from its two memberships (boolean arrays over the rows)."""
    return (newcomer.astype(np.int8) * NEWCOMER) | (new_anime.astype(np.int8) * NEW_ANIME)


def held_out_counts(held_out: np.ndarray) -> dict[str, int]:
    """Rows per held-out set, each row counted once: ``newcomers_new_anime`` rows are in neither other count."""
    return {name: int(np.count_nonzero(held_out == flags)) for name, flags in HELD_OUT_SETS.items()}


def training_view(interactions: pd.DataFrame, user_ids: np.ndarray) -> pd.DataFrame:
    """The evaluation model's rows (in no held-out set), in table order: ``user_index`` (row of ``user_ids``, the
    evaluation model's sorted user ids), ``anime_index``, ``rating``, ``split``."""
    rows = interactions[interactions["held_out"].to_numpy() == 0]
    return pd.DataFrame({"user_index": _user_rows(rows, user_ids), "anime_index": rows["anime_index"].to_numpy(),
                         "rating": rows["rating"].to_numpy(), "split": rows["split"].to_numpy()})


def newcomer_view(interactions: pd.DataFrame) -> pd.DataFrame:
    """Every row of the newcomers (``user_id``, ``anime_index``, ``rating``), their new anime included."""
    rows = interactions[(interactions["held_out"].to_numpy() & NEWCOMER) > 0]
    return pd.DataFrame({"user_id": rows["user_id"].to_numpy(np.int64), "anime_index": rows["anime_index"].to_numpy(),
                         "rating": rows["rating"].to_numpy()})


def new_anime_view(interactions: pd.DataFrame, user_ids: np.ndarray) -> pd.DataFrame:
    """The known users' rows of the new anime: ``user_index`` (row of ``user_ids``), ``anime_index``, ``rating``."""
    rows = interactions[interactions["held_out"].to_numpy() == NEW_ANIME]
    return pd.DataFrame({"user_index": _user_rows(rows, user_ids), "anime_index": rows["anime_index"].to_numpy(),
                         "rating": rows["rating"].to_numpy()})


def _user_rows(rows: pd.DataFrame, user_ids: np.ndarray) -> np.ndarray:
    return np.searchsorted(user_ids, rows["user_id"].to_numpy()).astype(np.int32)


def assign_splits(user_index: np.ndarray, rating: np.ndarray, holdout_fraction: float,
                  validation_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Per-user test holdout of rated rows, then a random validation share of the remaining rated rows.

    Each user with n rated anime gets floor(holdout_fraction * n) of them (at least one when the fraction is
    positive and n >= 2) chosen at random as test; unrated rows always stay in training.
    """
    split = np.full(len(user_index), SPLIT_TRAIN, dtype=np.int8)
    rated_rows = np.flatnonzero(rating > 0)
    if holdout_fraction > 0 and len(rated_rows):
        users = user_index[rated_rows]
        order = order_by_user_then_draw(users, rng.random(len(rated_rows)))  # random order within each user
        sorted_users = users[order]
        per_user = np.bincount(users)
        group_start = (np.cumsum(per_user) - per_user)[sorted_users]
        rank_in_user = np.arange(len(order)) - group_start
        quota = np.floor(holdout_fraction * per_user).astype(np.int64)
        quota[(quota == 0) & (per_user >= 2)] = 1
        split[rated_rows[order[rank_in_user < quota[sorted_users]]]] = SPLIT_TEST
    trainable = np.flatnonzero((split == SPLIT_TRAIN) & (rating > 0))
    split[trainable[rng.random(len(trainable)) < validation_fraction]] = SPLIT_VALIDATION
    return split


def select_newcomers(n_users: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of a seeded ``floor(fraction * n_users)`` users, held out of training entirely (newcomers)."""
    chosen = np.zeros(n_users, dtype=bool)
    chosen[rng.permutation(n_users)[:int(np.floor(fraction * n_users))]] = True
    return chosen


def order_by_user_then_draw(users: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Exactly ``np.lexsort((draws, users))`` for non-negative users and draws in [0, 1), several times faster:
    one argsort of an int64 key holding the user in its high bits and the draw, truncated, in its low bits.

    Truncation can tie two different draws of one user; those (rare) runs are then ordered by the exact draw
    and row, as lexsort would.
    """
    user_bits = max(int(users.max(initial=0)), 1).bit_length()
    draw_bits = 62 - user_bits
    if len(users) == 0 or draw_bits < 24:  # ids too large to leave the draws useful bits: the plain lexsort
        return np.lexsort((draws, users))
    key = (users.astype(np.int64) << draw_bits) | (draws * float(2**draw_bits)).astype(np.int64)
    order = np.argsort(key)
    sorted_key = key[order]
    tied = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
    if len(tied):
        positions = np.union1d(tied, tied + 1)  # every member of every run of equal keys, in sorted order
        rows = order[positions]
        order[positions] = rows[np.lexsort((rows, draws[rows], sorted_key[positions]))]
    return order


def carve_validation(ratings: pd.DataFrame, holdout_fraction: float, validation_fraction: float,
                     seed: int) -> pd.DataFrame:
    """The non-test rows, re-split the way processing splits: their 'test' rows are a per-user holdout of the
    original training rows, so settings can be chosen without ever reading the real test set."""
    carved = ratings[ratings["split"].to_numpy() != SPLIT_TEST].reset_index(drop=True)
    carved["split"] = assign_splits(carved["user_index"].to_numpy(), carved["rating"].to_numpy(), holdout_fraction,
                                    validation_fraction, np.random.default_rng(seed))
    return carved


def split_interactions(ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(known rows, held-out rows): test = ``split == SPLIT_TEST``; known = everything else, unrated rows too."""
    is_test = ratings["split"].to_numpy() == SPLIT_TEST
    return ratings[~is_test], ratings[is_test]


def held_out_users(test_interactions: pd.DataFrame, max_users: int | None = None,
                   seed: int | None = None) -> np.ndarray:
    """Sorted user indices with held-out anime; a random subset of ``max_users`` of them, drawn with ``seed``, if
    given (``evaluation.max_users`` and the config's seed)."""
    users = np.unique(test_interactions["user_index"].to_numpy(np.int64))
    if max_users is not None and 0 < max_users < len(users):
        if seed is None:
            raise ValueError("a subset of the held-out users needs the seed to draw it with")
        users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
    return users


def select_new_anime(anime_index: np.ndarray, rating: np.ndarray, n_anime: int, fraction: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Boolean mask over anime indices: a seeded ``floor(fraction x rated anime)`` of the anime with a rating,
    held out of training entirely to measure how the content path places anime nobody rated yet."""
    rated = np.flatnonzero(np.bincount(anime_index[rating > 0], minlength=n_anime) > 0)
    chosen = np.zeros(n_anime, dtype=bool)
    chosen[rng.permutation(rated)[:int(np.floor(fraction * len(rated)))]] = True
    return chosen


@dataclass(frozen=True)
class RowSplits:
    """Every held-out decision for processing's encoded rows (``split_rows``)."""

    split: np.ndarray  # int8 per row: the per-user holdout of the evaluation model's rows; held-out rows SPLIT_TRAIN
    held_out: np.ndarray  # int8 per row: the ``held_out`` bit set (NEWCOMER, NEW_ANIME)
    new_anime: np.ndarray  # bool per encoded anime: held out of the evaluation model as new anime
    model_users: np.ndarray  # bool per encoded user: the evaluation model's users (every user but the newcomers)

    @property
    def counts(self) -> dict[str, int]:
        """Rows per held-out set (``held_out_counts``), as the processing ledger records them."""
        return held_out_counts(self.held_out)


def split_rows(user_index: np.ndarray, anime_index: np.ndarray, rating: np.ndarray, n_users: int, n_anime: int, *,
               holdout_fraction: float, validation_fraction: float, newcomer_fraction: float,
               new_anime_fraction: float, rng: np.random.Generator) -> RowSplits:
    """Every held-out set of the encoded rows (``user_index`` into ``n_users`` users in ascending id order,
    ``anime_index`` into ``n_anime`` anime), drawn from ``rng`` in this order: the new anime (a seeded share of the
    rated anime), the newcomers (a seeded share of the users), then the per-user holdout (``assign_splits``) of
    the rows in neither set. Without a test holdout there is no evaluation, so nothing is held out as new anime or
    newcomers either."""
    evaluated = holdout_fraction > 0
    new_anime = select_new_anime(anime_index, rating, n_anime, new_anime_fraction if evaluated else 0.0, rng)
    newcomer_users = select_newcomers(n_users, newcomer_fraction if evaluated else 0.0, rng)
    held_out = held_out_flags(newcomer_users[user_index], new_anime[anime_index])
    model_rows = np.flatnonzero(held_out == 0)
    # each model row's user as a row of the evaluation model's users (the non-newcomers, in ascending id order)
    model_user_index = (np.cumsum(~newcomer_users) - 1).astype(np.int32)[user_index[model_rows]]
    split = np.full(len(user_index), SPLIT_TRAIN, dtype=np.int8)
    split[model_rows] = assign_splits(model_user_index, rating[model_rows], holdout_fraction, validation_fraction,
                                      rng)
    return RowSplits(split, held_out, new_anime, ~newcomer_users)


@dataclass(frozen=True)
class NewcomerSplit:
    favourites: list[np.ndarray]  # anime indices per newcomer, best first
    favourites_rows: pd.DataFrame  # user_index (newcomer number), anime_index: what each newcomer gave
    relevant_rows: pd.DataFrame  # user_index (newcomer number), anime_index: what they are scored on
    user_ids: np.ndarray  # MyAnimeList id of each newcomer

    def __len__(self) -> int:
        return len(self.favourites)

    def favourites_matrix(self, n_anime: int) -> sp.csr_matrix:
        """Binary (newcomers x anime) matrix of the favourites."""
        rows = self.favourites_rows
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows["user_index"], rows["anime_index"])),
                             shape=(len(self), n_anime))


def newcomer_split(newcomers: pd.DataFrame, max_favourites: int) -> NewcomerSplit:
    """Favourites and relevant anime of each newcomer with at least one rated anime beyond their favourites."""
    rated = newcomers[newcomers["rating"].to_numpy() > 0]
    rated = rated.sort_values(["user_id", "rating", "anime_index"], ascending=[True, False, True], kind="stable")
    rank = rated.groupby("user_id").cumcount().to_numpy()
    is_favourite = rank < max_favourites
    has_relevant = rated.loc[~is_favourite, "user_id"].unique()
    user_ids = np.sort(has_relevant).astype(np.int64)
    number = pd.Series(np.arange(len(user_ids)), index=user_ids)
    keep = rated["user_id"].isin(user_ids).to_numpy()

    def frame(mask: np.ndarray) -> pd.DataFrame:
        chosen = rated[mask & keep]
        return pd.DataFrame({"user_index": number.loc[chosen["user_id"]].to_numpy(np.int64),
                             "anime_index": chosen["anime_index"].to_numpy(np.int64)})

    favourites_rows = frame(is_favourite)
    grouped = favourites_rows.groupby("user_index", sort=True)["anime_index"]
    favourites = [np.asarray(values, dtype=np.int64) for _, values in grouped]
    return NewcomerSplit(favourites, favourites_rows, frame(~is_favourite), user_ids)


@dataclass
class Carve:
    """The validation carve of one training set."""

    train: pd.DataFrame  # the rows the carve's models fit on (carve users' non-test carve rows)
    relevant: sp.csr_matrix  # users x anime: each carve user's carve-test anime
    users: np.ndarray  # carve users with carve-test anime, in row order
    newcomers: NewcomerSplit  # the carve-newcomers' favourites and relevant anime
    n_users: int
    n_anime: int  # the model's (rated) anime, which EASE and the NCF fit on
    width: int  # the whole catalogue, which rankings cover


def carve(known: pd.DataFrame, n_users: int, n_anime: int, width: int, config: Settings | Mapping[str, Any]) -> Carve:
    """Re-split the non-test rows ``known`` (of ``n_users`` users, over ``n_anime`` rated anime of a catalogue of
    ``width``): carve-newcomers out entirely, then a per-user holdout of the rest."""
    config = Settings.of(config)
    evaluation, seed = config.evaluation, int(config.seed) + 1000
    carved = carve_validation(known, float(evaluation.holdout_fraction),
                              float(config.processing.validation_fraction), seed)
    newcomer = select_newcomers(n_users, float(config.hybrid.carve_newcomer_fraction),
                                np.random.default_rng(seed))
    is_newcomer = newcomer[carved["user_index"].to_numpy()]
    newcomer_rows = carved[is_newcomer].rename(columns={"user_index": "user_id"})
    limit = int(config.hybrid.carve_users)
    if newcomer.sum() > limit:  # a seeded sample of the carve-newcomers scores the favourites' mix
        sample = np.random.default_rng(seed).choice(np.flatnonzero(newcomer), size=limit, replace=False)
        newcomer_rows = newcomer_rows[np.isin(newcomer_rows["user_id"].to_numpy(), sample)]
    members = carved[~is_newcomer]
    test = members[members["split"].to_numpy() == SPLIT_TEST]
    relevant = interaction_matrix(test, n_users, width)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if len(users) > limit:  # a seeded sample keeps the component tables small on a large dataset
        users = np.sort(np.random.default_rng(seed).choice(users, size=limit, replace=False))
    return Carve(members[members["split"].to_numpy() != SPLIT_TEST], relevant, users,
                 newcomer_split(newcomer_rows, int(evaluation.newcomer_favourites)), n_users, n_anime, width)
