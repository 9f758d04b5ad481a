"""Reasons: a short sentence or two per recommended anime, written for the top items only."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from src.engine.catalogue import Catalogue

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


def recommendation_reasons(top: np.ndarray, similar_user_counts: np.ndarray, similar_users: int, preferred: np.ndarray,
                           preferred_ratings: np.ndarray, preferred_genres: tuple[str, ...], catalogue: Catalogue,
                           contribution: np.ndarray, content_similarity: np.ndarray,
                           voice: str = KNOWN) -> list[list[str]]:
    """Reasons for each anime index in ``top``: how many of the profile's ``similar_users`` most similar users prefer
    it (``similar_user_counts``, one per anime of ``top``), the preferred anime it owes most to, a studio or genres they
    share.

    ``contribution`` and ``content_similarity`` are (len(top) x len(preferred)): how much each preferred anime raised
    each recommendation's score, and how alike the two are in content. "similar to X" names the preferred anime that
    contributes most, and only when the two are alike (``MIN_REASON_SIMILARITY``); otherwise the next true reason
    is given (a studio they share, genres, similar users). ``preferred`` (best first) and ``preferred_ratings`` are
    the profile's preferred anime; ``voice`` (KNOWN, FAVOURITES, OWN_LIST) says whether the person rated, picked or
    scored them on their own list. An anime without community ratings says so.
    """
    newcomer = voice != KNOWN
    genre_set = set(preferred_genres)
    all_reasons = []
    for position, anime in enumerate(top):
        reasons = []
        count = int(similar_user_counts[position])
        if count > 0:
            reasons.append(f"liked by {count} of {similar_users} users with similar taste" if newcomer
                           else f"liked by {count} of your {similar_users} most similar users")
        if len(preferred):
            source = int(np.argmax(contribution[position]))
            if content_similarity[position, source] >= MIN_REASON_SIMILARITY:
                reasons.append(_because(catalogue.titles_shown[int(preferred[source])], preferred_ratings[source],
                                        voice))
            elif studio := _shared_studio(catalogue, int(anime), preferred[np.argsort(-contribution[position])]):
                reasons.append(studio)
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


def _shared_studio(catalogue: Catalogue, anime: int, preferred: np.ndarray) -> str | None:
    """"by Bones, who made Fullmetal Alchemist": the first of ``preferred`` (most contributing first) sharing a studio
    with ``anime``."""
    studios = catalogue.studios[anime]
    made = np.asarray(preferred, dtype=np.int64)[catalogue.made_by(studios)[preferred]] if studios else preferred[:0]
    if not len(made):
        return None
    source = int(made[0])
    shared = [studio for studio in studios if studio in catalogue.studios[source]]
    return f"by {shared[0]}, who made {catalogue.titles_shown[source]}"


def similar_anime_reasons(top: np.ndarray, similarity: np.ndarray, source: int, catalogue: Catalogue,
                          story: sp.csr_matrix | None) -> list[list[str]]:
    """"87% similar to Cowboy Bebop", then what the two share: "same studio: Sunrise", "story like Cowboy Bebop",
    "shared genres: Action, Sci-Fi"."""
    title = catalogue.titles_shown[source]
    all_reasons = []
    for anime, story_cosine in zip(top, story_cosines(story, len(catalogue), source, top), strict=True):
        reasons = [f"{max(float(similarity[anime]), 0.0):.0%} similar to {title}"]
        reasons += content_reasons(catalogue, source, int(anime), float(story_cosine))
        all_reasons.append(reasons)
    return all_reasons


def story_cosines(story: sp.csr_matrix | None, n_anime: int, source: int, others: np.ndarray) -> np.ndarray:
    """The synopsis TF-IDF cosine of ``source`` with each of ``others`` (one sparse product for them all); 0 when
    the artifacts have no story matrix for this catalogue of ``n_anime``."""
    if story is None or story.shape[0] != n_anime or len(others) == 0:
        return np.zeros(len(others), np.float32)
    # the rows' stored terms against the source's, gathered directly (scipy's row indexing and product cost more
    # than the arithmetic on a request's path)
    start, end = story.indptr[source], story.indptr[source + 1]
    weights = dict(zip(story.indices[start:end].tolist(), story.data[start:end].tolist(), strict=True))
    cosines = np.zeros(len(others), np.float32)
    for position, row in enumerate(np.asarray(others, dtype=np.int64).tolist()):
        first, last = story.indptr[row], story.indptr[row + 1]
        cosines[position] = sum(weights.get(term, 0.0) * value for term, value in
                                zip(story.indices[first:last].tolist(), story.data[first:last].tolist(), strict=True))
    return cosines


def content_reasons(catalogue: Catalogue, first: int, second: int, story_cosine: float) -> list[str]:
    """What two anime share: studios, a story (their synopses' TF-IDF cosine ``story_cosine``, both long enough),
    genres."""
    reasons = []
    studios = [studio for studio in catalogue.studios[first] if studio in set(catalogue.studios[second])]
    if studios:
        reasons.append(f"same studio{'s' if len(studios) > 1 else ''}: {', '.join(studios[:REASON_TITLES])}")
    if story_cosine >= STORY_THRESHOLD and _long_synopses(catalogue, first, second):
        reasons.append(f"story like {catalogue.titles_shown[first]}")
    second_genres = set(catalogue.item_genres(second))
    genres = [genre for genre in catalogue.item_genres(first) if genre in second_genres][:REASON_TITLES]
    if genres:
        reasons.append(f"shared genres: {', '.join(genres)}")
    return reasons


def _long_synopses(catalogue: Catalogue, first: int, second: int) -> bool:
    words = catalogue.synopsis_words
    return bool(words[first] >= STORY_MIN_WORDS and words[second] >= STORY_MIN_WORDS)


