"""The serving engine: one in-memory recommender per process, composed from the parts in src/engine/.

Everything a request needs is built once from the model artifacts (normalised embeddings, per-user known and
preferred anime, the catalogue), so a request is a few matrix products plus a top-n cut; nothing here reads a
file after construction, and the object is read-only, hence thread-safe.

Public methods take MyAnimeList ids and check their input (src/engine/validation.py). The offline API
(``score_users``, ``rank_users``) takes model rows and is what evaluation calls: it runs the very scorers,
hybrid and ranking that serving runs, so an offline figure is a figure of what is served.
"""
from __future__ import annotations

import contextvars
import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from config.paths_config import model_dir
from config.settings import ServingConfig, Settings, load_settings
from src.engine import validation
from src.engine.candidates import USER_REASONS, Candidates, CandidateTable, load_candidates
from src.engine.catalogue import Catalogue, Filters
from src.engine.diversity import FranchiseRules, franchise_top_k, may_show, walk
from src.engine.explanations import FAVOURITES, KNOWN, OWN_LIST, Explainer
from src.engine.hybrid import Hybrid, HybridScores
from src.engine.interactions import Interactions, Profiles, csr_rows
from src.engine.personal_lists import ListEntry, ListPolicy, list_profile
from src.engine.ranking import top_k, top_k_row
from src.engine.scorers import ItemItemScorer, ModelParts, build_scorers
from src.engine.settings import COMPONENTS, HybridSettings, default_slider_weights, tilted
from src.engine.title_index import ABBREVIATION, ALL_WORDS, EXACT, FUZZY, PREFIX
from src.engine.validation import InvalidRequestError, UnknownAnimeError, UnknownUserError
from src.errors import ArtifactError
from src.logger import get_logger
from src.models.ease import ItemWeights
from src.store.artifacts import ModelArtifacts, l2_normalise, load_model_artifacts, with_optional_columns

__all__ = ["Filters", "Recommender", "ServingConfig"]

logger = get_logger(__name__)
# Where the last known-user or similar-anime list of this thread (or request context) came from: "candidates" or
# "live"; the API reports it (X-Served-From) so that a benchmark can count the fallbacks
SERVED_FROM: contextvars.ContextVar[str] = contextvars.ContextVar("served_from", default="live")

# Each component alone, the chosen mix for known users, and the mix for newcomers' favourites.
METHODS = (*COMPONENTS, "hybrid")
_MATCH_LABELS = {EXACT: "title is", PREFIX: "title starts with", ABBREVIATION: "abbreviated", ALL_WORDS: "title has",
                 FUZZY: "title close to"}


