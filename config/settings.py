"""The project's settings as typed objects: one frozen dataclass per section of config/config.yaml.

config/config.yaml is the one source of defaults: nothing here has a default value. ``Settings.from_mapping`` (or
``load_settings``, at a command's edge) builds every section from the merged config mapping, refusing a missing or
unknown key with its dotted name, so a typo cannot quietly fall back to some other value. Maps whose keys are data
(a search grid, the content blocks' weights, the hybrid's weights) stay plain mappings.
"""
from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_type_hints

from config.loader import ConfigError, load_config

# The statuses of a MyAnimeList list entry (src/engine/personal_lists.py); all but plan_to_watch describe taste.
LIST_STATUSES = ("watching", "completed", "on_hold", "dropped", "plan_to_watch")

S = TypeVar("S", bound="Section")


class Section:
    """A config section: built from its mapping, every field required, nested sections built in turn."""

    NAME: ClassVar[str] = ""

    @classmethod
    def from_mapping(cls: type[S], mapping: Mapping[str, Any] | None, where: str | None = None) -> S:
        where = where or cls.NAME
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"config {where} section: must be a mapping of settings, not {type(mapping).__name__}")
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        if unknown := sorted(set(mapping) - set(names)):
            raise ConfigError(f"config {where} section: unknown setting(s) {', '.join(map(str, unknown))}; "
                              f"known are {', '.join(names)}")
        if missing := [name for name in names if name not in mapping]:
            raise ConfigError(f"config {where} section: missing setting(s) {', '.join(missing)}")
        hints = get_type_hints(cls)
        values = {name: _typed(hints[name], mapping[name], f"{where}.{name}") for name in names}
        section = cls(**values)
        section.validate()
        return section

    def validate(self) -> None:
        """Raise ConfigError naming what is wrong; a section with rules of its own overrides this."""

    def as_dict(self) -> dict[str, Any]:
        """The plain mapping this section was built from (tuples as lists), e.g. for a manifest or Comet."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


def _typed(hint: Any, value: Any, where: str) -> Any:
    """``value`` as the field's type: a nested section is built, a sequence becomes a tuple, a mapping is copied."""
    if isinstance(hint, type) and issubclass(hint, Section):
        return hint.from_mapping(value, where)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        section = next((arg for arg in typing.get_args(hint) if isinstance(arg, type) and issubclass(arg, Section)),
                       None)
        return value if section is None or value is None else section.from_mapping(value, where)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if origin in (dict, Mapping) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config {where}: must be a mapping, not {type(value).__name__}")
        return dict(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Section):
        return value.as_dict()
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


# ------------------------------------------------------------------------------------------------------------------
# data, processing
# ------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GcsSettings(Section):
    bucket_name: str
    prefix: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class DataSettings(Section):
    NAME = "data"
    source: str  # "sample" (embedded) or "gcs"
    sample_dir: str
    gcs: GcsSettings
    max_malformed_share: float
    block_size_bytes: int

    def validate(self) -> None:
        if self.source not in ("sample", "gcs"):
            raise ConfigError(f"config data.source must be 'sample' or 'gcs', not {self.source!r}")


@dataclass(frozen=True)
class ProcessingSettings(Section):
    NAME = "processing"
    min_user_ratings: int
    rating_min: int
    rating_max: int
    validation_fraction: float


# ------------------------------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LearningRateSettings(Section):
    start: float
    max: float
    min: float
    rampup_epochs: int
    sustain_epochs: int
    exp_decay: float


@dataclass(frozen=True)
class OriginalObjectiveSettings(Section):
    epochs: int
    batch_size: int
    learning_rate: LearningRateSettings


@dataclass(frozen=True)
class EvaluationSettings(Section):
    NAME = "evaluation"
    holdout_fraction: float
    newcomer_fraction: float
    newcomer_favourites: int
    new_anime_fraction: float
    refit: bool
    k: int
    batch_size: int
    max_users: int | None
    compare_original_objective: bool
    original_objective: OriginalObjectiveSettings
    baselines: dict[str, dict[str, list[Any]]]  # each baseline's search grid: setting -> candidate values


# ------------------------------------------------------------------------------------------------------------------
# the NCF and its training
# ------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSettings(Section):
    NAME = "model"
    embedding_size: int
    temperature: float
    init_stddev: float
    jit_compile: bool


@dataclass(frozen=True)
class TrainingSettings(Section):
    NAME = "training"
    unrated_weight: float
    batch_size: int
    epochs: int
    max_steps: int
    learning_rate: LearningRateSettings
    early_stopping_patience: int | None
    validation_every: int
    verbose: int


