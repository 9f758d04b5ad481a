"""The ``serving:`` section of config/config.yaml as a typed, validated object.

There are no defaults here: config/config.yaml is the one source of them. A missing or unknown key is refused
with its name, so a typo cannot quietly fall back to some other value.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from src.engine.personal_lists import STATUSES
from src.errors import UserError


@dataclass(frozen=True)
class ServingConfig:
    preference_percentile: float
    genre_boost: float
    preferred_genres: int
    fold_in_steps: int
    fold_in_step_size: float
    unrated_weight: float
    similar_content_weight: float
    default_n: int
    max_n: int
    max_liked: int
    max_query_length: int
    keep_versions: int  # models kept besides the current one (src/store/registry.py checks it)
    franchise_rules: bool  # a franchise not seen appears once, at its first entry (src/engine/diversity.py)
    seen_franchise_cap: int | None  # entries of a franchise the person has seen, at most; None: as they rank
    # an imported list (src/engine/personal_lists.py): what counts as taste, and how many plan-to-watch titles to rank
    list_taste_statuses: tuple[str, ...]
    list_unscored_is_taste: bool
    list_min_taste_score: int
    list_plan_to_watch: int
    list_link_titles: int  # the import page's shareable link holds at most this many of the best-scored titles
    list_link_min_score: int  # ... each scored at least this (a favourite, not merely watched)
    # candidates computed at publish (src/engine/candidates.py): per known user and per anime; 0: none
    candidates_per_user: int
    candidates_per_anime: int
    # the export's caps (src/web/list_import.py): gzipped upload, unpacked XML, entries
    list_max_upload_bytes: int
    list_max_xml_bytes: int
    list_max_entries: int

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any] | None) -> ServingConfig:
        """Build from the ``serving:`` mapping; raises UserError naming any missing or unknown key."""
        mapping = dict(mapping or {})
        names = [f.name for f in fields(cls)]
        if unknown := sorted(set(mapping) - set(names)):
            raise UserError(f"config serving section: unknown setting(s) {', '.join(unknown)}; "
                            f"known are {', '.join(names)}")
        if missing := [name for name in names if name not in mapping]:
            raise UserError(f"config serving section: missing setting(s) {', '.join(missing)}")
        config = cls(**mapping)
        config.validate()
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ServingConfig:
        """From a whole project config (as ``config.loader.load_config`` returns it)."""
        return cls.from_mapping(config.get("serving"))

    def validate(self) -> None:
        problems = []
        if not (_is_int(self.fold_in_steps) and self.fold_in_steps >= 0):
            problems.append("fold_in_steps must be an integer >= 0")
        if not (_is_number(self.fold_in_step_size) and self.fold_in_step_size >= 0):
            problems.append("fold_in_step_size must be >= 0")
        if not (_is_number(self.unrated_weight) and self.unrated_weight >= 0):
            problems.append("unrated_weight must be >= 0")
        if not (_is_number(self.similar_content_weight) and 0 <= self.similar_content_weight <= 1):
            problems.append("similar_content_weight must be between 0 and 1")
        if not (_is_number(self.preference_percentile) and 0 <= self.preference_percentile <= 100):
            problems.append("preference_percentile must be between 0 and 100")
        if not (_is_number(self.genre_boost) and self.genre_boost >= 0):
            problems.append("genre_boost must be >= 0")
        if not (_is_int(self.preferred_genres) and self.preferred_genres >= 1):
            problems.append("preferred_genres must be an integer >= 1")
        if not (_is_int(self.max_n) and _is_int(self.default_n) and 1 <= self.default_n <= self.max_n):
            problems.append("default_n must be an integer between 1 and max_n")
        if not (_is_int(self.max_liked) and self.max_liked >= 1):
            problems.append("max_liked must be an integer >= 1")
        if not isinstance(self.franchise_rules, bool):
            problems.append("franchise_rules must be true or false")
        if not (self.seen_franchise_cap is None or (_is_int(self.seen_franchise_cap) and self.seen_franchise_cap >= 1)):
            problems.append("seen_franchise_cap must be an integer >= 1, or null for no cap")
        problems += _list_problems(self)
        if not (_is_int(self.max_query_length) and self.max_query_length >= 1):
            problems.append("max_query_length must be an integer >= 1")
        if problems:
            raise UserError("config serving section: " + "; ".join(problems))


def _list_problems(config: ServingConfig) -> list[str]:
    problems = []
    statuses = config.list_taste_statuses
    if not (isinstance(statuses, (list, tuple)) and set(statuses) <= set(STATUSES) - {"plan_to_watch"}):
        problems.append(f"list_taste_statuses must be a list of {', '.join(STATUSES[:-1])}")
    if not isinstance(config.list_unscored_is_taste, bool):
        problems.append("list_unscored_is_taste must be true or false")
    if not (_is_int(config.list_min_taste_score) and 0 <= config.list_min_taste_score <= 10):
        problems.append("list_min_taste_score must be an integer from 0 to 10")
    if not (_is_int(config.list_plan_to_watch) and config.list_plan_to_watch >= 0):
        problems.append("list_plan_to_watch must be an integer >= 0")
    if not (_is_int(config.list_link_titles) and 1 <= config.list_link_titles <= config.max_liked):
        problems.append("list_link_titles must be an integer from 1 to max_liked")
    if not (_is_int(config.list_link_min_score) and 1 <= config.list_link_min_score <= 10):
        problems.append("list_link_min_score must be an integer from 1 to 10")
    for name in ("candidates_per_user", "candidates_per_anime"):
        if not (_is_int(getattr(config, name)) and 0 <= getattr(config, name) <= 10_000):
            problems.append(f"{name} must be an integer from 0 to 10000")
    for name in ("list_max_upload_bytes", "list_max_xml_bytes", "list_max_entries"):
        if not (_is_int(getattr(config, name)) and getattr(config, name) >= 1):
            problems.append(f"{name} must be an integer >= 1")
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN
