"""What a fan meets in the first five minutes, on the real catalogue and a really trained model: forgiving search,
safe lists (no adult title unless asked for), nothing unaired, one entry per franchise entered at its first entry,
no recaps or music videos, reasons that fit, and never-rated titles showing what the metadata knows."""
from __future__ import annotations

import numpy as np
import pytest

from config import paths_config
from config.loader import load_config
from src.engine.catalogue import Filters
from src.engine.explanations import MIN_REASON_SIMILARITY
from src.engine.recommender import Recommender

pytestmark = pytest.mark.integration

DEMON_SLAYER, JUJUTSU_KAISEN_TV, JUJUTSU_KAISEN_ONA, CHAINSAW_MAN = 38000, 40748, 38777, 44511
FIRE_FORCE, FIRE_FORCE_2 = 38671, 40956
TAIMANIN_ASAGI = 3479  # an adult (Rx - Hentai) title
ORIENT, JIGOKURAKU = 45560, 46569  # "Aired: Unknown" in the 2020 metadata

# A fan's query and the first result they expect (MyAnimeList ids); tests/test_title_index.py has many more.
FAN_QUERIES = {
    "steins gate": 9253, "fma": 5114, "fullmetal brotherhood": 5114, "jjk": JUJUTSU_KAISEN_TV,
    "jujutsu kaisen": JUJUTSU_KAISEN_TV, "aot": 16498, "naruot": 20, "evangelon": 30, "cowboy bebob": 1,
    "re zero": 31240, "hxh": 11061, "demon slayer": DEMON_SLAYER,
}


@pytest.fixture(scope="module")
def engine(trained_root) -> Recommender:
    return Recommender.from_config(paths_config.model_dir(trained_root), load_config())


def _ids(items: list[dict]) -> list[int]:
    return [item["anime_id"] for item in items]


def _rows(engine: Recommender, items: list[dict]) -> np.ndarray:
    return np.array([engine.anime_index(anime_id) for anime_id in _ids(items)], dtype=np.int64)


def _adult_ids(engine: Recommender) -> set[int]:
    return set(engine.anime_ids[engine.catalogue.adult].tolist())


@pytest.mark.parametrize("query, expected", FAN_QUERIES.items())
def test_fan_spellings_find_the_show_first(engine, query, expected):
    assert _ids(engine.search(query, 5))[0] == expected


def test_the_favourites_pickers_first_result_is_the_tv_series(engine):
    found = engine.search("jujutsu kaisen", 10)
    assert _ids(found)[:2] == [JUJUTSU_KAISEN_TV, JUJUTSU_KAISEN_ONA]  # the 708k-member TV series above the ONA


def test_adult_titles_are_found_only_with_the_opt_in(engine):
    assert TAIMANIN_ASAGI not in _ids(engine.search("taimanin asagi", 20))
    assert not set(_ids(engine.search("taimanin", 50))) & _adult_ids(engine)  # its non-adult spin-offs remain
    assert engine.search_total("taimanin") < engine.search_total("taimanin", include_adult=True)
    assert _ids(engine.search("taimanin asagi", 20, include_adult=True))[0] == TAIMANIN_ASAGI


def test_no_list_shows_an_adult_title_by_default_and_the_opt_in_does(engine):
    adult = _adult_ids(engine)
    assert len(adult) > 1000  # 1,345 Rx titles in the 2020 catalogue
    lists = [engine.similar_anime(DEMON_SLAYER, 100), engine.similar_anime(TAIMANIN_ASAGI, 100),
             engine.recommend_from_favourites([DEMON_SLAYER, JUJUTSU_KAISEN_TV], 100),
             engine.recommend_from_favourites([TAIMANIN_ASAGI], 100)]
    assert all(not set(_ids(items)) & adult for items in lists)
    opted_in = engine.similar_anime(TAIMANIN_ASAGI, 20, Filters(include_adult=True))
    assert len(set(_ids(opted_in)) & adult) >= 5  # an adult title's nearest titles are mostly adult ones


def test_a_known_user_whose_history_holds_adult_titles_gets_none_by_default(engine):
    adult = np.flatnonzero(engine.catalogue.adult)
    known = engine.interactions.profiles(np.arange(engine.n_users)).known
    adult_counts = np.asarray(known[:, adult].getnnz(axis=1)).ravel()
    user = int(engine.user_ids[int(np.argmax(adult_counts))])
    assert adult_counts.max() >= 50  # the embedded sample has users who rated hundreds of them
    assert not set(_ids(engine.recommend_for_user(user, 100))) & _adult_ids(engine)
    assert set(_ids(engine.recommend_for_user(user, 100, filters=Filters(include_adult=True)))) & _adult_ids(engine)


def test_unaired_titles_are_never_listed_but_found_and_marked(engine):
    unaired = set(engine.anime_ids[engine.catalogue.unaired].tolist())
    assert {CHAINSAW_MAN, ORIENT, JIGOKURAKU} <= unaired
    shown = engine.recommend_from_favourites([DEMON_SLAYER, JUJUTSU_KAISEN_TV, CHAINSAW_MAN], 100)
    assert not set(_ids(shown)) & unaired
    assert not set(_ids(engine.similar_anime(CHAINSAW_MAN, 100))) & unaired
    found = engine.search("chainsaw man", 1)[0]
    assert found["anime_id"] == CHAINSAW_MAN and found["not_yet_aired"] and "not yet aired" in found["reasons"][0]


