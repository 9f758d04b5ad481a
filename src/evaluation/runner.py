"""Evaluate the evaluation model on its held-out test set and its newcomers, next to tuned baselines.

Known users (the held-out 20 % of each user's ratings), on the same users and split for every method:

- ``popularity``, ``item_knn``, ``als``, ``ease``: baselines fitted on the training rows, each with the settings
  that scored best on the validation carve (src/tuning/hybrid.py's carve: the test set is never read to choose);
- ``ncf``, ``item_item``, ``user``, ``embedding``: the serving engine's components alone, and ``hybrid``:
  their mix as served, ranked by the engine's own code (Recommender.rank_users);
- ``original_direct``, ``original_hybrid`` (opt-in): the original design's NCF trained on the same rows.

Newcomers (users held out of training entirely, recommended for from their favourites): ``favourites`` (the
engine's cold start, as the favourites endpoint serves it), ``ncf_fold_in`` (the NCF alone), and the baselines
``popularity``, ``item_knn`` and ``ease`` built from the same favourites.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from config import paths_config
from config.settings import Settings
from src.data.files import read_ids
from src.data.processing import read_interactions
from src.data.splits import (
    Carve,
    held_out_users,
    new_anime_view,
    newcomer_split,
    newcomer_view,
    split_interactions,
)
from src.engine.diversity import franchise_top_k
from src.engine.ranking import top_k
from src.engine.recommender import Recommender
from src.errors import UserError
from src.evaluation import baselines
from src.evaluation.metrics import paired_difference, popularity_ranks, recall_per_user
from src.evaluation.newcomers import favourites_ranker, import_split, item_scorer_rankers
from src.evaluation.protocol import (
    ProtocolSettings,
    RankFn,
    engine_rankers,
    evaluate_methods,
    scorer_rankers,
    settings_from_config,
    without_held_out,
)
from src.evaluation.reports import log_to_comet, versus_best_baseline, write_reports
from src.logger import get_logger
from src.models.ease import interaction_matrix
from src.models.method import Method
from src.store.artifacts import ModelArtifacts, load_model_artifacts
from src.training.train import prepare_training_data

logger = get_logger(__name__)
# Engine methods as the report names them: the engine's own component names (before issue 31 the report said
# "ncf_direct" for ncf and "content" for embedding).
ENGINE_METHODS = {"ncf": "ncf", "item_item": "item_item", "user": "user", "embedding": "embedding", "hybrid": "hybrid"}


def engine_for(artifacts: ModelArtifacts, config: Settings | Mapping[str, Any]) -> Recommender:
    """The serving engine, built the way the web app builds it, from everything but the held-out rows."""
    config = Settings.of(config)
    return Recommender(without_held_out(artifacts), config.serving, config.hybrid.default.as_dict())


# ------------------------------------------------------------------------------------------ baselines on the carve
def _grid(section: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(section)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(section[n] for n in names))]


def baseline_grids(config: Settings | Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every baseline's candidate settings (evaluation.baselines). EASE is not here: its dense candidates were
    already measured on the same carve when the hybrid's settings were chosen (see ``ease_from_carve``)."""
    config = Settings.of(config)
    grids = {name: _grid(section) for name, section in config.evaluation.baselines.items()}
    grids["popularity"] = [{"values": "any"}]
    return grids


