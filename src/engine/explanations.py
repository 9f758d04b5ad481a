"""Reasons: a short sentence or two per recommended anime, written for the top items only."""
from __future__ import annotations

import numpy as np

from src.engine.catalogue import Catalogue

REASON_TITLES = 3
# Below this cosine, "similar to X" would be a stretch; such items are explained by other reasons.
MIN_REASON_SIMILARITY = 0.25


def recommendation_reasons(top: np.ndarray, neighbour_counts: np.ndarray, neighbours: int, preferred: np.ndarray,
                           preferred_ratings: np.ndarray, preferred_genres: tuple[str, ...], catalogue: Catalogue,
                           anime_embeddings: np.ndarray, newcomer: bool) -> list[list[str]]:
    """Reasons for each anime index in ``top``: how many of the profile's ``neighbours`` most similar users prefer
    it (``neighbour_counts``, one per anime), which preferred anime it is most like, and shared favourite genres.

    The reasons describe the recommendation whatever mix ranked it: the NCF's embeddings find the similar users
    and the similar favourite. ``preferred`` (best first) and ``preferred_ratings`` are the profile's preferred
    anime; a newcomer's are their favourites, which they liked rather than rated.
    """
    nearest_liked, nearest_similarity = _nearest_preferred(top, preferred, anime_embeddings)
    genre_set = set(preferred_genres)
    all_reasons = []
    for position, anime in enumerate(top):
        reasons = []
        count = int(neighbour_counts[anime]) if anime < len(neighbour_counts) else 0
        if count > 0:
            reasons.append(f"liked by {count} of {neighbours} users with similar taste" if newcomer
                           else f"liked by {count} of your {neighbours} most similar users")
        if len(preferred) and nearest_similarity[position] >= MIN_REASON_SIMILARITY:
            source = int(preferred[nearest_liked[position]])
            title = catalogue.titles_shown[source]
            reasons.append(f"similar to {title}, which you liked" if newcomer
                           else f"similar to {title}, which you rated {preferred_ratings[nearest_liked[position]]:g}")
        shared = [genre for genre in catalogue.item_genres(anime) if genre in genre_set][:REASON_TITLES]
        if shared:
            reasons.append(f"{', '.join(shared)}: genres you like")
        if not reasons:
            reasons.append(f"popular on MyAnimeList ({int(catalogue.members[anime]):,} members)")
        all_reasons.append(reasons)
    return all_reasons


def similar_anime_reasons(top: np.ndarray, similarity: np.ndarray, source: int, catalogue: Catalogue) -> list[list[str]]:
    """"87% similar to Cowboy Bebop", and the genres the two share."""
    source_genres = set(catalogue.item_genres(source))
    title = catalogue.titles_shown[source]
    all_reasons = []
    for anime in top:
        reasons = [f"{max(float(similarity[anime]), 0.0):.0%} similar to {title}"]
        shared = [genre for genre in catalogue.item_genres(anime) if genre in source_genres][:REASON_TITLES]
        if shared:
            reasons.append(f"also {', '.join(shared)}")
        all_reasons.append(reasons)
    return all_reasons


def _nearest_preferred(top: np.ndarray, preferred: np.ndarray, anime_embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each top anime, the position in ``preferred`` of the most similar preferred anime, and that cosine."""
    if len(preferred) == 0 or len(top) == 0:
        return np.zeros(len(top), np.int64), np.zeros(len(top), np.float32)
    similarity = anime_embeddings[top] @ anime_embeddings[preferred].T
    nearest = similarity.argmax(axis=1)
    return nearest, similarity[np.arange(len(top)), nearest]
