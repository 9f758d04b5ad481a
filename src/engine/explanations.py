"""Reasons: a short sentence or two per recommended anime, written for the top items only.

A reason has numbers behind it (which of the person's anime it names, how many similar users like the anime, whether
two stories are alike) and words. ``Explainer`` computes the numbers and words them; a known user's and a title's
candidates keep the numbers from publish (src/engine/candidates.py), so that a request only words them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from src.engine.catalogue import Catalogue
from src.engine.hybrid import Hybrid
from src.engine.interactions import Profiles, stored_positions
from src.engine.scorers import SimilarUsersScorer

REASON_TITLES = 3
# "similar to X" only when X and the recommendation are alike in content (their content features' cosine): the NCF's
# embeddings also place popular titles near each other, and "similar to Death Note" on Toradora! is what that gives.
MIN_REASON_SIMILARITY = 0.3
# "story like X" from this synopsis TF-IDF cosine on, for synopses of at least this many words each (short ones
# share boilerplate such as "A music video for the song ..."), chosen on real titles (tests/test_content_features.py).
STORY_THRESHOLD = 0.15
STORY_MIN_WORDS = 25


# How a reason speaks of the person's own anime: a known user rated them, a newcomer liked (picked) them, someone who
# brought their list gave them a score.
KNOWN, FAVOURITES, OWN_LIST = "known", "favourites", "own list"


class Explainer:
    """The items of a list with their reasons, for one catalogue (row j = anime j)."""

    def __init__(self, catalogue: Catalogue, content_features: np.ndarray | None, story: sp.csr_matrix | None,
                 similar_users: SimilarUsersScorer, preferred_genres: int) -> None:
        """``content_features``: L2-normalised, or None; ``story``: the synopses' TF-IDF rows, or None;
        ``preferred_genres``: how many of a profile's genres its reasons may name."""
        self.catalogue, self.content_features, self.story = catalogue, content_features, story
        self.similar_users, self.preferred_genres = similar_users, preferred_genres

    def items(self, top: np.ndarray, match: np.ndarray, profiles: Profiles, hybrid: Hybrid, weights: dict[str, float],
              voice: str, evidence: tuple[np.ndarray, int] | None = None,
              genres: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """The items of the first profile's list ``top``, ``match`` their scores, explained (only the shown anime
        are). ``evidence``: the mix's own counts of similar users' votes for ``top`` and how many were asked;
        ``genres``: the profile's preferred genres when already known."""
        preferred, ratings = profiles.preferred_of(0)
        if genres is None:
            genres = self.catalogue.top_genres(profiles.preferred, self.preferred_genres)[0]
        # without the mix's own count of similar users' votes, they are counted for the shown anime only
        counts, asked = evidence if evidence is not None else self.similar_users.counts_of(profiles, top)
        sources, kinds = self.sources(top, preferred, hybrid, weights)
        return self.worded(top, match, counts, asked, sources, kinds, preferred, ratings, genres, voice)

    def worded(self, top: np.ndarray, match: np.ndarray, counts: np.ndarray, asked: int, sources: np.ndarray,
               kinds: np.ndarray, preferred: np.ndarray, ratings: np.ndarray, genres: tuple[str, ...],
               voice: str) -> list[dict[str, Any]]:
        """The items of ``top`` with their ``match`` and their reasons worded from their numbers."""
        reasons = recommendation_reasons(top, counts, asked, sources, kinds, preferred, ratings, genres,
                                         self.catalogue, voice)
        return self._with_reasons(top, "match", match, reasons)

    def sources(self, top: np.ndarray, preferred: np.ndarray, hybrid: Hybrid,
                weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """``reason_sources`` of ``top`` for a profile preferring ``preferred``, scored by ``hybrid`` with
        ``weights``; each anime of ``top`` (distinct) computed alone: the same numbers for a list of ten and for
        the candidates at publish."""
        if not len(preferred):
            return reason_sources(top, preferred, np.zeros((len(top), 0)), np.zeros(len(top), bool), self.catalogue)
        contribution = self._contribution(top, preferred, hybrid, weights)
        # only the most contributing preferred anime is asked whether it is alike: one cosine a recommendation
        alike = self._cosines(top, preferred[np.argmax(contribution, axis=1)]) >= MIN_REASON_SIMILARITY
        return reason_sources(top, preferred, contribution, alike, self.catalogue)

    def _contribution(self, top: np.ndarray, preferred: np.ndarray, hybrid: Hybrid,
                      weights: dict[str, float]) -> np.ndarray:
        """(len(top) x len(preferred)): how much each preferred anime raised each recommendation's score. EASE's
        B[preferred, top] when the mix weighs EASE (an anime outside its support contributes nothing there); for a
        recommendation EASE says nothing about, and for mixes without it, the content cosine."""
        item_item = hybrid.scorers.get("item_item")
        if item_item is None or weights.get("item_item", 0) <= 0:
            return self._content_between(top, preferred)
        pairs = item_item.pair_weights(preferred, top).T
        silent = np.isnan(pairs).all(axis=1)
        contribution = np.nan_to_num(pairs, nan=-np.inf)
        if silent.any():  # rare (an anime outside EASE's support): only those rows need every content cosine
            contribution[silent] = self._content_between(top[silent], preferred)
        return contribution

    def similar_items(self, top: np.ndarray, similarity: np.ndarray, source: int,
                      stories_alike: np.ndarray) -> list[dict[str, Any]]:
        """The items of anime ``source``'s similar anime ``top``, with their ``similarity`` and reasons."""
        reasons = similar_anime_reasons(top, similarity, source, self.catalogue, stories_alike)
        return self._with_reasons(top, "similarity", similarity, reasons)

    def _with_reasons(self, top: np.ndarray, field: str, values: np.ndarray,
                      reasons: list[list[str]]) -> list[dict[str, Any]]:
        """The catalogue items of ``top``, each with its reasons and its value (rounded) under ``field``."""
        items = []
        for j, value, item_reasons in zip(top.tolist(), np.asarray(values).tolist(), reasons, strict=True):
            item = self.catalogue.item(j, item_reasons)
            item[field] = round(value, 4)
            items.append(item)
        return items

    def stories_alike(self, source: int, others: np.ndarray) -> np.ndarray:
        """Whether each of ``others`` has a story like anime ``source``'s (their synopses' cosine reaches
        STORY_THRESHOLD)."""
        return story_cosines(self.story, len(self.catalogue), source, others) >= STORY_THRESHOLD

    def _content_between(self, anime: np.ndarray, others: np.ndarray) -> np.ndarray:
        """(len(anime) x len(others)) content-feature cosines (zeros without content features), one row at a time:
        a matrix product's rounding may depend on how many rows it is given, a row's does not."""
        if self.content_features is None or not len(others):
            return np.zeros((len(anime), len(others)), np.float32)
        others_features = self.content_features[others]
        return np.array([others_features @ self.content_features[j] for j in anime.tolist()],
                        np.float32).reshape(len(anime), len(others))

    def _cosines(self, anime: np.ndarray, others: np.ndarray) -> np.ndarray:
        """The content cosine of each of ``anime`` with the same position of ``others`` (zeros without content
        features), each pair summed alone."""
        if self.content_features is None:
            return np.zeros(len(anime), np.float32)
        return (self.content_features[anime] * self.content_features[others]).sum(axis=1)


# What a reason names of the person's own preferred anime (``reason_sources``): nothing, one alike in content
# ("similar to X, which you rated 9"), or one made by the same studio ("by Bones, who made X").
NO_SOURCE, ALIKE, SAME_STUDIO = 0, 1, 2


def reason_sources(top: np.ndarray, preferred: np.ndarray, contribution: np.ndarray, alike: np.ndarray,
                   catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """Which preferred anime each recommendation's reason names, and how: (positions in ``preferred``, -1 for none;
    kinds NO_SOURCE, ALIKE, SAME_STUDIO), one per anime of ``top``.

    ``contribution`` is (len(top) x len(preferred)): how much each preferred anime raised each recommendation's
    score; ``alike``, one per anime of ``top``: whether it is alike in content (``MIN_REASON_SIMILARITY``) to the
    preferred anime it owes most to. The reason names that anime when the two are alike, else the most contributing
    one that shares a studio with the recommendation, else none. These are the numbers behind the words: computed
    live, or with a known user's candidates at publish (src/engine/candidates.py), and worded by
    ``recommendation_reasons``.
    """
    sources = np.full(len(top), -1, np.int64)
    kinds = np.full(len(top), NO_SOURCE, np.int8)
    if not len(preferred) or not len(top):
        return sources, kinds
    best = np.argmax(contribution, axis=1)
    alike = np.asarray(alike, dtype=bool)
    sources[alike], kinds[alike] = best[alike], ALIKE
    rest = np.flatnonzero(~alike)
    shared = catalogue.share_a_studio(top[rest], preferred)
    with_mate = shared.any(axis=1)
    rows, shared = rest[with_mate], shared[with_mate]
    if len(rows):  # most contributing first (each row sorted as a sort of that row alone would)
        order = np.argsort(-contribution[rows], axis=1)
        first = np.argmax(np.take_along_axis(shared, order, axis=1), axis=1)
        sources[rows], kinds[rows] = order[np.arange(len(rows)), first], SAME_STUDIO
    return sources, kinds


def recommendation_reasons(top: np.ndarray, similar_user_counts: np.ndarray, similar_users: int, sources: np.ndarray,
                           kinds: np.ndarray, preferred: np.ndarray, preferred_ratings: np.ndarray,
                           preferred_genres: tuple[str, ...], catalogue: Catalogue,
                           voice: str = KNOWN) -> list[list[str]]:
    """Reasons for each anime index in ``top``: how many of the profile's ``similar_users`` most similar users prefer
    it (``similar_user_counts``, one per anime of ``top``), the preferred anime its reason names (``sources`` and
    ``kinds``, from ``reason_sources``), the genres they share.

    ``preferred`` (best first) and ``preferred_ratings`` are the profile's preferred anime; ``voice`` (KNOWN,
    FAVOURITES, OWN_LIST) says whether the person rated, picked or scored them on their own list. An anime without
    community ratings says so; one with no other reason says how popular it is.
    """
    newcomer = voice != KNOWN
    genre_set = set(preferred_genres)
    titles = catalogue.titles_shown
    all_reasons = []
    for anime, count, source, kind in zip(top.tolist(), np.asarray(similar_user_counts).tolist(),
                                          np.asarray(sources).tolist(), np.asarray(kinds).tolist(), strict=True):
        reasons = []
        if count > 0:
            reasons.append(f"liked by {count} of {similar_users} users with similar taste" if newcomer
                           else f"liked by {count} of your {similar_users} most similar users")
        if kind == ALIKE:
            reasons.append(_because(titles[int(preferred[source])], preferred_ratings[source], voice))
        elif kind == SAME_STUDIO:
            made = int(preferred[source])
            if shared := [studio for studio in catalogue.studios[anime] if studio in catalogue.studios[made]]:
                reasons.append(f"by {shared[0]}, who made {titles[made]}")
        shared = [genre for genre in catalogue.item_genres(anime) if genre in genre_set][:REASON_TITLES]
        if shared:
            reasons.append(f"{', '.join(shared)}: genres you like")
        if anime >= catalogue.n_rated:
            reasons.append("not in our training data: chosen for its story, studio and genres")
        if not reasons:
            reasons.append(f"popular on MyAnimeList ({int(catalogue.members[anime]):,} members)")
        all_reasons.append(reasons)
    return all_reasons


def _because(title: str, rating: float, voice: str) -> str:
    if voice == OWN_LIST:  # the preferred anime of a list are among its scored ones
        return f"because you gave {title} a {rating:g}"
    return f"similar to {title}, which you liked" if voice == FAVOURITES else \
        f"similar to {title}, which you rated {rating:g}"


def similar_anime_reasons(top: np.ndarray, similarity: np.ndarray, source: int, catalogue: Catalogue,
                          stories_alike: np.ndarray) -> list[list[str]]:
    """"87% similar to Cowboy Bebop", then what the two share: "same studio: Sunrise", "story like Cowboy Bebop",
    "shared genres: Action, Sci-Fi". ``similarity`` and ``stories_alike`` (their synopses' cosine reaches
    STORY_THRESHOLD, ``story_cosines``) are one per anime of ``top``."""
    title = catalogue.titles_shown[source]
    all_reasons = []
    for anime, value, alike in zip(top.tolist(), np.asarray(similarity).tolist(), np.asarray(stories_alike).tolist(),
                                   strict=True):
        reasons = [f"{max(value, 0.0):.0%} similar to {title}"]
        reasons += content_reasons(catalogue, source, anime, alike)
        all_reasons.append(reasons)
    return all_reasons


def story_cosines(story: sp.csr_matrix | None, n_anime: int, source: int, others: np.ndarray) -> np.ndarray:
    """The synopsis TF-IDF cosine of ``source`` with each of ``others`` (one sparse product for them all); 0 when
    the artifacts have no story matrix for this catalogue of ``n_anime``."""
    if story is None or story.shape[0] != n_anime or len(others) == 0:
        return np.zeros(len(others), np.float32)
    start, end = story.indptr[source], story.indptr[source + 1]
    source_terms, source_weights = story.indices[start:end], story.data[start:end].astype(np.float64)
    if not len(source_terms):
        return np.zeros(len(others), np.float32)
    if np.any(source_terms[1:] <= source_terms[:-1]):
        order = np.argsort(source_terms, kind="stable")
        source_terms, source_weights = source_terms[order], source_weights[order]
    # every stored term of the others looked up among the source's, and the products summed per row in the rows'
    # stored order (in float64, as a Python loop over the terms sums them: the same cosines to the bit)
    taken, indptr = stored_positions(story, np.asarray(others, dtype=np.int64))
    terms = story.indices[taken]
    at = np.minimum(np.searchsorted(source_terms, terms), len(source_terms) - 1)
    products = np.where(source_terms[at] == terms, source_weights[at], 0.0) * story.data[taken]
    rows = np.repeat(np.arange(len(others)), np.diff(indptr))
    return np.bincount(rows, weights=products, minlength=len(others)).astype(np.float32)


def content_reasons(catalogue: Catalogue, first: int, second: int, story_alike: bool) -> list[str]:
    """What two anime share: studios, a story (``story_alike``: their synopses' TF-IDF cosine reaches
    STORY_THRESHOLD; both must also be long enough), genres."""
    reasons = []
    second_studios = catalogue.studios[second]
    studios = [studio for studio in catalogue.studios[first] if studio in second_studios]
    if studios:
        reasons.append(f"same studio{'s' if len(studios) > 1 else ''}: {', '.join(studios[:REASON_TITLES])}")
    if story_alike and _long_synopses(catalogue, first, second):
        reasons.append(f"story like {catalogue.titles_shown[first]}")
    second_genres = catalogue.item_genres(second)
    genres = [genre for genre in catalogue.item_genres(first) if genre in second_genres][:REASON_TITLES]
    if genres:
        reasons.append(f"shared genres: {', '.join(genres)}")
    return reasons


def _long_synopses(catalogue: Catalogue, first: int, second: int) -> bool:
    words = catalogue.synopsis_words
    return bool(words[first] >= STORY_MIN_WORDS and words[second] >= STORY_MIN_WORDS)


