"""Choosing settings on a validation carve of the training rows; the test set is never read.

The carve re-splits the rows a model may learn from (everything but the test split) the way processing split
them: a per-user share of each user's rated anime becomes the carve's test, and a share of the users is held out
of the carve's fit entirely as carve-newcomers. Two searches run on it, each fitting the NCF on the carve through
``fit_carve_ncf``:

- ``choose_settings`` (every training run): the hybrid's settings for the data being trained. It fits the NCF
  and EASE on the carve once, scores every component for the carve's users, then searches EASE's settings, the
  component weights and the neighbour count, and the favourites' weights for the carve-newcomers. A candidate
  replaces the current choice only when its per-user Recall@k beats the current one by more than
  ``hybrid.significance`` standard errors of the paired difference: on small data, noise does not choose the mix.
- ``tune`` (``python pipeline/tuning_pipeline.py``): the NCF's own settings (``tuning.grid``), one at a time,
  by the ncf component's carve Recall@k, to copy into config/config.yaml.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from config.settings import ServingConfig, Settings
from src.data.splits import SPLIT_TRAIN, SPLIT_VALIDATION, Carve
from src.engine.interactions import Profiles
from src.engine.ranking import top_k
from src.engine.recommender import Recommender
from src.evaluation.metrics import paired_difference, recall_per_user
from src.logger import get_logger
from src.models.ease import ItemWeights, ease_from_gram, gram, interaction_matrix, keep_top_neighbours, most_rated
from src.store.artifacts import ModelArtifacts
from src.training.train import TrainingData, fit_ncf, user_targets

logger = get_logger(__name__)


def significantly_better(candidate: np.ndarray, current: np.ndarray, significance: float) -> bool:
    """Whether the candidate's per-user recalls beat the current ones by more than ``significance`` standard
    errors of the paired difference (a one-sided paired z-test)."""
    if len(candidate) == 0:  # a carve too small to hold a user (tiny datasets): nothing can be shown better
        return False
    difference, spread = paired_difference(candidate, current)
    return bool(difference > significance * spread and difference > 0)


class ComponentTable:
    """Every component's normalised scores for a set of profiles, computed once; any weighted mix is then ranked
    by the serving ``top_k`` and scored per user without recomputing the components.

    Only the model's (rated) anime are kept: every carve-test anime is one of them, and the never-rated titles'
    own weight is not chosen here (serving.unrated_weight), so the rest of the catalogue would only cost time.
    Columns are kept in the tie-break (popularity) order: ``top_k`` without a tie-break then breaks ties exactly
    as serving does, without reordering a users x anime array for every mix.
    """

    def __init__(self, engine: Recommender, profiles: Any, relevant: sp.csr_matrix, k: int,
                 names: tuple[str, ...], favourites: bool = False) -> None:
        self.engine, self.profiles, self.k = engine, profiles, k
        self.hybrid = engine.favourites_hybrid if favourites else engine.hybrid
        order = engine.catalogue.popularity_order
        self.order = order[order < engine.n_model_anime]
        self.known = sp.csr_matrix(profiles.known[:, self.order])
        self.relevant = relevant[:, self.order].toarray() > 0
        self.parts = {name: self.normalised(name) for name in names}

    def normalised(self, name: str) -> np.ndarray:
        scorer = self.hybrid.scorers[name]
        values = scorer.normalise(scorer.score(self.profiles).values, self.profiles.known)
        return np.ascontiguousarray(values[:, self.order])

    def recall(self, weights: dict[str, float]) -> np.ndarray:
        total: np.ndarray | None = None
        for name, weight in weights.items():
            if weight > 0:
                part = np.float32(weight) * self.parts[name]
                total = part if total is None else np.add(total, part, out=total)
        assert total is not None, "a mix needs a component with a positive weight"
        lists = top_k(total, self.k, exclude=self.known)
        return recall_per_user(lists, self.relevant, self.k)


def _coordinate_search(table: ComponentTable, start: dict[str, float], components: list[str], candidates: list[float],
                       significance: float, trials: list[dict[str, Any]], label: str) -> dict[str, float]:
    """One component at a time: its best candidate weight replaces the current one when significantly better."""
    weights, current = dict(start), table.recall(start)
    trials.append({"search": label, "weights": dict(weights), "recall": float(current.mean()), "kept": True})
    for name in components:
        scored = [(weight, table.recall({**weights, name: weight})) for weight in candidates]
        weight, recall = max(scored, key=lambda pair: pair[1].mean())
        kept = significantly_better(recall, current, significance)
        trials += [{"search": label, "weights": {**weights, name: w}, "recall": float(r.mean()),
                    "kept": kept and w == weight} for w, r in scored]
        if kept:
            weights, current = {**weights, name: weight}, recall
    return weights


@dataclass
class _EaseCandidate:
    """One EASE candidate of ``hybrid.item_item``, and its denoising counterpart for newcomers: the same settings
    fitted as EDLAE with the favourites' dropout (``favourites_dropout``; none when that is 0)."""

    settings: dict[str, Any]
    weights: ItemWeights
    servable: dict[str, bool]  # may it be served to "known" users and to "newcomers"
    denoised_settings: dict[str, Any] | None = None
    denoised_weights: ItemWeights | None = None