class Recommender:
    """Hybrid anime recommender over preloaded embeddings."""

    def __init__(self, artifacts: ModelArtifacts, config: ServingConfig,
                 default_settings: dict[str, Any] | None = None) -> None:
        """``default_settings``: the hybrid settings when the manifest records none (default: ``hybrid.default`` of
        config/config.yaml); a trained model always records its own."""
        self.config = config
        self.user_ids = np.asarray(artifacts.user_ids, dtype=np.int64)
        self._user_position = _position_map(self.user_ids, "user_ids.json")
        _position_map(artifacts.anime_ids, "anime_ids.json")
        recorded = artifacts.manifest.get("hybrid") or default_settings or load_settings().hybrid.default.as_dict()
        self.settings = HybridSettings.from_mapping(recorded)
        # Re-normalising is cheap and makes cosine = dot product even if a writer forgot to.
        self.user_embeddings = l2_normalise(artifacts.user_embeddings)
        self.anime_embeddings = l2_normalise(artifacts.anime_embeddings)
        # Content features cover every anime: a never-rated one can be found, compared, liked and recommended.
        self.content_features = (None if artifacts.content_features is None
                                 else l2_normalise(artifacts.content_features))
        self.catalogue = Catalogue(with_optional_columns(artifacts.anime), n_rated=len(artifacts.anime_ids),
                                   content_features=self.content_features, franchise_rules=config.franchise_rules,
                                   seen_franchise_cap=config.seen_franchise_cap)
        width = len(self.catalogue)
        self.interactions = Interactions(artifacts.user_ratings, len(self.user_ids), width,
                                         config.preference_percentile)
        self.list_policy = ListPolicy(frozenset(config.list_taste_statuses), config.list_unscored_is_taste,
                                      config.list_min_taste_score)
        scorers = build_scorers(ModelParts(artifacts, config, self.user_embeddings, self.anime_embeddings,
                                           self.content_features, self.interactions, self.catalogue,
                                           self.settings.similar_users, self.settings.item_item["values"]))
        self.ncf, self.similar_users_scorer = scorers["ncf"], scorers["user"]
        self.explainer = Explainer(self.catalogue, self.content_features, artifacts.story, self.similar_users_scorer,
                                   config.preferred_genres)
        self.hybrid = Hybrid(scorers)
        # Newcomers' favourites may have an item-item model of their own (EASE settings chosen for them).
        self.favourites_hybrid = self.hybrid
        if artifacts.favourites_item_weights is not None:
            values = (self.settings.favourites_item_item or self.settings.item_item)["values"]
            self.favourites_hybrid = Hybrid({**self.hybrid.scorers, "item_item": ItemItemScorer(
                artifacts.favourites_item_weights, values, width)})
        if not artifacts.manifest.get("hybrid"):
            # default settings (hand-made artifacts): mix what these artifacts have
            self.settings = self.settings.restricted_to(self.hybrid.scorers)
        for weights in (self.settings.weights, self.settings.favourites_weights):
            if missing := sorted(name for name, weight in weights.items()
                                 if weight > 0 and name not in self.hybrid.scorers):
                raise ArtifactError(f"the hybrid weights use {', '.join(missing)}, which the artifacts lack; retrain")
        self.manifest = artifacts.manifest
        self.candidates: Candidates | None = None  # read by the online stage when the model has them (from_folder)
        # each known user's most frequent preferred genres, asked of every known-user request: computed once
        self._user_genres = self.catalogue.top_genres(self.interactions.preferred, config.preferred_genres)
        logger.info("recommender ready: %d users, %d anime, %d known interactions, %d genres; mix %s",
                    self.n_users, self.n_anime, len(self.interactions), len(self.genres), self.settings.weights)

    @classmethod
    def from_folder(cls, folder: str | Path | None, config: ServingConfig,
                    default_settings: dict[str, Any] | None = None) -> Recommender:
        """Load the artifacts in ``folder`` (default: the model dir) and build the engine, with the candidates
        computed at publish when the folder has them for these settings; raises ArtifactError."""
        folder = Path(folder) if folder is not None else model_dir()
        engine = cls(load_model_artifacts(folder), config, default_settings)
        engine.candidates = load_candidates(folder, config, engine.manifest.get("hybrid"), engine.n_users,
                                            engine.n_anime, np.diff(engine.interactions.preferred.indptr))
        if engine.candidates is None:
            logger.info("no candidates for these serving settings in %s: every request is scored live", folder)
        return engine

    @classmethod
    def from_config(cls, folder: str | Path | None, config: Settings | Mapping[str, Any]) -> Recommender:
        """The engine exactly as the web app builds it from a project config (config.loader.load_config)."""
        config = Settings.of(config)
        return cls.from_folder(folder, config.serving, config.hybrid.default.as_dict())

    # ------------------------------------------------------------------ lookups
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_anime(self) -> int:
        return len(self.catalogue)

    @property
    def n_model_anime(self) -> int:
        """Anime the model has embeddings for, i.e. with community ratings (the first ones of the catalogue)."""
        return len(self.anime_embeddings)

    def with_unrated(self, weights: dict[str, float]) -> dict[str, float]:
        """A mix plus the never-rated titles' content match, at ``serving.unrated_weight`` of the mix's total:
        the same for every method that ranks the whole catalogue, so offline figures include its effect."""
        if ("unrated" not in self.hybrid.scorers or self.n_model_anime == self.n_anime
                or self.config.unrated_weight <= 0):
            return weights
        return {**weights, "unrated": self.config.unrated_weight * sum(weights.values())}

    @property
    def anime_ids(self) -> np.ndarray:
        return self.catalogue.anime_ids

    @property
    def genres(self) -> tuple[str, ...]:
        return self.catalogue.genres

    @property
    def types(self) -> tuple[str, ...]:
        return self.catalogue.types

    def user_index(self, user_id: int) -> int:
        """Model row of a MyAnimeList user id; raises UnknownUserError."""
        position = self._user_position.get(int(user_id))
        if position is None:
            raise UnknownUserError(f"user {user_id} is not in the model: check the id, or pick a few anime you "
                                   "liked to get favourites-based recommendations")
        return position

    def anime_index(self, anime_id: int) -> int:
        """Catalogue index of a MyAnimeList anime id; raises UnknownAnimeError."""
        position = self.catalogue.index_of(anime_id)
        if position is None:
            raise UnknownAnimeError(f"anime {anime_id} is not in the model: search a title to find a valid id")
        return position

    def anime(self, anime_id: int) -> dict[str, Any]:
        """The metadata item of one anime (with an empty reasons list)."""
        return self.catalogue.item(self.anime_index(anime_id))

    def preferred_genres(self, user_id: int) -> tuple[str, ...]:
        """The genres most frequent among the anime the user rated at or above their own preference percentile."""
        return self._user_genres[self.user_index(user_id)]

    def preferred_anime(self, user_id: int) -> list[tuple[int, float]]:
        """[(anime id, rating)] the user rated at or above their own preference percentile, best first."""
        anime, ratings = self.interactions.profiles([self.user_index(user_id)]).preferred_of(0)
        return [(int(self.anime_ids[j]), float(r)) for j, r in zip(anime, ratings, strict=True)]

    def default_weights(self) -> tuple[float, float]:
        """The (similar users, similar anime) split of the model's chosen mix: where the sliders start."""
        return default_slider_weights(self.settings.weights)

    def similar_users(self, user_id: int, k: int | None = None) -> list[tuple[int, float]]:
        """[(user id, cosine)] of the ``k`` users closest to ``user_id`` (default: the mix's count of similar users)."""
        k = validation.check_n(k if k is not None else self.settings.similar_users, self.config, "k")
        profiles = self.interactions.profiles([self.user_index(user_id)])
        nearest, similarity = self.similar_users_scorer.nearest_users(profiles, k)
        return [(int(self.user_ids[row]), round(float(value), 4))
                for row, value in zip(nearest[0], similarity[0], strict=True) if row >= 0]

    # ------------------------------------------------------------------ recommendations
    def recommend_for_user(self, user_id: int, n: int | None = None, user_weight: float | None = None,
                           content_weight: float | None = None, filters: Filters | None = None) -> list[dict[str, Any]]:
        """Top-n hybrid recommendations for a known user, never anything they already rated or watched."""
        n = validation.check_n(self.config.default_n if n is None else n, self.config)
        row = self.user_index(user_id)
        sliders = validation.weights(user_weight, content_weight)
        table = self.candidates.users if self.candidates is not None else None
        if sliders is None and table is not None:  # the model's own mix: what the candidates were ranked by
            items = self._from_user_candidates(table, row, n, filters)
            if items is not None:
                SERVED_FROM.set("candidates")
                return items
        SERVED_FROM.set("live")
        weights = self.with_unrated(tilted(self.settings.weights, sliders))
        return self._recommend(self.interactions.profiles([row]), n, weights, filters)

    def _from_user_candidates(self, table: CandidateTable, row: int, n: int,
                              filters: Filters | None) -> list[dict[str, Any]] | None:
        """A known user's list read from their candidates, worded from the reasons stored with them; None when only
        live scoring knows the answer."""
        found = self._from_candidates(table, row, n, filters, self.catalogue.franchise_rules,
                                      self.interactions.known_of(row))
        if found is None:
            return None
        top, match, columns = found
        genres = self._user_genres[row]
        if table.reasons is None:  # a model published before the reasons were stored: their numbers live
            return self.explainer.items(top, match, self.interactions.profiles([row]), self.hybrid,
                                        self.with_unrated(dict(self.settings.weights)), KNOWN, genres=genres)
        stored = table.reasons[row, columns]
        preferred, ratings = self.interactions.preferred_of(row)
        return self.explainer.worded(top, match, stored["count"], table.similar_users, stored["source"],
                                     stored["kind"], preferred, ratings, genres, KNOWN)

    def _from_candidates(self, table: CandidateTable, profile: int, n: int, filters: Filters | None,
                         rules: FranchiseRules | None,
                         known: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The online stage: the profile's candidates filtered (an exact prefix of the live filtered ranking), cut
        by the franchise rules; (anime shown, their scores, their columns in the table), or None when the
        candidates run out before ``n`` and more exist than were kept: then only live scoring knows the answer
        (src/engine/candidates.py). ``known``: the anime the profile knows."""
        rows, scores, full = table.of(profile)
        allowed = self.catalogue.filter_mask(filters)
        columns = np.flatnonzero(allowed[rows])
        rows = rows[columns]
        if rules is None:
            positions = np.arange(min(n, len(rows)))
            chosen = rows[positions]
        else:
            chosen, positions = walk(rows, n, rules, rules.seen_mask(known), may_show(allowed, known, self.n_anime))
        if len(chosen) < n and full:
            return None
        return np.asarray(chosen, dtype=np.int64), scores[columns[positions]], columns[positions]

    def recommend_from_favourites(self, liked_anime_ids: Sequence[int], n: int | None = None,
                                  user_weight: float | None = None, content_weight: float | None = None,
                                  filters: Filters | None = None) -> list[dict[str, Any]]:
        """Cold start without retraining: the liked anime make a profile, recommended for like a user's.

        Ids the catalogue does not know are skipped (``unknown_anime`` lists them); only when none is known is
        the request refused.
        """
        n = validation.check_n(self.config.default_n if n is None else n, self.config)
        liked = validation.check_liked(liked_anime_ids, self.config)
        known = [index for index in map(self.catalogue.index_of, liked) if index is not None]
        if not known:
            raise UnknownAnimeError(f"none of the anime id(s) {', '.join(map(str, liked[:10]))} is known: "
                                    "search a title to find valid ids")
        profiles = Profiles.from_favourites([np.array(known)], self.n_anime)
        weights = tilted(self.settings.favourites_weights, validation.weights(user_weight, content_weight))
        if not np.any(np.array(known) < self.n_model_anime) and "features" in self.hybrid.scorers:
            weights = {"features": 1.0}  # only never-rated favourites: their content is all there is to go on
        return self._recommend(profiles, n, self.with_unrated(weights), filters, self.favourites_hybrid)

    def ranked_for_user(self, row: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """A known user's top ``k`` candidates (src/engine/candidates.py), scored by the one-profile path a request
        takes: the plain ranking (adult titles in: a request may opt in), the score of what each shows, the
        numbers its reasons word (``USER_REASONS`` records) and how many similar users their counts asked."""
        profiles = self.interactions.profiles([row])
        weights = self.with_unrated(dict(self.settings.weights))
        total = self.hybrid.score(profiles, weights).total[0]
        ranked = top_k(total, k, exclude=profiles.known, allowed=self.catalogue.listable(True),
                       tiebreak=self.catalogue.popularity_order)[0]
        ranked = ranked[ranked >= 0]
        shown = _shown_for(ranked, self.catalogue.franchise_rules, profiles.known_of(0))
        counts, asked = self.similar_users_scorer.counts_of(profiles, shown)
        # a franchise's first entry may stand for several of its seasons: each anime once (as a list shows it)
        distinct, each = np.unique(shown, return_inverse=True)
        sources, kinds = self.explainer.sources(distinct, profiles.preferred_of(0)[0], self.hybrid, weights)
        reasons = np.zeros(len(shown), USER_REASONS)
        reasons["count"], reasons["source"], reasons["kind"] = counts, sources[each], kinds[each]
        return ranked, total[shown], reasons, asked

    def ranked_similar(self, index: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anime ``index``'s top ``k`` similar anime as candidates: the plain ranking of what lists show by default
        (an adult opt-in is scored live), the similarity of what each shows, and whether its story is like the
        title's (what its reasons need)."""
        similarity = self._similarity_to(index)
        ranked = top_k(similarity, k, exclude=_row_of([index], self.n_anime), allowed=self.catalogue.listable(False),
                       tiebreak=self.catalogue.popularity_order)[0]
        ranked = ranked[ranked >= 0]
        shown = _shown_for(ranked, self.catalogue.franchise_rules, np.array([index]))
        return ranked, similarity[shown], self.explainer.stories_alike(index, shown)

    def unknown_anime(self, anime_ids: Sequence[int]) -> list[int]:
        """The ids among ``anime_ids`` that the catalogue does not have, in the order given."""
        return [int(anime_id) for anime_id in anime_ids if self.catalogue.index_of(anime_id) is None]

    def similar_anime(self, anime_id: int, n: int | None = None,
                      filters: Filters | None = None) -> list[dict[str, Any]]:
        """The n anime closest to ``anime_id``, itself excluded: for a rated anime a blend of the NCF embeddings'
        cosine and the content features' (``serving.similar_content_weight``), for a never-rated one content only."""
        n = validation.check_n(self.config.default_n if n is None else n, self.config)
        index = self.anime_index(anime_id)
        rules = self.catalogue.franchise_rules
        # the title's own franchise (the one "seen") shows one entry, so that other shows get the room
        rules, seen = (None, None) if rules is None else (rules.for_similar(), [rules.seen(np.array([index]))])
        table = self.candidates.anime if self.candidates is not None else None
        from_table = None
        if table is not None and not (filters is not None and filters.include_adult):
            from_table = self._from_candidates(table, index, n, filters, rules, np.array([index]))
        SERVED_FROM.set("live" if from_table is None else "candidates")
        if from_table is not None:
            top, values, columns = from_table
            alike = (table.reasons["story_alike"][index, columns] if table.reasons is not None
                     else self.explainer.stories_alike(index, top))  # a model published before they were stored
        else:
            similarity = self._similarity_to(index)
            top = franchise_top_k(similarity, n, rules, exclude=_row_of([index], self.n_anime),
                                  allowed=self.catalogue.filter_mask(filters),
                                  tiebreak=self.catalogue.popularity_order, seen=seen)[0]
            top = top[top >= 0]
            values, alike = similarity[top], self.explainer.stories_alike(index, top)
        return self.explainer.similar_items(top, values, index, alike)

    def _similarity_to(self, index: int) -> np.ndarray:
        """Cosine of every catalogue anime to anime ``index``: collaborative and content, blended."""
        content = (self.content_features @ self.content_features[index] if self.content_features is not None
                   else None)
        if index >= self.n_model_anime:
            return content if content is not None else np.zeros(self.n_anime, np.float32)
        collaborative = np.full(self.n_anime, -np.inf, np.float32)
        collaborative[:self.n_model_anime] = self.anime_embeddings @ self.anime_embeddings[index]
        if content is None:
            return collaborative
        share = float(self.config.similar_content_weight)
        return np.where(np.isfinite(collaborative), (1 - share) * collaborative + share * content, share * content)

    def search(self, query: str, limit: int | None = None, offset: int = 0,
               include_adult: bool = False) -> list[dict[str, Any]]:
        """Titles matching ``query`` however a fan spells it (src/engine/title_index.py), best first; ``offset``
        skips that many. Adult titles only with ``include_adult``; unaired ones are found, marked."""
        return self.search_page(query, limit, offset, include_adult)[0]

    def search_page(self, query: str, limit: int | None = None, offset: int = 0,
                    include_adult: bool = False) -> tuple[list[dict[str, Any]], int]:
        """(``search``'s results, how many the query finds in all): one matching of the query for both."""
        limit = validation.check_n(self.config.default_n if limit is None else limit, self.config, "limit")
        offset = validation.check_offset(offset)
        query = validation.check_query(query, self.config)
        found, total = self.catalogue.search_and_count(query, offset + limit, include_adult)
        return [self.catalogue.item(j, [_match_reason(kind, query.strip(), bool(self.catalogue.unaired[j]))])
                for j, kind in found[offset:]], total

    def search_total(self, query: str, include_adult: bool = False) -> int:
        """How many anime ``query`` finds in all (for paging)."""
        return self.catalogue.count_matches(validation.check_query(query, self.config), include_adult)

    def _recommend(self, profiles: Profiles, n: int, weights: dict[str, float], filters: Filters | None,
                   hybrid: Hybrid | None = None) -> list[dict[str, Any]]:
        hybrid = hybrid or self.hybrid
        scores = hybrid.score(profiles, weights)
        top = self._top(scores.total, n, profiles, filters)[0]
        voice = FAVOURITES if profiles.is_newcomer else KNOWN
        return self._explain(top[top >= 0], scores, profiles, hybrid, weights, voice)

    def recommend_from_list(self, entries: Sequence[ListEntry], n: int | None = None,
                            user_weight: float | None = None, content_weight: float | None = None,
                            filters: Filters | None = None) -> dict[str, Any]:
        """Recommendations from a person's whole list (an imported MyAnimeList export), scores and statuses read
        as src/engine/personal_lists.py says, scored with the known users' mix: a whole list is what a known user
        has. Nothing on the list is recommended back. Returns ``recommendations``, ``plan_to_watch`` (the list's
        plan-to-watch titles that fit best, at most ``serving.list_plan_to_watch``) and ``ignored`` (ids the
        catalogue does not know); refused (UnknownAnimeError) when the catalogue knows none of the list."""
        n = validation.check_n(self.config.default_n if n is None else n, self.config)
        profile = list_profile(entries, self.catalogue.index_of, self.list_policy)
        if not len(profile.listed):
            what = "the one anime" if len(profile.ignored) == 1 else f"none of the {len(profile.ignored):,} anime"
            raise UnknownAnimeError(f"{what} on the list {'is not' if len(profile.ignored) == 1 else 'is'} in our "
                                    "catalogue: is it an anime list from MyAnimeList?")
        taste, scores = profile.scored_by()
        profiles = Profiles.from_lists([taste], [scores], self.n_anime, self.config.preference_percentile)
        weights = self.with_unrated(tilted(self.settings.weights, validation.weights(user_weight, content_weight)))
        scored = self.hybrid.score(profiles, weights)
        listed = _row_of(profile.listed.tolist(), self.n_anime)
        rules = self.catalogue.franchise_rules
        seen = None if rules is None else [rules.seen(profile.watched)]  # planning a show is not having seen it
        top = franchise_top_k(scored.total, n, rules, exclude=sp.csr_matrix(profiles.known + listed),
                              allowed=self.catalogue.filter_mask(filters), tiebreak=self.catalogue.popularity_order,
                              seen=seen)[0]
        # a list of nothing but plans is scored by them: nothing is left to rank the plans themselves by
        planned = profile.plan_to_watch if len(profile.taste) else profile.plan_to_watch[:0]
        return {"recommendations": self._explain(top[top >= 0], scored, profiles, self.hybrid, weights, OWN_LIST),
                "plan_to_watch": self._plan_to_watch(planned, scored, profiles, weights, filters),
                "ignored": profile.ignored}

    def _plan_to_watch(self, planned: np.ndarray, scored: HybridScores, profiles: Profiles,
                       weights: dict[str, float], filters: Filters | None) -> list[dict[str, Any]]:
        """The person's own plan-to-watch titles that fit them best, as ranked for them (what lists may show)."""
        if not len(planned) or self.config.list_plan_to_watch == 0:
            return []
        candidates = np.zeros(self.n_anime, dtype=bool)
        candidates[planned] = True
        allowed = candidates & self.catalogue.filter_mask(filters)
        top = top_k_row(scored.total[0], self.config.list_plan_to_watch, allowed=allowed,
                        tiebreak=self.catalogue.popularity_order)
        return self._explain(top, scored, profiles, self.hybrid, weights, OWN_LIST)

    def rank_lists(self, lists: Sequence[Sequence[ListEntry]], k: int) -> np.ndarray:
        """(len(lists) x k) anime indices, -1 padded, for people given by their whole lists, ranked as
        ``recommend_from_list`` ranks them; each entry's ``anime_id`` is an anime index here (the evaluation's
        imported-list question)."""
        rules = self.catalogue.franchise_rules
        profiles = [list_profile(entries, lambda index: index, self.list_policy) for entries in lists]
        taste = [profile.scored_by() for profile in profiles]
        batch = Profiles.from_lists([anime for anime, _ in taste], [scores for _, scores in taste], self.n_anime,
                                    self.config.preference_percentile)
        total = self.hybrid.score(batch, self.method_weights("hybrid")).total
        listed = _rows_of([profile.listed for profile in profiles], self.n_anime)
        seen = [set() if rules is None else rules.seen(profile.watched) for profile in profiles]
        return franchise_top_k(total, k, rules, exclude=sp.csr_matrix(batch.known + listed),
                               allowed=self.catalogue.filter_mask(None), tiebreak=self.catalogue.popularity_order,
                               seen=seen)

    def _top(self, scores: np.ndarray, k: int, profiles: Profiles, filters: Filters | None = None,
             also_known: sp.csr_matrix | None = None) -> np.ndarray:
        """The one ranking of recommendations, served and evaluated: what may be shown (``filter_mask``), the
        profile's own anime (and ``also_known``'s rows) excluded, the franchise rules, the popularity tie-break."""
        known = profiles.known if also_known is None else sp.csr_matrix(profiles.known + also_known)
        return franchise_top_k(scores, k, self.catalogue.franchise_rules, exclude=known,
                               allowed=self.catalogue.filter_mask(filters), tiebreak=self.catalogue.popularity_order)

    def _explain(self, top: np.ndarray, scores: HybridScores, profiles: Profiles, hybrid: Hybrid,
                 weights: dict[str, float], voice: str) -> list[dict[str, Any]]:
        evidence = None
        if (user_part := scores.parts.get("user")) is not None:
            evidence = user_part.evidence["similar_user_counts"][0][top], user_part.evidence["similar_users"]
        return self.explainer.items(top, scores.total[0, top], profiles, hybrid, weights, voice, evidence)

    def with_item_item(self, weights: ItemWeights, values: str, favourites: bool = False) -> Recommender:
        """The same engine with other EASE weights, for known users (or, with ``favourites``, for newcomers only):
        how the validation carve compares EASE settings."""
        clone = copy.copy(self)
        swapped = Hybrid({**self.hybrid.scorers, "item_item": ItemItemScorer(weights, values, self.n_anime)})
        if favourites:
            clone.favourites_hybrid = swapped
        else:
            clone.hybrid = clone.favourites_hybrid = swapped
        return clone

    # ------------------------------------------------------------------ offline API (model rows, no validation of ids)
    def method_weights(self, method: str, newcomers: bool = False) -> dict[str, float]:
        """The component weights of an evaluation method: one component alone, or the chosen mix as served."""
        if method not in METHODS:
            raise InvalidRequestError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
        if method != "hybrid":
            return {method: 1.0}
        return self.with_unrated(dict(self.settings.favourites_weights if newcomers else self.settings.weights))

    def score_users(self, user_rows: Sequence[int] | np.ndarray, method: str = "hybrid",
                    user_weight: float | None = None, content_weight: float | None = None) -> np.ndarray:
        """(len(user_rows) x n_anime) float32 scores in [0, 1] that serving ranks by (known anime score 0)."""
        weights = tilted(self.method_weights(method), validation.weights(user_weight, content_weight))
        return self.hybrid.score(self.interactions.profiles(user_rows), weights).total

    def rank_users(self, user_rows: Sequence[int] | np.ndarray, k: int, method: str = "hybrid",
                   weights: dict[str, float] | None = None, also_known: sp.csr_matrix | None = None) -> np.ndarray:
        """(len(user_rows) x k) anime indices exactly as serving ranks them (known anime excluded), -1 padded;
        ``weights`` (component -> weight) instead of a method's. ``also_known`` (a row per user): anime the users
        have on their lists that this engine's rows lack, excluded and counted as seen as serving would (the
        evaluation's held-out new anime: the served model knows a user rated them)."""
        profiles = self.interactions.profiles(user_rows)
        weights = weights or self.method_weights(method)
        return self._top(self.hybrid.score(profiles, weights).total, k, profiles, also_known=also_known)

    def rank_favourites(self, favourites: Sequence[np.ndarray], k: int, method: str = "hybrid") -> np.ndarray:
        """(len(favourites) x k) anime indices for newcomers given by their favourites (anime indices), as the
        favourites endpoint ranks them; -1 padded."""
        return self._rank(Profiles.from_favourites(favourites, self.n_anime), k,
                          self.method_weights(method, newcomers=True), self.favourites_hybrid)

    def _rank(self, profiles: Profiles, k: int, weights: dict[str, float], hybrid: Hybrid | None = None) -> np.ndarray:
        return self._top((hybrid or self.hybrid).score(profiles, weights).total, k, profiles)


def _match_reason(kind: int, query: str, unaired: bool) -> str:
    reason = f'{_MATCH_LABELS.get(kind, "title contains")} "{query}"'
    return f"{reason} · not yet aired" if unaired else reason


def _row_of(indices: list[int], width: int) -> sp.csr_matrix:
    """A one-row matrix with ``indices`` stored: what a list must not show."""
    return _rows_of([np.asarray(indices, dtype=np.int64)], width)


def _shown_for(ranked: np.ndarray, rules: FranchiseRules | None, known: np.ndarray) -> np.ndarray:
    """The anime a list shows for each of ``ranked``: itself, or its franchise's first entry when the profile
    (which knows ``known``) has seen none of the franchise (src/engine/diversity.py)."""
    if rules is None:
        return ranked
    seen = np.isin(rules.franchise[ranked], rules.franchise[np.asarray(known, dtype=np.int64)])
    return np.where(seen, ranked, rules.first_entry[ranked])


def _rows_of(index_lists: Sequence[np.ndarray], width: int) -> sp.csr_matrix:
    """A matrix with row i holding ``index_lists[i]`` (stored as 1)."""
    return csr_rows(index_lists, None, width)


def _position_map(ids: np.ndarray, source: str) -> dict[int, int]:
    positions = {int(value): index for index, value in enumerate(ids)}
    if len(positions) != len(ids):
        raise ArtifactError(f"{source} lists an id more than once; the id maps must be unique: retrain")
    return positions
