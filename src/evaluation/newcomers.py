"""The newcomer protocol: people the model never saw, recommended for from a few favourites.

Processing holds a seeded share of users out of training entirely (the newcomer view of the processed table,
src/data/splits.py: their whole lists, ratings of new anime included). For each of them:

* favourites ``F_u`` = their top-rated anime, at most ``newcomer_favourites``, best first (ties: lower anime index);
* relevant ``T_u`` = their other rated anime; unrated rows are neither relevant nor favourites;
* a method ranks the catalogue from ``F_u`` alone, ``F_u`` excluded, and the metrics of ``metrics`` are computed
  on its top k exactly as for known users.

A newcomer method is a ranker over newcomer numbers 0..m-1; it looks up their favourites itself.

The imported-list protocol asks the same people another question (``import_split``): what if they brought their
whole list (a MyAnimeList export)? A seeded per-person share of their rated anime is held out (relevant); the rest,
rated and watched-but-unrated rows alike, is their list, sent whole (the 2016 data has no statuses: a rated row is
"completed" with its score, an unrated one "completed" without a score).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from src.data.splits import SPLIT_TEST, NewcomerSplit, assign_splits
from src.engine.diversity import FranchiseRules, franchise_top_k
from src.engine.personal_lists import ListEntry
from src.evaluation.protocol import RankFn
from src.models.ease import interaction_matrix
from src.models.method import Method


@dataclass(frozen=True)
class ImportSplit:
    lists: list[list[ListEntry]]  # each person's list as they would export it (``anime_id``: the anime index)
    list_rows: pd.DataFrame  # user_index (person number), anime_index, rating: the lists as interaction rows
    relevant_rows: pd.DataFrame  # user_index, anime_index: the held-out rated anime, to be found
    favourites: list[np.ndarray]  # each list's top-rated anime (at most the favourites count), best first

    def __len__(self) -> int:
        return len(self.lists)

    def rows_matrix(self, n_anime: int, values: str) -> sp.csr_matrix:
        """The lists as an interaction matrix with ``values`` (src/models/ease.py), as a baseline reads a user's row."""
        return interaction_matrix(self.list_rows, len(self), n_anime, values)


def import_split(newcomers: pd.DataFrame, holdout_fraction: float, max_favourites: int, seed: int) -> ImportSplit:
    """Each newcomer's list and held-out anime (module docstring): ``newcomers`` holds their rows (user_id,
    anime_index, rating); only people with a held-out anime are kept, numbered by increasing user_id."""
    user_ids, person = np.unique(newcomers["user_id"].to_numpy(np.int64), return_inverse=True)
    rating = newcomers["rating"].to_numpy()
    split = assign_splits(person, rating, holdout_fraction, 0.0, np.random.default_rng(seed))
    held_out = split == SPLIT_TEST
    kept = np.flatnonzero(np.bincount(person[held_out], minlength=len(user_ids)) > 0)
    number = np.full(len(user_ids), -1, np.int64)
    number[kept] = np.arange(len(kept))
    in_kept = number[person] >= 0
    rows = pd.DataFrame({"user_index": number[person], "anime_index": newcomers["anime_index"].to_numpy(np.int64),
                         "rating": rating})[in_kept]
    listed, relevant = rows[~held_out[in_kept]], rows[held_out[in_kept]]
    lists, favourites = [], []
    for _, group in listed.sort_values(["user_index", "rating", "anime_index"], ascending=[True, False, True],
                                       kind="stable").groupby("user_index", sort=True):
        anime, scores = group["anime_index"].to_numpy(), group["rating"].to_numpy()
        lists.append([ListEntry(int(j), int(score), "completed") for j, score in zip(anime, scores, strict=True)])
        favourites.append(anime[scores > 0][:max_favourites])
    return ImportSplit(lists, listed.reset_index(drop=True), relevant[["user_index", "anime_index"]].reset_index(
        drop=True), favourites)


def favourites_ranker(split: NewcomerSplit, rank_favourites: Callable[[list[np.ndarray], int], np.ndarray]) -> RankFn:
    """A newcomer ranker from a function of favourites lists (e.g. ``Recommender.rank_favourites``)."""
    def rank(newcomers: np.ndarray, k: int) -> np.ndarray:
        return rank_favourites([split.favourites[i] for i in newcomers], k)
    return rank


def item_scorer_rankers(split: NewcomerSplit, scorers: Mapping[str, Method], n_anime: int,
                        tiebreak: np.ndarray | None = None, allowed: np.ndarray | None = None,
                        rules: FranchiseRules | None = None) -> dict[str, RankFn]:
    """Rankers for baselines that score from an interaction row (popularity, item-kNN, EASE): given the favourites
    as the newcomer's only row, favourites excluded, cut as serving cuts (``allowed``: what the app's lists may
    show; ``rules``: their franchise rules)."""
    favourites = split.favourites_matrix(n_anime)

    def ranker(method: Method) -> RankFn:
        def rank(newcomers: np.ndarray, k: int) -> np.ndarray:
            rows = favourites[newcomers]
            return franchise_top_k(method.score(rows).values, k, rules, exclude=rows, allowed=allowed,
                                   tiebreak=tiebreak)
        return rank

    return {name: ranker(method) for name, method in scorers.items()}
