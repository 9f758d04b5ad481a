"""Recall@k curves: read off one deep ranking, equal to the evaluator's Recall@k at every k."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.errors import UserError
from src.evaluation.curves import recall_at_each_k
from src.evaluation.protocol import evaluate_ranker, scorer_rankers
from tests.helpers import evaluate_scorer
from tests.test_evaluation import ScoreTable


def rows(pairs: list[tuple[int, int]]) -> pd.DataFrame:
    users, anime = zip(*pairs, strict=True)
    return pd.DataFrame({"user_index": np.array(users, np.int32), "anime_index": np.array(anime, np.int32),
                         "rating": np.full(len(pairs), 8, np.int8)})


def fixed_lists(lists: dict[int, list[int]]):
    """A ranker returning the given list for each user (-1 padded to k)."""
    def rank(users: np.ndarray, k: int) -> np.ndarray:
        return np.array([(lists[int(user)] + [-1] * k)[:k] for user in users], dtype=np.int64)
    return rank


def test_hand_computed_curve():
    # user 0 knows anime 9; held out: 2 and 5. Its list: 2, 0, 5, 1, then nothing (padding).
    known, test = rows([(0, 9)]), rows([(0, 2), (0, 5)])
    curve = recall_at_each_k(fixed_lists({0: [2, 0, 5, 1]}), known, test, n_anime=10, max_k=6, batch_size=1024)
    # Recall@k = hits in the first k / min(k, 2)
    np.testing.assert_allclose(curve, [1 / 1, 1 / 2, 2 / 2, 2 / 2, 2 / 2, 2 / 2])


def test_curve_is_the_evaluators_recall_at_every_k_and_ignores_the_batch_size():
    rng = np.random.default_rng(7)
    n_users, n_anime = 40, 60
    pairs = {(u, a) for u in range(n_users) for a in rng.choice(n_anime, size=rng.integers(3, 15), replace=False)}
    pairs = sorted(pairs)
    is_test = rng.random(len(pairs)) < 0.3
    known = rows([p for p, held in zip(pairs, is_test, strict=True) if not held])
    test = rows([p for p, held in zip(pairs, is_test, strict=True) if held])
    # integer scores make many ties: the popularity-like tie-break must hold at every depth
    scores = rng.integers(0, 4, size=(n_users, n_anime)).astype(np.float64)
    tiebreak = rng.permutation(n_anime)
    rank = scorer_rankers({"m": ScoreTable(scores)}, known, n_anime, n_users, tiebreak)["m"]
    curve = recall_at_each_k(rank, known, test, n_anime, max_k=25, batch_size=7)
    assert curve.shape == (25,)
    np.testing.assert_allclose(curve, recall_at_each_k(rank, known, test, n_anime, max_k=25, batch_size=1024))
    for k in (1, 2, 5, 10, 25):
        expected = evaluate_ranker(rank, known, test, n_anime, k=k, batch_size=1024)["recall"]
        assert curve[k - 1] == pytest.approx(expected, abs=1e-12)
    assert evaluate_scorer(ScoreTable(scores), known, test, n_anime, k=5,
                           tiebreak=tiebreak)["recall"] == pytest.approx(curve[4], abs=1e-12)


def test_curve_on_a_subset_of_users_and_refusals():
    known, test = rows([(0, 9), (1, 9)]), rows([(0, 2), (1, 3)])
    rank = fixed_lists({0: [2], 1: [4]})
    only_first = recall_at_each_k(rank, known, test, 10, max_k=2, batch_size=1024, users=np.array([0]))
    np.testing.assert_allclose(only_first, [1.0, 1.0])
    np.testing.assert_allclose(recall_at_each_k(rank, known, test, 10, max_k=2, batch_size=1024), [0.5, 0.5])
    with pytest.raises(ValueError, match="max_k"):
        recall_at_each_k(rank, known, test, 10, max_k=0, batch_size=1024)
    with pytest.raises(UserError, match="held-out"):
        recall_at_each_k(rank, known, test, 10, max_k=50, batch_size=1024, users=np.array([5]))
