"""The hybrid's settings for one model: chosen per dataset on the validation carve (src/tuning/hybrid.py), recorded in
the model's manifest, and read back here by the engine. A model without them (a hand-made test set) falls back
to the ``hybrid.default`` section of config/config.yaml.

The two sliders people see tilt the chosen mix between its two sides: "similar users" (the NCF score and the
neighbours' favourites) and "similar anime" (EASE's item-item weights and the embedding similarity).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from src.engine.scorers import ANIME_SIDE, COMPONENTS, USER_SIDE
from src.errors import ArtifactError

# The components and the two sliders' sides come from the scorers themselves (src/engine/scorers.py: SCORERS).
# "unrated" (never-rated titles' content match) is added to every mix by the engine at serving.unrated_weight.
# Names a model published before issue 31 records: "content" was the cosine of the NCF's anime embeddings.
FORMER_NAMES = {"content": "embedding"}


@dataclass(frozen=True)
class HybridSettings:
    weights: dict[str, float]  # known users
    favourites_weights: dict[str, float]  # newcomers, from their favourites
    similar_users: int
    item_item: dict[str, Any]  # how EASE was fitted: values, regularisation, neighbours, max_anime
    favourites_item_item: dict[str, Any] | None = None  # the newcomers' own EASE, when it differs

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> HybridSettings:
        try:
            settings = cls(_current_names(mapping["weights"]), _current_names(mapping["favourites_weights"]),
                           int(mapping["similar_users"]), dict(mapping["item_item"]),
                           dict(mapping["favourites_item_item"]) if mapping.get("favourites_item_item") else None)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ArtifactError(f"the hybrid settings are incomplete or malformed ({error}); retrain") from error
        for name, weights in (("weights", settings.weights), ("favourites_weights", settings.favourites_weights)):
            if unknown := sorted(set(weights) - set(COMPONENTS)):
                raise ArtifactError(f"hybrid {name} name unknown components {unknown}; retrain")
            if any(w < 0 for w in weights.values()) or not sum(weights.values()) > 0:
                raise ArtifactError(f"hybrid {name} must be >= 0 and not all 0; retrain")
        if settings.similar_users < 1:
            raise ArtifactError("hybrid similar_users must be >= 1; retrain")
        return settings

    def restricted_to(self, available: Mapping[str, Any]) -> HybridSettings:
        """These settings with only the components in ``available`` (the NCF alone when none is left)."""
        def keep(weights: dict[str, float]) -> dict[str, float]:
            return {name: weight for name, weight in weights.items() if name in available} or {"ncf": 1.0}
        return dataclasses.replace(self, weights=keep(self.weights), favourites_weights=keep(self.favourites_weights))

    def as_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "favourites_weights": self.favourites_weights,
                "similar_users": self.similar_users, "item_item": self.item_item,
                "favourites_item_item": self.favourites_item_item}


def _current_names(weights: Mapping[str, Any]) -> dict[str, float]:
    """A recorded mix with every component under today's name (FORMER_NAMES), as floats."""
    return {FORMER_NAMES.get(str(name), str(name)): float(weight) for name, weight in weights.items()}


def default_slider_weights(weights: Mapping[str, float]) -> tuple[float, float]:
    """The (similar users, similar anime) split the chosen mix amounts to, summing to 1."""
    user = sum(weights.get(name, 0.0) for name in USER_SIDE)
    anime = sum(weights.get(name, 0.0) for name in ANIME_SIDE)
    return (user / (user + anime), anime / (user + anime)) if user + anime > 0 else (0.5, 0.5)


def tilted(weights: Mapping[str, float], sliders: tuple[float, float] | None) -> dict[str, float]:
    """The mix with its two sides re-weighted to ``sliders`` = (similar users, similar anime), each side keeping its
    own inner proportions; a side the chosen mix leaves empty falls back to its main signal (NCF, EASE)."""
    if sliders is None:
        return dict(weights)
    mixed = {name: weight for name, weight in weights.items() if name not in USER_SIDE + ANIME_SIDE}
    scale = sum(weight for name, weight in weights.items() if name in USER_SIDE + ANIME_SIDE) or 1.0
    for side, fallback, share in ((USER_SIDE, "ncf", sliders[0]), (ANIME_SIDE, "item_item", sliders[1])):
        inner = {name: weights.get(name, 0.0) for name in side if weights.get(name, 0.0) > 0} or {fallback: 1.0}
        total = sum(inner.values())
        mixed.update({name: scale * share * weight / total for name, weight in inner.items()})
    return {name: weight for name, weight in mixed.items() if weight > 0}