def ease_from_carve(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The EASE baseline's settings: the dense, EASE-alone candidates the hybrid's search measured on the carve,
    the best for known users and the best for newcomers."""
    dense = [trial for trial in trials if trial.get("search") == "item_item and ncf"
             and trial["settings"]["neighbours"] is None and trial["ncf"] == 0]
    if not dense:
        raise UserError("the model records no dense EASE candidate measured on the carve: keep null among "
                        "hybrid.item_item.neighbours and retrain")
    chosen = {}
    for purpose, key in (("users", "recall"), ("newcomers", "newcomer_recall")):
        trial = max(dense, key=lambda trial: trial[key])
        chosen[purpose] = {"setting": {"values": trial["settings"]["values"],
                                       "regularisation": trial["settings"]["regularisation"],
                                       "max_anime": trial["settings"].get("max_anime")},
                           "carve_recall": trial[key]}
    return chosen


class RowBaselines:
    """The baselines (``baselines.BASELINES``) fitted on one set of rows, on the model's ``n_anime`` rated anime; each
    scores ``width`` (the catalogue) wide, the anime without ratings getting -inf (a baseline has nothing to say
    about them).

    What settings share is computed once: the interaction matrix per values, item-kNN's dense similarity per
    values and shrink (the latest one; a search runs its neighbour counts in a row), and, with ``keep``, each
    fitted baseline (the known users' and the newcomers' baselines are often the same fit)."""

    def __init__(self, rows: pd.DataFrame, n_users: int, n_anime: int, width: int) -> None:
        self.rows, self.n_users, self.n_anime, self.width = rows, n_users, n_anime, width
        self._matrices: dict[str, sp.csr_matrix] = {}
        self._similarity: tuple[tuple[str, float], np.ndarray] | None = None
        self._fitted: dict[str, Method] = {}

    def matrix(self, values: str) -> sp.csr_matrix:
        if values not in self._matrices:
            self._matrices[values] = interaction_matrix(self.rows, self.n_users, self.n_anime, values)
        return self._matrices[values]

    def scorer(self, name: str, setting: dict[str, Any], keep: bool = True, seed: int | None = None) -> Method:
        """Baseline ``name`` fitted with ``setting`` (its ``values`` and its options), scoring what it ``takes``
        (interaction rows, or user rows of ``matrix(values)``); ``seed``: for a baseline fitted at random."""
        if name not in baselines.BASELINES:
            raise UserError(f"no baseline named {name} (evaluation.baselines): there are "
                            f"{', '.join(baselines.BASELINES)}")
        baseline = baselines.BASELINES[name]
        if baseline.seeded and seed is None:
            raise ValueError(f"the {name} baseline is fitted at random: give it a seed")
        key = json.dumps([name, setting, seed if baseline.seeded else None], sort_keys=True)
        if key in self._fitted:
            return self._fitted[key]
        options = {key: value for key, value in setting.items() if key != "values"}
        if name == "item_knn":
            options["similarity"] = self._cosine(setting["values"], float(options.get("shrink", 0.0)))
        if baseline.seeded:
            options["seed"] = seed
        method = baselines.OnCatalogue(baseline.fit(self.matrix(setting["values"]), **options), self.width)
        if keep:
            self._fitted[key] = method
        return method

    def _cosine(self, values: str, shrink: float) -> np.ndarray:
        if self._similarity is None or self._similarity[0] != (values, shrink):
            self._similarity = None  # the previous one goes before the next is built: one n x n array at a time
            self._similarity = ((values, shrink), baselines.cosine_similarity(self.matrix(values), shrink))
        return self._similarity[1]


def tune_baselines(config: Settings | Mapping[str, Any], carve_data: Carve, tiebreak: np.ndarray) -> dict[str, Any]:
    """Each baseline's best settings on the carve: for known users, and (row baselines) for newcomers.

    A baseline knows only the model's (rated) anime, and every carve-test anime is one of them, so the carve is
    scored over those alone: the never-rated rest of the catalogue would only cost time."""
    config = Settings.of(config)
    k, rated = int(config.evaluation.k), carve_data.n_anime
    chosen: dict[str, Any] = {"users": {}, "newcomers": {}, "trials": []}
    known = interaction_matrix(carve_data.train, carve_data.n_users, rated)
    favourites = sp.csr_matrix(carve_data.newcomers.favourites_matrix(carve_data.width)[:, :rated])
    newcomer_relevant = interaction_matrix(carve_data.newcomers.relevant_rows, len(carve_data.newcomers),
                                                     rated)
    relevant = sp.csr_matrix(carve_data.relevant[carve_data.users][:, :rated])
    rated_tiebreak = tiebreak[tiebreak < rated]
    fitter = RowBaselines(carve_data.train, carve_data.n_users, rated, rated)
    for name, grid in baseline_grids(config).items():
        for setting in grid:
            started = time.perf_counter()
            method = fitter.scorer(name, setting, keep=False, seed=int(config.seed))
            if method.takes == "rows":
                scores = {"users": method.score(known[carve_data.users]).values,
                          "newcomers": method.score(favourites).values}
            else:
                scores = {"users": method.score(carve_data.users).values}
            recalls = {}
            for purpose, values in scores.items():
                exclude, truth = ((known[carve_data.users], relevant) if purpose == "users"
                                  else (favourites, newcomer_relevant))
                lists = top_k(np.asarray(values), k, exclude=exclude, tiebreak=rated_tiebreak)
                recalls[purpose] = float(recall_per_user(lists, truth, k).mean())
                if name not in chosen[purpose] or recalls[purpose] > chosen[purpose][name]["carve_recall"]:
                    chosen[purpose][name] = {"setting": setting, "carve_recall": recalls[purpose]}
            chosen["trials"].append({"baseline": name, "setting": setting, "carve_recall": recalls,
                                     "seconds": round(time.perf_counter() - started, 2)})
            logger.info("carve %s %s: %s", name, setting, {p: round(r, 4) for p, r in recalls.items()})
    return chosen


# ------------------------------------------------------------------------------------------ evaluation
def evaluate_model(config: Settings | Mapping[str, Any],
                   model_dir: Path | None = None, processed_dir: Path | None = None,
                   reports_dir: Path | None = None, compare_original: bool | None = None,
                   experiment: Any = None) -> dict[str, Any]:
    """Evaluate every method, write metrics.json, evaluation.md and chart.png; return the metrics document."""
    config = Settings.of(config)
    model_dir = model_dir or paths_config.evaluation_model_dir()
    processed_dir = processed_dir or paths_config.processed_dir()
    reports_dir = reports_dir or paths_config.reports_dir()
    artifacts = load_model_artifacts(model_dir)
    known, test = split_interactions(artifacts.user_ratings)
    if test.empty:
        raise UserError("the model has no held-out test set (evaluation.holdout_fraction was 0): "
                        "retrain with a holdout to evaluate it")
    data = prepare_training_data(config, processed_dir)
    if not np.array_equal(data.user_ids, artifacts.user_ids):
        raise UserError(f"processed data in {processed_dir} does not match the model: rerun the training pipeline")
    n_users = len(artifacts.user_ids)
    settings = settings_from_config(config)
    engine = engine_for(artifacts, config)
    width, tiebreak = engine.n_anime, engine.catalogue.popularity_order  # rankings cover the whole catalogue
    carve_data = data.carve(config)
    chosen = tune_baselines(config, carve_data, tiebreak)
    for purpose, ease_choice in ease_from_carve(artifacts.manifest.get("hybrid", {}).get("carve", {}).get("trials", [])
                                                ).items():
        chosen[purpose]["ease"] = ease_choice

    fitted = RowBaselines(known, n_users, engine.n_model_anime, width)
    listed = listed_new_anime(processed_dir, artifacts.user_ids, width)
    original = config.evaluation.compare_original_objective if compare_original is None else compare_original
    rankers = known_user_rankers(config, artifacts, engine, fitted, chosen["users"], listed, ENGINE_METHODS, original)
    evaluation = evaluate_methods(rankers, known, test, width, settings, franchise=engine.catalogue.franchise)
    results = evaluation.metrics

    newcomer_section = _evaluate_newcomers(config, processed_dir, engine, fitted, chosen["newcomers"], settings)
    import_section = _evaluate_imports(config, processed_dir, engine, fitted, chosen["users"], settings)
    new_anime_results, new_anime_meta = _evaluate_new_anime(config, processed_dir, engine, settings)
    data_summary = artifacts.manifest.get("data", {})
    meta = {
        "k": settings.k, "seed": settings.seed,
        "users_evaluated": len(held_out_users(test, settings.max_users, settings.seed)),
        "users": n_users, "anime": engine.n_model_anime, "catalogue": width, "test_interactions": len(test),
        "min_user_ratings": data_summary.get("min_user_ratings"),
        "holdout_fraction": data_summary.get("holdout_fraction"),
        "data_source": data_summary.get("source", {}).get("origin"),
        "model": {"version": artifacts.manifest.get("version"), "created_at": artifacts.manifest.get("created_at"),
                  "trained_on": "the training split (test rows and newcomers held out)"},
        "training": artifacts.manifest.get("training"),
        "hybrid": {key: value for key, value in artifacts.manifest.get("hybrid", {}).items() if key != "carve"},
        "baselines": {purpose: {name: entry["setting"] for name, entry in values.items()}
                      for purpose, values in chosen.items() if purpose != "trials"},
    }
    versus = versus_best_baseline(evaluation, "hybrid")
    sections = {"newcomers": newcomer_section, "imported_lists": import_section,
                "new_anime": {"methods": new_anime_results, "meta": new_anime_meta}}
    files = write_reports(results, reports_dir, meta, versus, **sections)
    log_to_comet(experiment, {**results, **{f"{name}.{method}": values for name, section in sections.items()
                                            for method, values in section["methods"].items()}}, files.values())
    return {"methods": results, **({"versus": versus} if versus else {}), **sections, "meta": meta}


def listed_new_anime(processed_dir: Path, user_ids: np.ndarray, width: int) -> sp.csr_matrix:
    """(users x catalogue) the known users' ratings of the held-out new anime: on their lists though the evaluation
    model never trained on them. Serving knows them, so the evaluated lists never show them back and count their
    franchises as seen (a user who rated "Tokyo Ghoul", held out, is not a newcomer to the franchise of "√A")."""
    rows = new_anime_view(read_interactions(processed_dir), user_ids)
    return interaction_matrix(rows, len(user_ids), width)


def known_user_rankers(config: Settings | Mapping[str, Any],
                       artifacts: ModelArtifacts, engine: Recommender, fitted: RowBaselines,
                       chosen: Mapping[str, Any], listed: sp.csr_matrix, methods: Mapping[str, str],
                       original: bool) -> dict[str, RankFn]:
    """The report's known-user methods as rankers: each baseline of ``chosen`` fitted with its carve-chosen setting,
    the engine's ``methods`` (report name -> engine method), and with ``original`` the original design's NCF.
    Baselines are cut into lists as the product's are: what lists may show, the franchise rules; ``listed``: each
    user's rows of the held-out new anime, which no method may recommend back."""
    config = Settings.of(config)
    width, tiebreak = engine.n_anime, engine.catalogue.popularity_order
    rankers = scorer_rankers(fit_baselines(config, fitted, chosen), fitted.rows, width, fitted.n_users, tiebreak,
                             engine.catalogue.filter_mask(None), engine.catalogue.franchise_rules, listed)
    rankers.update(engine_rankers(engine, methods, listed))
    if original:
        rankers.update(_original_rankers(config, artifacts, fitted.rows, tiebreak, width))
    return rankers


def fit_baselines(config: Settings, fitted: RowBaselines, chosen: Mapping[str, Any]) -> dict[str, Method]:
    """The baselines with their carve-chosen settings, fitted on every known (non-test) row; by user."""
    methods: dict[str, Method] = {}
    for name in [name for name in baselines.BASELINES if name in chosen]:
        setting = chosen[name]["setting"]
        method = fitted.scorer(name, setting, seed=int(config.seed))
        methods[name] = baselines.ByUser(method, fitted.matrix(setting["values"])) if method.takes == "rows" else method
    return methods


def _evaluate_newcomers(config: Settings, processed_dir: Path, engine: Recommender, fitted: RowBaselines,
                        chosen: Mapping[str, Any],
                        settings: ProtocolSettings) -> dict[str, Any]:
    """Favourites (the engine's cold start) against the baselines built from the same favourites: the report's
    section (``methods``, ``versus`` and ``meta``)."""
    rows = newcomer_view(read_interactions(processed_dir))
    split = newcomer_split(rows, int(config.evaluation.newcomer_favourites))
    if len(split) == 0:
        return {"methods": {}, "meta": {"newcomers": 0, "reason": "no newcomers (evaluation.newcomer_fraction is 0 "
                                                                   "or the data too small)"}}
    width, tiebreak = engine.n_anime, engine.catalogue.popularity_order
    rankers: dict[str, RankFn] = {
        "favourites": favourites_ranker(split, lambda favourites, k: engine.rank_favourites(favourites, k)),
        "ncf_fold_in": favourites_ranker(split, lambda favourites, k: engine.rank_favourites(favourites, k, "ncf")),
    }
    row_baselines = {name: fitted.scorer(name, chosen[name]["setting"]) for name in baselines.ROW_BASELINES}
    rankers.update(item_scorer_rankers(split, row_baselines, width, tiebreak, engine.catalogue.filter_mask(None),
                                       engine.catalogue.franchise_rules))
    no_settings = dataclasses.replace(settings, max_users=None)  # every newcomer counts
    evaluation = evaluate_methods(rankers, split.favourites_rows, split.relevant_rows, width, no_settings,
                                  popularity_ranks(fitted.rows, width), engine.catalogue.franchise)
    meta = {"newcomers": len(split), "favourites": int(config.evaluation.newcomer_favourites),
            "protocol": "each newcomer's top-rated anime (at most `favourites`) are sent as favourites; their other "
                        "rated anime are relevant; the favourites are excluded from the ranking"}
    versus = versus_best_baseline(evaluation, "favourites")
    return {"methods": evaluation.metrics, **({"versus": versus} if versus else {}), "meta": meta}


def _evaluate_imports(config: Settings, processed_dir: Path, engine: Recommender, fitted: RowBaselines,
                      chosen: Mapping[str, Any], settings: ProtocolSettings) -> dict[str, Any]:
    """The newcomers again, each bringing their whole list (src/evaluation/newcomers.py, ``import_split``): the
    import (``Recommender.rank_lists``, as the import endpoint serves it) against the favourites path on the same
    people (their list's top-rated anime only), EASE and item-kNN folded in with the whole list (the known users'
    settings: a whole list is a known user's kind of row) and popularity. The report's section."""
    evaluation = config.evaluation
    split = import_split(newcomer_view(read_interactions(processed_dir)), float(evaluation.holdout_fraction),
                         int(evaluation.newcomer_favourites), int(config.seed))
    if len(split) == 0:
        return {"methods": {}, "meta": {"people": 0, "reason": "no newcomers (evaluation.newcomer_fraction is 0 or "
                                                                 "the data too small)"}}
    width, catalogue = engine.n_anime, engine.catalogue
    listed = split.rows_matrix(width, "any")
    rankers: dict[str, RankFn] = {
        "import": lambda people, k: engine.rank_lists([split.lists[person] for person in people], k),
        "favourites": favourites_ranker(split, lambda favourites, k: engine.rank_favourites(favourites, k)),
    }
    for name in baselines.ROW_BASELINES:
        setting = chosen[name]["setting"]
        rankers[name] = _whole_list_ranker(fitted.scorer(name, setting), split.rows_matrix(width, setting["values"]),
                                           listed, engine)
    no_settings = dataclasses.replace(settings, max_users=None)  # every newcomer counts
    result = evaluate_methods(rankers, split.list_rows, split.relevant_rows, width, no_settings,
                              popularity_ranks(fitted.rows, width), catalogue.franchise)
    difference, error = paired_difference(result.recalls["import"], result.recalls["favourites"])
    meta = {"people": len(split), "holdout_fraction": float(evaluation.holdout_fraction),
            "protocol": "each newcomer's list (rated and watched-but-unrated rows, as an export gives them) is sent "
                        "whole, a seeded share of their rated anime held out to be found; favourites sends the "
                        "list's top-rated anime only; the baselines score the whole list as a row",
            "versus_favourites": {"difference": difference, "standard_error": error}}
    versus = versus_best_baseline(result, "import")
    return {"methods": result.metrics, **({"versus": versus} if versus else {}), "meta": meta}


def _whole_list_ranker(method: Method, rows: sp.csr_matrix, listed: sp.csr_matrix, engine: Recommender) -> RankFn:
    """A row baseline ranking from each person's whole list (``rows``), everything listed excluded, cut into lists
    as the product's are."""
    catalogue = engine.catalogue

    def rank(people: np.ndarray, k: int) -> np.ndarray:
        return franchise_top_k(method.score(rows[people]).values, k, catalogue.franchise_rules,
                               exclude=listed[people], allowed=catalogue.filter_mask(None),
                               tiebreak=catalogue.popularity_order)
    return rank


def _evaluate_new_anime(config: Settings, processed_dir: Path, engine: Recommender,
                        settings: ProtocolSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Item cold start: rated anime held out of training entirely, placed by the content path alone.

    For each user who rated one of them, the held-out anime (the pool) are ranked by the content match to the
    user's preferred anime (the engine's never-rated path), by genre overlap only, by MyAnimeList members, and at
    random; relevant = the held-out anime the user rated.
    """
    rows = new_anime_view(read_interactions(processed_dir), read_ids(processed_dir / "user_ids.json"))
    rows = rows[rows["rating"].to_numpy() > 0]
    if rows.empty or "unrated" not in engine.hybrid.scorers:
        return {}, {"new_anime": 0, "reason": "no held-out anime (evaluation.new_anime_fraction is 0) or no content "
                                              "features"}
    width = engine.n_anime
    pool = np.zeros(width, dtype=bool)
    pool[rows["anime_index"].to_numpy()] = True
    catalogue = engine.catalogue
    genre_norms = np.linalg.norm(catalogue.genre_matrix, axis=1, keepdims=True)
    genre_vectors = catalogue.genre_matrix / np.maximum(genre_norms, 1e-9)
    rng = np.random.default_rng(int(config.seed))
    random_scores = rng.random(width)

    def ranker(score: Callable[[Any], np.ndarray]) -> RankFn:
        def rank(users: np.ndarray, k: int) -> np.ndarray:
            profiles = engine.interactions.profiles(users)
            return top_k(np.asarray(score(profiles), dtype=np.float64), k, allowed=pool,
                         tiebreak=catalogue.popularity_order)
        return rank

    rankers = {
        "features": ranker(lambda profiles: engine.hybrid.scorers["unrated"].score(profiles).values),
        "genre_only": ranker(lambda profiles: np.asarray(profiles.preferred.sign() @ genre_vectors) @ genre_vectors.T),
        "popularity": ranker(lambda profiles: np.broadcast_to(catalogue.members, (len(profiles), width))),
        "random": ranker(lambda profiles: np.broadcast_to(random_scores, (len(profiles), width))),
    }
    known = pd.DataFrame({"user_index": np.zeros(0, np.int64), "anime_index": np.zeros(0, np.int64)})
    results = evaluate_methods(rankers, known, rows, width, dataclasses.replace(settings, max_users=None)).metrics
    meta = {"new_anime": int(pool.sum()), "users": int(rows["user_index"].nunique()),
            "protocol": "the held-out anime are ranked for each user who rated one; relevant = the ones they rated"}
    return results, meta


def _original_rankers(config: Settings, artifacts: ModelArtifacts, known: pd.DataFrame,
                      tiebreak: np.ndarray, width: int) -> dict[str, RankFn]:
    from src.models.original_ncf import train_original_embeddings  # TensorFlow is only needed here

    n_users, n_anime = len(artifacts.user_ids), len(artifacts.anime_ids)
    user_embeddings, anime_embeddings = train_original_embeddings(config, known, n_users, n_anime)
    direct = baselines.OnCatalogue(baselines.EmbeddingCosine(user_embeddings, anime_embeddings), width)
    rankers = scorer_rankers({"original_direct": direct}, known, width, n_users, tiebreak)
    original = dataclasses.replace(artifacts, user_embeddings=user_embeddings, anime_embeddings=anime_embeddings,
                                   anime_bias=np.zeros(n_anime, np.float32))
    original_engine = engine_for(original, config)
    # the original design's hybrid: similar users' favourites and similar anime, half and half
    rankers["original_hybrid"] = lambda users, k: original_engine.rank_users(users, k, weights={"user": 0.5,
                                                                                               "embedding": 0.5})
    return rankers


def evaluate_and_track(config: Settings | Mapping[str, Any], compare_original: bool | None = None) -> dict[str, Any]:
    """``evaluate_model`` with its metrics and reports logged to a Comet experiment of its own (online or offline)."""
    config = Settings.of(config)
    from src.training.tracking import tracked_experiment  # imports comet_ml, then keras

    with tracked_experiment(config, paths_config.comet_dir(), name="evaluation") as tracked:
        return evaluate_model(config, compare_original=compare_original, experiment=tracked.experiment)
