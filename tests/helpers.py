"""Helpers several test modules share, kept out of the product modules (nothing in src/ uses them)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.evaluation.baselines import ScoreFn, n_users_of
from src.evaluation.protocol import evaluate_ranker, ranker
from src.models.ease import interaction_matrix


def evaluate_scorer(score_fn: ScoreFn, train_interactions: pd.DataFrame, test_interactions: pd.DataFrame,
                    n_anime: int, k: int = 10, batch_size: int = 1024, users: np.ndarray | None = None,
                    tiebreak: np.ndarray | None = None) -> dict[str, float]:
    """``evaluate_ranker`` for a scorer, its known anime excluded as serving excludes them."""
    n_users = n_users_of(train_interactions, test_interactions)
    known = interaction_matrix(train_interactions, n_users, n_anime)
    return evaluate_ranker(ranker(score_fn, known, tiebreak), train_interactions, test_interactions, n_anime, k,
                           batch_size, users)
