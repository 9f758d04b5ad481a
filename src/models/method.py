"""One interface for a recommendation method: every baseline of the evaluation and every scorer of the engine.

A method is fitted once, then scores batches of people:

- fitting: a baseline's ``fit`` classmethod, from an interaction matrix, its settings and a seed
  (src/evaluation/baselines.py), or an engine scorer's constructor, from a trained model's state
  (src/engine/scorers.py);
- ``score(who) -> Scores``: ``values`` is an (n x ``width``) float array, one row per person of ``who``, higher is
  better, -inf for an anime the method must never recommend (one it knows nothing of); ``evidence`` is what a
  reason needs besides (the engine's similar users' counts). ``takes`` says what ``who`` is: ``"users"``, user rows
  of the fitted matrix (ALS, the NCF's embeddings); ``"rows"``, interaction rows (popularity, item-kNN and EASE
  score a person's row alone, so a newcomer's favourites too); ``"profiles"``, the engine's ``Profiles``. A row
  with nothing in it (a person with no anime) still gets a row of scores.
- ranking is no method's business: every list, served or evaluated, is cut from ``values`` by the one ``top_k`` of
  src/engine/ranking.py (known anime excluded, equal scores to the earlier anime of the popularity order, rows
  with too few candidates padded with -1).

tests/test_method_contract.py holds every baseline and every engine scorer to this, on one small matrix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

Who = TypeVar("Who", contravariant=True)
TAKES = ("users", "rows", "profiles")


@dataclass
class Scores:
    """What a method says about a batch: its (n x width) ``values`` and the ``evidence`` its reasons need."""
    values: np.ndarray
    evidence: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Method(Protocol[Who]):
    name: str  # the method's own name (a baseline's is its key in the config and the report)
    takes: str  # what ``score`` is given: one of TAKES
    width: int  # columns of its scores: the anime it was fitted on, or the whole catalogue

    def score(self, who: Who) -> Scores:
        """(n x width) scores of the n people ``who`` names: higher is better, -inf = never."""
        ...
