"""Helpers several test modules share, kept out of the product modules (nothing in src/ uses them)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.evaluation.baselines import n_users_of
from src.evaluation.protocol import evaluate_ranker, ranker
from src.models.ease import interaction_matrix
from src.models.method import Method


def evaluate_scorer(method: Method, train_interactions: pd.DataFrame, test_interactions: pd.DataFrame,
                    n_anime: int, k: int = 10, batch_size: int = 1024, users: np.ndarray | None = None,
                    tiebreak: np.ndarray | None = None) -> dict[str, float]:
    """``evaluate_ranker`` for a method scoring user rows, its known anime excluded as serving excludes them."""
    n_users = n_users_of(train_interactions, test_interactions)
    known = interaction_matrix(train_interactions, n_users, n_anime)
    return evaluate_ranker(ranker(method, known, tiebreak), train_interactions, test_interactions, n_anime, k,
                           batch_size, users)