# ------------------------------------------------------------------------------------------------------------------
# the hybrid's search space
# ------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemItemSearch(Section):
    values: tuple[str, ...]
    regularisation: tuple[float, ...]
    neighbours: tuple[int | None, ...]
    favourites_dropout: float | str
    dense_max_anime: int
    dense_max_cost: int
    derive_max_cost: int
    max_anime: int


@dataclass(frozen=True)
class ItemItemSetting(Section):
    values: str
    regularisation: float
    neighbours: int | None
    max_anime: int | None


@dataclass(frozen=True)
class HybridDefault(Section):
    weights: dict[str, float]
    favourites_weights: dict[str, float]
    similar_users: int
    item_item: ItemItemSetting


@dataclass(frozen=True)
class HybridSearch(Section):
    NAME = "hybrid"
    significance: float
    item_item: ItemItemSearch
    weights: tuple[float, ...]
    components: tuple[str, ...]
    favourites_components: tuple[str, ...]
    similar_users: tuple[int, ...]
    carve_newcomer_fraction: float
    carve_users: int
    default: HybridDefault


# ------------------------------------------------------------------------------------------------------------------
# content features, comet, tuning
# ------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContentSection(Section):
    NAME = "content"
    dimensions: int
    names_dimensions: int
    seed: int
    weights: dict[str, float]


@dataclass(frozen=True)
class CometSettings(Section):
    NAME = "comet"
    project_name: str
    workspace: str | None


@dataclass(frozen=True)
class TuningSettings(Section):
    NAME = "tuning"
    grid: dict[str, list[Any]]  # dotted setting -> candidate values (python pipeline/tuning_pipeline.py)


# ------------------------------------------------------------------------------------------------------------------
# serving
# ------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServingConfig(Section):
    """The ``serving:`` section (src/engine/, src/web/)."""

    NAME = "serving"
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
    def from_config(cls, config: Mapping[str, Any] | Settings) -> ServingConfig:
        """From a whole project config (a Settings, or the mapping ``config.loader.load_config`` returns)."""
        if isinstance(config, Settings):
            return config.serving
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
            raise ConfigError("config serving section: " + "; ".join(problems))



def _list_problems(config: ServingConfig) -> list[str]:
    problems = []
    statuses = config.list_taste_statuses
    if not (isinstance(statuses, (list, tuple)) and set(statuses) <= set(LIST_STATUSES) - {"plan_to_watch"}):
        problems.append(f"list_taste_statuses must be a list of {', '.join(LIST_STATUSES[:-1])}")
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


# ------------------------------------------------------------------------------------------------------------------
# the whole config
# ------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings(Section):
    """Every section of config/config.yaml, typed."""

    NAME = "top-level"
    seed: int
    data: DataSettings
    processing: ProcessingSettings
    evaluation: EvaluationSettings
    model: ModelSettings
    training: TrainingSettings
    hybrid: HybridSearch
    content: ContentSection
    comet: CometSettings
    serving: ServingConfig
    tuning: TuningSettings

    @classmethod
    def of(cls, config: Settings | Mapping[str, Any]) -> Settings:
        """``config`` itself when it is already typed; a mapping (the whole merged config) is checked and typed once."""
        return config if isinstance(config, Settings) else cls.from_mapping(config)

    def replaced(self, dotted: str, value: Any) -> Settings:
        """A copy with the setting at ``dotted`` ("training.learning_rate.max") set to ``value``, checked again."""
        mapping = self.as_dict()
        *path, last = dotted.split(".")
        section = mapping
        for key in path:
            if not isinstance(section.get(key), dict):
                raise ConfigError(f"there is no setting {dotted!r}")
            section = section[key]
        if last not in section:
            raise ConfigError(f"there is no setting {dotted!r}")
        section[last] = value
        return Settings.from_mapping(mapping)

    def value(self, dotted: str) -> Any:
        """The setting at ``dotted``, as the config file writes it."""
        found: Any = self.as_dict()
        for key in dotted.split("."):
            if not isinstance(found, dict) or key not in found:
                raise ConfigError(f"there is no setting {dotted!r}")
            found = found[key]
        return found


def load_settings(path: str | Path | None = None) -> Settings:
    """config/config.yaml with the file at ``path`` (if any) laid over it, typed; raises ConfigError on any problem."""
    return Settings.from_mapping(load_config(path))


