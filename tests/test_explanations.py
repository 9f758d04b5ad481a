"""Reasons (src/engine/explanations.py): which preferred anime a reason names, how it is worded, and the story
cosines of similar anime, on tiny known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from src.engine.catalogue import Catalogue
from src.engine.explanations import (
    ALIKE,
    FAVOURITES,
    KNOWN,
    NO_SOURCE,
    OWN_LIST,
    SAME_STUDIO,
    reason_sources,
    recommendation_reasons,
    story_cosines,
)
from src.store.artifacts import with_optional_columns


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    """Six anime: 0-2 by Bones, 3 by Sunrise and Bones, 4 by Sunrise, 5 by nobody known; 5 has no ratings."""
    return Catalogue(with_optional_columns(pd.DataFrame({
        "anime_id": [10, 11, 12, 13, 14, 15],
        "name": ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"],
        "english_name": [None] * 6,
        "genres": ["Action, Drama", "Action", "Comedy", "Drama", "Action, Comedy", "Drama"],
        "type": ["TV"] * 6, "episodes": [12] * 6, "premiered": [None] * 6, "year": [2010] * 6, "score": [7.0] * 6,
        "members": [1000, 2000, 3000, 4000, 5000, 6000], "synopsis": [""] * 6,
        "studios": [["Bones"], ["Bones"], ["Bones"], ["Sunrise", "Bones"], ["Sunrise"], []],
    })), n_rated=5)


def test_a_reason_names_the_most_contributing_anime_when_the_two_are_alike(catalogue) -> None:
    top, preferred = np.array([0, 4]), np.array([1, 2, 3])
    contribution = np.array([[0.1, 0.5, 0.2],    # 0 owes most to preferred[1] = anime 2, alike: named
                             [0.9, 0.1, 0.3]])   # 4 owes most to anime 1, not alike: the best studio-mate, anime 3
    sources, kinds = reason_sources(top, preferred, contribution, np.array([True, False]), catalogue)
    assert sources.tolist() == [1, 2] and kinds.tolist() == [ALIKE, SAME_STUDIO]
    # of two Bones titles the more contributing one; Sunrise's Epsilon contributes most but shares no studio
    sources, kinds = reason_sources(np.array([1]), np.array([4, 2, 0]), np.array([[0.9, 0.2, 0.5]]),
                                    np.array([False]), catalogue)
    assert sources.tolist() == [2] and kinds.tolist() == [SAME_STUDIO]


def test_a_reason_names_nothing_without_a_like_or_a_studio_mate(catalogue) -> None:
    top, preferred = np.array([5, 4]), np.array([0, 1])  # Zeta has no studio; Sunrise made none of 0 and 1
    sources, kinds = reason_sources(top, preferred, np.ones((2, 2)), np.zeros(2, bool), catalogue)
    assert sources.tolist() == [-1, -1] and kinds.tolist() == [NO_SOURCE, NO_SOURCE]
    sources, kinds = reason_sources(top, preferred[:0], np.ones((2, 0)), np.zeros(2, bool), catalogue)
    assert sources.tolist() == [-1, -1] and kinds.tolist() == [NO_SOURCE, NO_SOURCE]


def test_the_reasons_are_worded_from_their_sources_in_each_voice(catalogue) -> None:
    top, preferred, ratings = np.array([0, 4, 5, 2]), np.array([1, 3]), np.array([9.0, 8.0], np.float32)
    sources, kinds = np.array([0, 1, -1, -1]), np.array([ALIKE, SAME_STUDIO, NO_SOURCE, NO_SOURCE])
    counts = np.array([3, 0, 0, 0])
    known = recommendation_reasons(top, counts, 50, sources, kinds, preferred, ratings, ("Action",), catalogue, KNOWN)
    assert known == [
        ["liked by 3 of your 50 most similar users", "similar to Beta, which you rated 9", "Action: genres you like"],
        ["by Sunrise, who made Delta", "Action: genres you like"],
        ["not in our training data: chosen for its story, studio and genres"],
        ["popular on MyAnimeList (3,000 members)"],
    ]
    favourites = recommendation_reasons(top[:1], counts[:1], 50, sources[:1], kinds[:1], preferred, ratings, (),
                                        catalogue, FAVOURITES)
    assert favourites == [["liked by 3 of 50 users with similar taste", "similar to Beta, which you liked"]]
    own = recommendation_reasons(top[:1], counts[:1] * 0, 50, sources[:1], kinds[:1], preferred, ratings, (),
                                 catalogue, OWN_LIST)
    assert own == [["because you gave Beta a 9"]]


def _story_cosines_one_term_at_a_time(story: sp.csr_matrix, source: int, others: np.ndarray) -> np.ndarray:
    """The cosines as a loop over each other row's terms sums them (the code before it was vectorised)."""
    start, end = story.indptr[source], story.indptr[source + 1]
    weights = dict(zip(story.indices[start:end].tolist(), story.data[start:end].tolist(), strict=True))
    cosines = np.zeros(len(others), np.float32)
    for position, row in enumerate(others.tolist()):
        first, last = story.indptr[row], story.indptr[row + 1]
        cosines[position] = sum(weights.get(term, 0.0) * value for term, value in
                                zip(story.indices[first:last].tolist(), story.data[first:last].tolist(), strict=True))
    return cosines


def test_story_cosines_are_the_term_by_term_sums_to_the_bit() -> None:
    rng = np.random.default_rng(3)
    story = sp.random(60, 400, density=0.05, format="lil", dtype=np.float32, random_state=4)
    story[7, :] = 0  # a synopsis with no terms
    story = sp.csr_matrix(story)
    for source in range(60):
        others = rng.permutation(60)[:20]
        assert np.array_equal(story_cosines(story, 60, source, others),
                              _story_cosines_one_term_at_a_time(story, source, others)), source
    assert story_cosines(story, 60, 3, np.array([], np.int64)).shape == (0,)
    assert not story_cosines(story, 60, 7, np.arange(60)).any()