def favourites_dropout(setting: Any, profile_anime: float, favourites: int) -> float:
    """EDLAE's dropout for the newcomers' EASE: ``hybrid.item_item.favourites_dropout`` as a number, or "matched":
    the share of a profile that a favourites list leaves out, 1 - favourites / the carve users' mean profile size
    (about 0.95 at 400 ratings, where 20 favourites stand for a list of ~380; 0 when profiles are no longer)."""
    if setting == "matched":
        return round(max(0.0, 1.0 - favourites / profile_anime), 3) if profile_anime > 0 else 0.0
    return float(setting)


def _item_item_candidates(carve_data: Carve, config: Settings) -> Iterator[_EaseCandidate]:
    """Each EASE candidate of ``hybrid.item_item``, dense ones first; one Gram per values, shared by the
    regularisations and by the newcomers' EDLAE candidates.

    A dense B is always measured (it is the EASE baseline and the reference every candidate must beat), but it is
    served only up to ``dense_max_anime`` anime (it costs n^2 x 4 bytes in memory and in the image), and only to a
    group whose profiles cost at most ``dense_max_cost`` multiply-adds each (profile anime in EASE's support x
    support size: the carve users' mean for known users, ``serving.max_liked`` favourites for newcomers). A pruned
    B costs a few per profile anime and may always be served."""
    grid = config.hybrid.item_item
    max_anime, max_cost = grid.max_anime, float(grid.dense_max_cost)
    for values in grid.values:
        matrix = interaction_matrix(carve_data.train, carve_data.n_users, carve_data.n_anime, values)
        support = most_rated(matrix, max_anime)
        profile_anime = matrix[carve_data.users][:, support].getnnz(axis=1).mean() if len(carve_data.users) else 0.0
        dense_cost = {"known": float(profile_anime) * len(support),
                      "newcomers": float(config.serving.max_liked) * len(support)}
        dense_fits = len(support) <= int(grid.dense_max_anime)
        dense_servable = {group: dense_fits and cost <= max_cost for group, cost in dense_cost.items()}
        logger.info("EASE %s over %d anime: a dense B costs %.1f M multiply-adds per known user's profile (limit "
                    "%.1f M)%s", values, len(support), dense_cost["known"] / 1e6, max_cost / 1e6,
                    "" if all(dense_servable.values()) else f"; served dense to {dense_servable}")
        dropout = favourites_dropout(grid.favourites_dropout, float(profile_anime),
                                     int(config.evaluation.newcomer_favourites))
        shared = gram(matrix[:, support])  # one Gram serves every regularisation
        for regularisation in grid.regularisation:
            started = time.perf_counter()
            dense = ease_from_gram(shared, float(regularisation))
            denoised = ease_from_gram(shared, float(regularisation), dropout) if dropout else dense
            logger.info("EASE %s over %d anime, lambda %g (newcomers' dropout %g): %.1f s", values, len(support),
                        regularisation, dropout, time.perf_counter() - started)
            for neighbours in grid.neighbours:
                settings = {"values": values, "regularisation": regularisation, "neighbours": neighbours,
                            "max_anime": max_anime}
                servable = dense_servable if neighbours is None else {"known": True, "newcomers": True}
                candidate = _EaseCandidate(settings, _pruned(dense, neighbours, support), servable)
                if dropout:  # the same settings as EDLAE, for newcomers
                    candidate.denoised_settings = {**settings, "dropout": dropout}
                    candidate.denoised_weights = _pruned(denoised, neighbours, support)
                yield candidate


