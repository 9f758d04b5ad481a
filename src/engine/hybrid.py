"""The hybrid: a weighted sum of the scorers' outputs, each first scaled to [0, 1] per profile.

Scaling divides a component by its maximum over the whole catalogue (after clipping at 0), so the weights mix
comparable numbers whatever each scorer's own range. Components with weight 0 are not computed at all.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from src.engine.interactions import Profiles
from src.engine.scorers import ComponentScores, Scorer


@dataclass
class HybridScores:
    total: np.ndarray  # (n profiles x n anime), what ranking cuts
    parts: dict[str, ComponentScores]  # the computed components, unscaled, for the reasons
    weights: dict[str, float]  # normalised to sum to 1


def scale_to_unit(values: np.ndarray) -> np.ndarray:
    """Clip at 0 and divide each row by its maximum, so every component lives in [0, 1]."""
    values = np.maximum(np.asarray(values, dtype=np.float32), 0.0)
    top = values.max(axis=1, keepdims=True) if values.shape[1] else np.zeros((len(values), 1), np.float32)
    return np.divide(values, top, out=np.zeros_like(values), where=top > 0)


class Hybrid:
    def __init__(self, scorers: Mapping[str, Scorer]) -> None:
        self.scorers = dict(scorers)

    def score(self, profiles: Profiles, weights: Mapping[str, float]) -> HybridScores:
        """Weighted mean of the scaled components named in ``weights`` (weights >= 0, not all 0)."""
        if unknown := sorted(set(weights) - set(self.scorers)):
            raise ValueError(f"no scorer named {', '.join(unknown)}; the hybrid has {', '.join(self.scorers)}")
        total_weight = float(sum(weights.values()))
        normalised = {name: float(weight) / total_weight for name, weight in weights.items() if weight > 0}
        if not normalised:
            raise ValueError("at least one hybrid weight must be above 0")
        parts = {name: self.scorers[name].score(profiles) for name in normalised}
        total = sum(weight * scale_to_unit(parts[name].values) for name, weight in normalised.items())
        return HybridScores(total.astype(np.float32), parts, normalised)
