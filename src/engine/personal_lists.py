"""A person's own anime list (an imported MyAnimeList export) as a profile: what each status and score counts as.

MyAnimeList's statuses are watching, completed, on-hold, dropped and plan to watch; a score is 1 to 10, 0 when the
person gave none. Everything on the list is excluded from what is recommended back, whatever its status. What the
profile is made of (``ListPolicy``, config/config.yaml ``serving.list_*``):

- *taste*: the entries of ``taste_statuses``, with their scores, exactly as a known user's rated rows; an unscored
  one counts as a known user's watched-but-unrated row when ``unscored_is_taste``;
- a scored entry under ``min_taste_score`` only excludes: a title someone scored 2 says what they did not like,
  and the model's scorers read every listed title as a vote for its neighbours;
- plan-to-watch is intent, not taste: never in the profile, but its titles are ranked for the person, best fit first
  (``ListProfile.plan_to_watch``), as the list they already meant to watch.

The choice was measured (bench/list_policy.py) on a validation carve of the newcomers' lists, never on their test
part: the embedded data has scores and unscored rows but no statuses, so "dropped" takes what a low score measured.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from config.settings import LIST_STATUSES

STATUSES = LIST_STATUSES  # the statuses of a list entry, named once beside the settings that refer to them


@dataclass(frozen=True)
class ListEntry:
    """One title of a person's list: its MyAnimeList id, their score (0: none), status (one of STATUSES) and the
    title as the list names it (what an anime the catalogue does not know is shown by)."""

    anime_id: int
    score: int
    status: str
    title: str = ""


@dataclass(frozen=True)
class ListPolicy:
    taste_statuses: frozenset[str]
    unscored_is_taste: bool
    min_taste_score: int


@dataclass(frozen=True)
class ListProfile:
    """A list split for the engine: catalogue rows (anime indices) and scores."""

    taste: np.ndarray  # anime indices that describe the person's taste
    taste_scores: np.ndarray  # their scores (0: watched, not scored)
    listed: np.ndarray  # every anime of the list the catalogue knows: never recommended back
    plan_to_watch: np.ndarray  # the plan-to-watch titles the catalogue knows, in the list's order
    ignored: list[int]  # ids the catalogue does not know, in the list's order

    def scored_by(self) -> tuple[np.ndarray, np.ndarray]:
        """(anime, scores) the profile is scored by: its taste; for a list of nothing but plans, the plans (what
        the person looks forward to is all there is to go on)."""
        if len(self.taste):
            return self.taste, self.taste_scores
        return self.plan_to_watch, np.zeros(len(self.plan_to_watch))

    @property
    def watched(self) -> np.ndarray:
        """The listed anime but the plans: whose franchises the person has seen."""
        return np.setdiff1d(self.listed, self.plan_to_watch)


def list_profile(entries: Sequence[ListEntry], index_of: Callable[[int], int | None],
                 policy: ListPolicy) -> ListProfile:
    """Split ``entries`` by ``policy`` (module docstring); ``index_of``: a MyAnimeList id's catalogue row, or None."""
    taste, scores, listed, planned, ignored = [], [], [], [], []
    for entry in entries:
        index = index_of(entry.anime_id)
        if index is None:
            ignored.append(int(entry.anime_id))
            continue
        listed.append(index)
        if entry.status == "plan_to_watch":
            planned.append(index)
        elif entry.status in policy.taste_statuses and _is_taste(entry.score, policy):
            taste.append(index)
            scores.append(entry.score)
    return ListProfile(np.array(taste, np.int64), np.array(scores, np.float64), np.array(listed, np.int64),
                       np.array(planned, np.int64), ignored)


def _is_taste(score: int, policy: ListPolicy) -> bool:
    return score >= policy.min_taste_score if score > 0 else policy.unscored_is_taste