def _pruned(dense: np.ndarray, neighbours: int | None, support: np.ndarray) -> ItemWeights:
    return ItemWeights(dense if neighbours is None else keep_top_neighbours(dense, int(neighbours)), support)


def fit_carve_ncf(config: Settings, carve_data: Carve, data: TrainingData) -> tuple[ModelArtifacts, float]:
    """The NCF fitted on the carve (its train rows; val_loss on its validation rows), as the artifacts an engine
    scoring the carve is built from: the carve's rows over ``data``'s catalogue, content features and story; and
    the NCF's training seconds. Both searches (``choose_settings``, ``tune``) fit through this one function."""
    unrated = float(config.training.unrated_weight)
    shape = (carve_data.n_users, carve_data.n_anime)
    split = carve_data.train["split"].to_numpy()
    fitted = fit_ncf(config, user_targets(carve_data.train[split == SPLIT_TRAIN], *shape, unrated),
                     user_targets(carve_data.train[split == SPLIT_VALIDATION], *shape, unrated))
    user_embeddings, anime_embeddings, anime_bias = fitted.embeddings()
    artifacts = ModelArtifacts(user_embeddings, anime_embeddings, data.user_ids, data.anime_ids, data.anime,
                               carve_data.train, {"model": {"temperature": float(config.model.temperature)}},
                               anime_bias, content_features=data.content_features, story=data.story)
    return artifacts, fitted.seconds