def test_one_entry_per_franchise_not_seen_and_no_recap_or_music_video(engine):
    franchise, rules = engine.catalogue.franchise, engine.catalogue.franchise_rules
    similar = [engine.similar_anime(DEMON_SLAYER, 50), engine.similar_anime(1, 50)]
    for items in similar:  # no one has seen anything here: one entry of every franchise, the title's own included
        rows = _rows(engine, items)
        assert len(np.unique(franchise[rows])) == len(rows), "two entries of one franchise among similar anime"
    favourites = [DEMON_SLAYER, JUJUTSU_KAISEN_TV]
    recommended = [(engine.recommend_from_favourites(favourites, 50),
                    rules.seen(np.array([engine.anime_index(anime_id) for anime_id in favourites])))]
    for user in engine.user_ids[:20]:
        known = engine.interactions.profiles([engine.user_index(int(user))]).known.indices
        recommended.append((engine.recommend_for_user(int(user), 50), rules.seen(known)))
    for items, seen in [*((items, set()) for items in similar), *recommended]:
        unseen = [franchise[row] for row in _rows(engine, items) if franchise[row] not in seen]
        assert len(set(unseen)) == len(unseen), "two entries of a franchise the person has not seen"
        assert not any(item["type"] == "Music" for item in items)
        assert not engine.catalogue.unrecommendable[_rows(engine, items)].any()
        assert not any("recap" in (item["name"] + str(item["english_name"])).casefold() for item in items)


def test_a_franchise_nobody_has_seen_enters_at_its_first_entry(engine):
    rules = engine.catalogue.franchise_rules
    assert rules.first_entry[engine.anime_index(FIRE_FORCE_2)] == engine.anime_index(FIRE_FORCE)
    for user in engine.user_ids[:30]:
        seen = rules.seen(engine.interactions.profiles([engine.user_index(int(user))]).known.indices)
        for row in _rows(engine, engine.recommend_for_user(int(user), 30)):
            assert rules.franchise[row] in seen or rules.first_entry[row] == row, "a later season of an unseen show"


def test_similar_anime_leave_room_for_other_shows(engine):
    franchise = engine.catalogue.franchise
    own = franchise[engine.anime_index(DEMON_SLAYER)]
    rows = _rows(engine, engine.similar_anime(DEMON_SLAYER, 20))
    assert np.count_nonzero(franchise[rows] == own) <= 1


def test_similar_to_names_a_liked_anime_alike_in_content(engine):
    shown = 0
    for user in engine.user_ids[:30]:
        for item in engine.recommend_for_user(int(user), 20):
            for reason in item["reasons"]:
                if reason.startswith("similar to "):
                    title = reason.removeprefix("similar to ").rsplit(", which you rated", 1)[0]
                    source = engine.catalogue.titles_shown.index(title)
                    cosine = float(engine.content_features[source] @ engine.content_features[
                        engine.anime_index(item["anime_id"])])
                    assert cosine >= MIN_REASON_SIMILARITY, (title, item["name"], cosine)
                    shown += 1
    assert shown > 0


def test_never_rated_titles_show_their_myanimelist_score(engine):
    shown = engine.recommend_from_favourites([DEMON_SLAYER, JUJUTSU_KAISEN_TV], 100)
    never_rated = [item for item in shown if not item["rated"]]
    assert never_rated and all(item["members"] > 0 for item in never_rated)
    assert any(item["score"] is not None for item in never_rated)
    assert all(any(reason.startswith("not in our training data") for reason in item["reasons"])
               for item in never_rated)


@pytest.fixture(scope="module")
def app(trained_root):
    from application import create_app
    return create_app({"TESTING": True, "ARTIFACTS_DIR": str(paths_config.model_dir(trained_root))})


def test_the_pages_remember_the_adult_choice(app):
    client = app.test_client()
    shown = 'data-anime-id="3479"'
    assert shown not in client.get("/search?q=taimanin+asagi").get_data(as_text=True)
    ticked = client.get("/search?q=taimanin+asagi&include_adult=0&include_adult=1")  # the hidden 0, the box's 1
    assert shown in ticked.get_data(as_text=True) and "include_adult=1" in ticked.headers["Set-Cookie"]
    assert 'name="include_adult" value="1" checked' in ticked.get_data(as_text=True)
    assert shown in client.get("/search?q=taimanin+asagi").get_data(as_text=True)  # remembered
    client.get("/search?q=bebop&include_adult=0")  # unticked: the hidden 0 alone
    assert shown not in client.get("/search?q=taimanin+asagi").get_data(as_text=True)


def test_the_api_takes_the_adult_opt_in(app, engine):
    client = app.test_client()
    adult = _adult_ids(engine)
    assert TAIMANIN_ASAGI not in _ids(client.get("/api/anime/search?q=taimanin+asagi").get_json()["results"])
    found = client.get("/api/anime/search?q=taimanin+asagi&include_adult=true").get_json()["results"]
    assert _ids(found)[0] == TAIMANIN_ASAGI
    similar = client.get(f"/api/anime/{TAIMANIN_ASAGI}/similar?n=20&include_adult=1").get_json()["similar"]
    assert set(_ids(similar)) & adult
    assert not set(_ids(client.get(f"/api/anime/{TAIMANIN_ASAGI}/similar?n=20").get_json()["similar"])) & adult
    body = {"liked": [TAIMANIN_ASAGI], "n": 20}
    plain = client.post("/api/recommendations", json=body).get_json()["recommendations"]
    opted = client.post("/api/recommendations", json={**body, "include_adult": True}).get_json()["recommendations"]
    assert not set(_ids(plain)) & adult and set(_ids(opted)) & adult
    refused = client.get("/api/anime/search?q=bebop&include_adult=maybe")
    assert refused.status_code == 400
    assert "include_adult must be true or false" in refused.get_json()["error"]["message"]
    assert client.post("/api/recommendations", json={**body, "include_adult": "yes"}).status_code == 400
