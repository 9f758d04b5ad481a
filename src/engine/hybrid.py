"""The hybrid: a weighted sum of the scorers' outputs, each first normalised per profile over its candidates.

Each scorer normalises its own scores onto [0, 1] over the anime the profile does not have yet (src/engine/
scorers.py), so the weights mix comparable numbers whatever each scorer's own range. Components with weight 0
are not computed at all. The weights are chosen per dataset on the validation carve (src/tuning/hybrid.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from src.engine.interactions import Profiles
from src.engine.scorers import Scorer
from src.models.method import Scores


@dataclass
class HybridScores:
    total: np.ndarray  # (n profiles x n anime), what ranking cuts; known anime 0
    parts: dict[str, Scores]  # the computed components, before normalising, for the reasons
    weights: dict[str, float]  # the weights used, normalised to sum to 1


class Hybrid:
    def __init__(self, scorers: Mapping[str, Scorer]) -> None:
        self.scorers = dict(scorers)

    def score(self, profiles: Profiles, weights: Mapping[str, float]) -> HybridScores:
        """Weighted mean of the normalised components named in ``weights`` (weights >= 0, not all 0)."""
        if unknown := sorted(set(weights) - set(self.scorers)):
            raise ValueError(f"no scorer named {', '.join(unknown)}; the hybrid has {', '.join(self.scorers)}")
        total_weight = float(sum(weights.values()))
        if not total_weight > 0:
            raise ValueError("at least one hybrid weight must be above 0")
        used = {name: float(weight) / total_weight for name, weight in weights.items() if weight > 0}
        parts = {name: self.scorers[name].score(profiles) for name in used}
        total = sum(weight * self.scorers[name].normalise(parts[name].values, profiles.known)
                    for name, weight in used.items())
        return HybridScores(np.asarray(total, dtype=np.float32), parts, used)
