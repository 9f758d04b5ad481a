"""The whole catalogue: anime nobody rated are found, compared, liked and recommended through their content."""
from __future__ import annotations

import numpy as np
import pytest

from src.engine.catalogue import Filters
from src.engine.recommender import Recommender
from src.engine.scorers import FeaturesScorer
from tests.serving_fixtures import GROUP_A_IDS, GROUP_B_IDS, TEST_USER, TEST_USER_RATINGS, UNRATED_IDS


def ids(items: list[dict]) -> list[int]:
    return [item["anime_id"] for item in items]


def test_the_catalogue_lists_every_anime_and_says_which_have_ratings(catalogue_engine: Recommender) -> None:
    assert catalogue_engine.n_anime == 15 and catalogue_engine.n_model_anime == 12
    assert catalogue_engine.anime(38000)["rated"] is False and catalogue_engine.anime(1)["rated"] is True
    assert catalogue_engine.anime(38000)["studios"] == ["ufotable"]


@pytest.mark.parametrize("query, expected", [
    ("kimetsu no yaiba", 38000), ("demon slayer", 38000), ("鬼滅の刃", 38000), ("jujutsu kaisen", 40748),
    ("新世紀エヴァンゲリオン", 30),
])
def test_search_finds_every_title_by_any_of_its_names(catalogue_engine: Recommender, query: str, expected: int) -> None:
    assert expected in ids(catalogue_engine.search(query, 3))


def test_similar_anime_of_a_never_rated_title_come_from_its_content(catalogue_engine: Recommender) -> None:
    similar = catalogue_engine.similar_anime(38000, n=5)
    assert set(ids(similar)) <= set(GROUP_A_IDS) | {40748}  # its own (group A) side of the content space
    assert all(item["reasons"][0].endswith("similar to Demon Slayer: Kimetsu no Yaiba") for item in similar)
    demon_slayer = next(item for item in catalogue_engine.similar_anime(40748, n=14) if item["anime_id"] == 38000)
    assert "shared genres: Action, Demons, Supernatural" in demon_slayer["reasons"]


def test_similar_anime_of_a_rated_title_blend_in_content(catalogue_engine: Recommender) -> None:
    similar = catalogue_engine.similar_anime(1, n=14)
    assert set(ids(similar[:5])) <= set(GROUP_A_IDS)  # still its group first
    assert {38000, 40748} <= set(ids(similar))  # never-rated titles take part, through their content
    assert any("same studio" in reason for item in catalogue_engine.similar_anime(5, n=14) for reason in item["reasons"]
               ) is False  # Bones and Sunrise share no studio: no invented reason


def test_favourites_accept_never_rated_titles(catalogue_engine: Recommender) -> None:
    only_unrated = catalogue_engine.recommend_from_favourites([38000], n=4)
    assert set(ids(only_unrated)) <= set(GROUP_A_IDS) | {40748}
    mixed = catalogue_engine.recommend_from_favourites([38000, 101], n=10)
    assert 38000 not in ids(mixed) and 101 not in ids(mixed) and len(mixed) == 10


def test_recommendations_may_include_never_rated_titles_flagged(catalogue_engine: Recommender) -> None:
    items = catalogue_engine.recommend_for_user(TEST_USER, n=100)
    assert len(items) == catalogue_engine.n_anime - len(TEST_USER_RATINGS)
    unrated = [item for item in items if not item["rated"]]
    assert {item["anime_id"] for item in unrated} == set(UNRATED_IDS)
    assert all(any(reason.startswith("not in our training data") for reason in item["reasons"]) for item in unrated)
    group_a_first = [item["anime_id"] for item in items if item["anime_id"] in (38000, 42897)]
    assert group_a_first == [38000, 42897]  # the group-A fan meets the group-A newcomer title first


def test_filters_work_on_the_whole_catalogue(catalogue_engine: Recommender) -> None:
    demons = catalogue_engine.recommend_for_user(TEST_USER, n=10, filters=Filters(genres=("Demons",)))
    assert set(ids(demons)) == {38000, 40748}
    assert set(ids(catalogue_engine.similar_anime(101, n=10, filters=Filters(year_from=2021)))) == {42897}


def test_known_answers_hold_with_a_whole_catalogue(catalogue_engine: Recommender) -> None:
    assert set(ids(catalogue_engine.recommend_for_user(TEST_USER, n=2))) == {5, 20}
    assert set(ids(catalogue_engine.recommend_from_favourites([101, 102], n=4))) == set(GROUP_B_IDS) - {101, 102}


def test_the_unrated_scorer_gives_the_never_rated_titles_their_content_match_and_nothing_to_the_rest(
        catalogue_engine: Recommender) -> None:
    """Known answer: the unrated part of the mix is the content scorer's cosine on the never-rated titles alone."""
    profiles = catalogue_engine.interactions.profiles([0, 1])
    unrated = catalogue_engine.hybrid.scorers["unrated"].score(profiles).values
    content = FeaturesScorer(catalogue_engine.content_features).score(profiles).values
    rated = catalogue_engine.n_model_anime
    assert unrated.shape == content.shape == (2, 15)
    assert np.all(unrated[:, :rated] == -np.inf)
    np.testing.assert_allclose(unrated[:, rated:], content[:, rated:], rtol=1e-6)
