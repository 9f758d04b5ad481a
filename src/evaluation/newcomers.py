"""The newcomer protocol: people the model never saw, recommended for from a few favourites.

Processing holds a seeded share of users out of training entirely (the newcomer view of the processed table,
src/evaluation/splitting.py: their whole lists, ratings of new anime included). For each of them:

* favourites ``F_u`` = their top-rated anime, at most ``newcomer_favourites``, best first (ties: lower anime index);
* relevant ``T_u`` = their other rated anime; unrated rows are neither relevant nor favourites;
* a method ranks the catalogue from ``F_u`` alone, ``F_u`` excluded, and the metrics of ``metrics`` are computed
  on its top k exactly as for known users.

A newcomer method is a ranker over newcomer numbers 0..m-1; it looks up their favourites itself.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from src.engine.diversity import FranchiseRules, franchise_top_k
from src.evaluation.protocol import RankFn


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


def favourites_ranker(split: NewcomerSplit, rank_favourites: Callable[[list[np.ndarray], int], np.ndarray]) -> RankFn:
    """A newcomer ranker from a function of favourites lists (e.g. ``Recommender.rank_favourites``)."""
    def rank(newcomers: np.ndarray, k: int) -> np.ndarray:
        return rank_favourites([split.favourites[i] for i in newcomers], k)
    return rank


def item_scorer_rankers(split: NewcomerSplit, scorers: Mapping[str, Callable[[sp.csr_matrix], np.ndarray]],
                        n_anime: int, tiebreak: np.ndarray | None = None, allowed: np.ndarray | None = None,
                        rules: FranchiseRules | None = None) -> dict[str, RankFn]:
    """Rankers for baselines that score from an interaction row (popularity, item-kNN, EASE): given the favourites
    as the newcomer's only row, favourites excluded, cut as serving cuts (``allowed``: what the app's lists may
    show; ``rules``: their franchise rules)."""
    favourites = split.favourites_matrix(n_anime)

    def ranker(score_rows: Callable[[sp.csr_matrix], np.ndarray]) -> RankFn:
        def rank(newcomers: np.ndarray, k: int) -> np.ndarray:
            rows = favourites[newcomers]
            return franchise_top_k(np.asarray(score_rows(rows)), k, rules, exclude=rows, allowed=allowed,
                                   tiebreak=tiebreak)
        return rank

    return {name: ranker(score_rows) for name, score_rows in scorers.items()}