def choose_settings(config: Settings | Mapping[str, Any], data: TrainingData) -> dict[str, Any]:
    """The hybrid's settings for ``data`` (a processed training set), chosen on its validation carve."""
    config = Settings.of(config)
    started = time.perf_counter()
    hybrid, k, significance = config.hybrid, int(config.evaluation.k), float(config.hybrid.significance)
    carve_data = data.carve(config)
    base, ncf_seconds = fit_carve_ncf(config, carve_data, data)
    trials: list[dict[str, Any]] = []
    engine: Recommender | None = None
    ncf_part: np.ndarray | None = None
    # EASE's settings and the NCF's weight beside it are chosen together: the two carry the mix. The default is
    # the strongest plain EASE (dense, alone: the baseline's form); anything else must beat it significantly.
    least_pruned = max((n for n in hybrid.item_item.neighbours if n is not None), default=None)
    known_choice = _EaseChoice(least_pruned)
    # Newcomers have only their favourites: EASE's best settings for them may differ (kept when they do), and so
    # may a denoising EASE (EDLAE) trained to complete a whole list from a favourites-sized share of it.
    newcomer_choice = _EaseChoice(least_pruned)
    for candidate in _item_item_candidates(carve_data, config):
        settings, weights, servable = candidate.settings, candidate.weights, candidate.servable
        engine = (Recommender(dataclasses.replace(base, item_weights=weights), ServingConfig.from_config(config),
                              {**hybrid.default.as_dict(), "item_item": settings})
                  if engine is None else engine.with_item_item(weights, settings["values"]))
        table = _table(engine, carve_data, k, ("item_item",) if ncf_part is not None else ("item_item", "ncf"))
        ncf_part = table.parts.setdefault("ncf", ncf_part)
        # plain EASE from the favourites: a newcomer candidate, and what the EASE baseline's settings are chosen by
        newcomer_recall = _newcomer_recall(engine, carve_data, k)
        newcomer_choice.offer((settings, newcomer_recall, weights), newcomer_recall, settings, 0.0,
                              servable["newcomers"])
        denoised: dict[str, Any] = {}
        if candidate.denoised_weights is not None and candidate.denoised_settings is not None:
            denoised_recall = _newcomer_recall(engine.with_item_item(candidate.denoised_weights, settings["values"],
                                                                     favourites=True), carve_data, k)
            newcomer_choice.offer((candidate.denoised_settings, denoised_recall, candidate.denoised_weights),
                                  denoised_recall, candidate.denoised_settings, 0.0, servable["newcomers"])
            denoised = {"denoised_settings": candidate.denoised_settings,
                        "denoised_newcomer_recall": float(denoised_recall.mean())}
        for ncf_weight in [0.0, *hybrid.weights]:
            recall = table.recall({"item_item": 1.0, "ncf": ncf_weight})
            trials.append({"search": "item_item and ncf", "settings": settings, "ncf": ncf_weight,
                           "recall": float(recall.mean()), "served": servable["known"],
                           **({"newcomer_recall": float(newcomer_recall.mean()),
                               "newcomer_served": servable["newcomers"], **denoised} if ncf_weight == 0 else {})})
            known_choice.offer((settings, ncf_weight, recall, weights), recall, settings, ncf_weight,
                               servable["known"])
    assert engine is not None, "hybrid.item_item offers no candidate"
    item_item, ncf_weight, _, weights = known_choice.served(significance)
    engine = engine.with_item_item(weights, item_item["values"])
    favourites_item_item, _, favourites_weights_b = newcomer_choice.served(significance)
    if favourites_item_item != item_item:
        engine = engine.with_item_item(favourites_weights_b, favourites_item_item["values"], favourites=True)
    components = list(hybrid.components)
    known = _table(engine, carve_data, k, ("item_item", *(c for c in components if c != "user")))
    start = {"item_item": 1.0, **({"ncf": ncf_weight} if ncf_weight else {})}
    chosen_users = int(hybrid.default.similar_users)
    user_weights = _coordinate_search(known, start, [c for c in components if c not in ("user", "ncf")],
                                      list(hybrid.weights), significance, trials, "users")
    if "user" in components:
        best_user: tuple[float, int, np.ndarray] | None = None
        for similar_users in hybrid.similar_users:
            engine.similar_users_scorer.similar_users = int(similar_users)
            known.parts["user"] = known.normalised("user")
            for weight in hybrid.weights:
                recall = known.recall({**user_weights, "user": weight})
                trials.append({"search": "users", "weights": {**user_weights, "user": weight},
                               "similar_users": int(similar_users), "recall": float(recall.mean())})
                if best_user is None or recall.mean() > best_user[2].mean():
                    best_user = (weight, int(similar_users), recall)
        if best_user and significantly_better(best_user[2], known.recall(user_weights), significance):
            user_weights, chosen_users = {**user_weights, "user": best_user[0]}, best_user[1]
    engine.similar_users_scorer.similar_users = chosen_users
    favourites_weights: dict[str, float] = {"item_item": 1.0}
    final_newcomers = np.full(1, np.nan)
    if len(carve_data.newcomers):
        favourites = _newcomer_table(engine, carve_data, k, ("item_item", *hybrid.favourites_components))
        favourites_weights = _coordinate_search(favourites, favourites_weights, list(hybrid.favourites_components),
                                                list(hybrid.weights), significance, trials, "newcomers")
        final_newcomers = favourites.recall(favourites_weights)
    final_users = known.recall(user_weights)
    result = {
        "weights": user_weights, "favourites_weights": favourites_weights, "similar_users": chosen_users,
        "item_item": item_item,
        "favourites_item_item": favourites_item_item if favourites_item_item != item_item else None,
        "carve": {"users": len(carve_data.users), "newcomers": len(carve_data.newcomers),
                  "recall": float(final_users.mean()),
                  "favourites_recall": float(final_newcomers.mean()) if len(carve_data.newcomers) else None,
                  "ncf_training_seconds": round(ncf_seconds, 2), "seconds": round(time.perf_counter() - started, 2),
                  "significance": significance, "trials": trials},
    }
    logger.info("chosen on the carve in %.0f s: EASE %s, weights %s (Recall@%d %.4f), favourites %s (%.4f)",
                result["carve"]["seconds"], item_item, user_weights, k, final_users.mean(), favourites_weights,
                final_newcomers.mean())
    return result


class _EaseChoice:
    """EASE's candidates as the carve measures them, for one group (known users or newcomers): the reference
    (plain dense EASE alone, the baseline's form), its stand-in where a dense B is not served (plain EASE alone,
    least pruned), and the best candidate that may be served (EDLAE included); each kept with its per-user recall."""

    def __init__(self, least_pruned: int | None) -> None:
        self.least_pruned = least_pruned
        self.reference: tuple[Any, np.ndarray] | None = None
        self.reference_servable = True
        self.stand_in: tuple[Any, np.ndarray] | None = None
        self.best: tuple[Any, np.ndarray] | None = None

    def offer(self, candidate: Any, recall: np.ndarray, settings: dict[str, Any], ncf_weight: float,
              servable: bool) -> None:
        measured = (candidate, recall)
        plain_alone = ncf_weight == 0 and not settings.get("dropout")
        if plain_alone and settings["neighbours"] is None and _beats(recall, self.reference):
            self.reference, self.reference_servable = measured, servable
        if plain_alone and settings["neighbours"] == self.least_pruned and _beats(recall, self.stand_in):
            self.stand_in = measured
        if servable and _beats(recall, self.best):
            self.best = measured

    def served(self, significance: float) -> Any:
        """The best servable candidate if it beats the reference significantly; otherwise the reference itself
        when it may be served, else its stand-in."""
        assert self.best is not None, "hybrid.item_item offers no servable candidate"
        if self.reference is None or significantly_better(self.best[1], self.reference[1], significance):
            return self.best[0]
        if self.reference_servable:
            return self.reference[0]
        return (self.stand_in or self.best)[0]


def _beats(recall: np.ndarray, other: tuple[Any, np.ndarray] | None) -> bool:
    return other is None or recall.mean() > other[1].mean()


def _table(engine: Recommender, carve_data: Carve, k: int, names: tuple[str, ...]) -> ComponentTable:
    profiles = engine.interactions.profiles(carve_data.users)
    return ComponentTable(engine, profiles, carve_data.relevant[carve_data.users], k, names)


def _newcomer_recall(engine: Recommender, carve_data: Carve, k: int) -> np.ndarray:
    """The newcomers' per-user recall of their EASE alone; a carve too small to hold a newcomer (their settings then
    follow the known users') gets one zero."""
    if not len(carve_data.newcomers):
        return np.zeros(1)
    return _newcomer_table(engine, carve_data, k, ("item_item",)).recall({"item_item": 1.0})


def _newcomer_table(engine: Recommender, carve_data: Carve, k: int, names: tuple[str, ...]) -> ComponentTable:
    newcomers = carve_data.newcomers
    profiles = Profiles.from_favourites(newcomers.favourites, engine.n_anime)
    relevant = interaction_matrix(newcomers.relevant_rows, len(newcomers), carve_data.width)
    return ComponentTable(engine, profiles, relevant, k, names, favourites=True)


# ------------------------------------------------------------------------------------------ the NCF's own settings
def with_setting(config: Settings, dotted: str, value: Any) -> Settings:
    """``config`` with ``a.b.c`` set; a peak learning rate sets the flat schedule's start and floor too."""
    config = config.replaced(dotted, value)
    if dotted == "training.learning_rate.max":
        config = config.replaced("training.learning_rate.start", value).replaced("training.learning_rate.min", value)
    return config


def ncf_carve_recall(config: Settings | Mapping[str, Any],
                     carve_data: Carve, data: TrainingData) -> tuple[float, float]:
    """The ncf component's mean carve Recall@k for ``config`` and its training seconds."""
    config = Settings.of(config)
    artifacts, seconds = fit_carve_ncf(config, carve_data, data)
    ncf_only = {**config.hybrid.default.as_dict(), "weights": {"ncf": 1.0}, "favourites_weights": {"ncf": 1.0}}
    engine = Recommender(artifacts, ServingConfig.from_config(config), ncf_only)
    table = _table(engine, carve_data, int(config.evaluation.k), ("ncf",))
    return float(table.recall({"ncf": 1.0}).mean()), seconds


def tune(config: Settings | Mapping[str, Any], data: TrainingData) -> dict[str, Any]:
    """Search ``tuning.grid`` one setting at a time from the current config; return the trials and the best."""
    config = Settings.of(config)
    carve_data = data.carve(config)
    best_config = config
    best_recall, seconds = ncf_carve_recall(best_config, carve_data, data)
    trials = [{"setting": "current config", "recall": best_recall, "training_seconds": seconds}]
    logger.info("tuning from the current config: ncf carve recall %.4f", best_recall)
    for dotted, values in config.tuning.grid.items():
        for value in values:
            candidate = with_setting(best_config, dotted, value)
            if candidate == best_config:
                continue
            recall, seconds = ncf_carve_recall(candidate, carve_data, data)
            trials.append({"setting": f"{dotted}={value}", "recall": recall, "training_seconds": seconds})
            logger.info("tuning %s=%s: recall %.4f (best so far %.4f)", dotted, value, recall, best_recall)
            if recall > best_recall:
                best_config, best_recall = candidate, recall
    chosen = {dotted: best_config.value(dotted) for dotted in config.tuning.grid}
    return {"best": chosen, "best_validation_recall": best_recall, "trials": trials}
