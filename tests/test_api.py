"""The JSON API, health probes and HTML pages through Flask's test client, on the tiny artifact set."""
from __future__ import annotations

import html
import json
import re

import pytest

from tests.serving_fixtures import GROUP_B_IDS, TEST_USER, TEST_USER_RATINGS, TEST_USER_UNSEEN_A

ITEM_FIELDS = {"anime_id", "name", "english_name", "genres", "type", "score", "synopsis", "reasons",
               "episodes", "year", "premiered", "members"}


def assert_error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    message = body["error"]["message"]
    assert isinstance(message, str) and len(message) > 10 and "Traceback" not in message
    return message


def assert_items(items: list[dict]) -> None:
    for item in items:
        assert ITEM_FIELDS <= item.keys()
        assert isinstance(item["anime_id"], int) and isinstance(item["genres"], list)
        assert item["reasons"] and all(isinstance(reason, str) for reason in item["reasons"])


# ---------------------------------------------------------------------- health
def test_healthz_and_readyz_when_ready(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"


@pytest.mark.parametrize("fixture, reason", [("broken_app", "do not match"), ("missing_app", "training_pipeline")])
def test_unloadable_artifacts_keep_the_app_up_but_not_ready(request, fixture: str, reason: str) -> None:
    client = request.getfixturevalue(fixture).test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and reason in ready.get_json()["reason"]
    for method, url, body in [("get", f"/api/users/{TEST_USER}/recommendations", None),
                              ("get", "/api/anime/1/similar", None), ("get", "/api/anime/search?q=bebop", None),
                              ("post", "/api/recommendations", {"liked": [1]})]:
        assert reason in assert_error(getattr(client, method)(url, json=body), 503)
    assert client.get("/api/openapi.json").status_code == 200
    page = client.post("/", data={"userID": str(TEST_USER)})
    assert page.status_code == 503 and b"Recommendations are unavailable" in page.data and b"Traceback" not in page.data
    assert client.get("/favourites").status_code == 200


# ---------------------------------------------------------------------- user recommendations
def test_user_recommendations(client) -> None:
    response = client.get(f"/api/users/{TEST_USER}/recommendations?n=2&user_weight=0.5&content_weight=0.5")
    assert response.status_code == 200
    body = response.get_json()
    assert body["user_id"] == TEST_USER
    assert {item["anime_id"] for item in body["recommendations"]} == TEST_USER_UNSEEN_A
    assert_items(body["recommendations"])


def test_user_recommendations_default_n_and_never_known_anime(client) -> None:
    body = client.get(f"/api/users/{TEST_USER}/recommendations?n=100").get_json()
    assert len(body["recommendations"]) == 12 - len(TEST_USER_RATINGS)
    assert not {item["anime_id"] for item in body["recommendations"]} & set(TEST_USER_RATINGS)
    assert len(client.get(f"/api/users/{TEST_USER}/recommendations").get_json()["recommendations"]) == 6


@pytest.mark.parametrize("query, check", [
    ("genre=Romance", lambda item: "Romance" in item["genres"]),
    ("genre=romance&genre=Drama", lambda item: {"Romance", "Drama"} <= set(item["genres"])),
    ("type=Movie", lambda item: item["type"] == "Movie"),
    ("type=Movie&type=TV", lambda item: item["type"] in {"Movie", "TV"}),
    ("min_score=8.5", lambda item: item["score"] >= 8.5),
    ("year_from=2005&year_to=2010", lambda item: 2005 <= item["year"] <= 2010),
])
def test_user_recommendation_filters(client, query: str, check) -> None:
    body = client.get(f"/api/users/{TEST_USER}/recommendations?n=3&{query}").get_json()
    assert body["recommendations"] and all(check(item) for item in body["recommendations"])


def test_an_empty_year_range_is_an_empty_answer_not_an_error(client) -> None:
    response = client.get(f"/api/users/{TEST_USER}/recommendations?year_from=2010&year_to=2000")
    assert response.status_code == 200 and response.get_json()["recommendations"] == []


BAD_USER_REQUESTS = [
    ("/api/users/abc/recommendations", 400, "user id"),
    ("/api/users/-5/recommendations", 400, "user id"),
    ("/api/users/1.5/recommendations", 400, "user id"),
    ("/api/users/%EF%BC%91/recommendations", 400, "user id"),  # a full-width digit one
    ("/api/users/99999999999999999999999/recommendations", 400, "user id"),
    ("/api/users/424242/recommendations", 404, "not in the model"),
    (f"/api/users/{TEST_USER}/recommendations?n=0", 400, "n must"),
    (f"/api/users/{TEST_USER}/recommendations?n=101", 400, "n must"),
    (f"/api/users/{TEST_USER}/recommendations?n=ten", 400, "n must"),
    (f"/api/users/{TEST_USER}/recommendations?n=", 400, "n must"),
    (f"/api/users/{TEST_USER}/recommendations?user_weight=-0.1", 400, "user_weight"),
    (f"/api/users/{TEST_USER}/recommendations?user_weight=nan", 400, "user_weight"),
    (f"/api/users/{TEST_USER}/recommendations?content_weight=inf", 400, "content_weight"),
    (f"/api/users/{TEST_USER}/recommendations?content_weight=1e999", 400, "content_weight"),
    (f"/api/users/{TEST_USER}/recommendations?user_weight=1_0", 400, "user_weight"),
    (f"/api/users/{TEST_USER}/recommendations?user_weight=2", 400, "user_weight"),
    (f"/api/users/{TEST_USER}/recommendations?user_weight=0&content_weight=0", 400, "both be 0"),
    (f"/api/users/{TEST_USER}/recommendations?genre=Horror", 400, "unknown genre"),
    (f"/api/users/{TEST_USER}/recommendations?genre=", 400, "genre"),
    (f"/api/users/{TEST_USER}/recommendations?type=Manga", 400, "unknown type"),
    (f"/api/users/{TEST_USER}/recommendations?min_score=11", 400, "min_score"),
    (f"/api/users/{TEST_USER}/recommendations?year_from=abc", 400, "year_from"),
]


@pytest.mark.parametrize("url, status, fragment", BAD_USER_REQUESTS)
def test_bad_user_requests(client, url: str, status: int, fragment: str) -> None:
    assert fragment in assert_error(client.get(url), status)


# ---------------------------------------------------------------------- similar anime
def test_similar_anime(client) -> None:
    body = client.get("/api/anime/1/similar?n=3").get_json()
    assert body["anime"]["anime_id"] == 1 and body["anime"]["name"] == "Cowboy Bebop"
    assert len(body["similar"]) == 3 and 1 not in [item["anime_id"] for item in body["similar"]]
    assert all(-1 <= item["similarity"] <= 1 for item in body["similar"])
    assert_items(body["similar"])


def test_similar_anime_with_a_filter(client) -> None:
    body = client.get("/api/anime/1/similar?n=5&type=Movie").get_json()
    assert [item["anime_id"] for item in body["similar"]] == [5, 104]


@pytest.mark.parametrize("url, status", [
    ("/api/anime/abc/similar", 400), ("/api/anime/-1/similar", 400), ("/api/anime/999/similar", 404),
    ("/api/anime/1/similar?n=0", 400), ("/api/anime/1/similar?n=1000", 400), ("/api/anime/1/similar?genre=Nope", 400),
])
def test_bad_similar_requests(client, url: str, status: int) -> None:
    assert_error(client.get(url), status)


# ---------------------------------------------------------------------- search
def test_search(client) -> None:
    body = client.get("/api/anime/search?q=cowboy&limit=5").get_json()
    assert [item["anime_id"] for item in body["results"]] == [1, 5]
    assert client.get("/api/anime/search?q=nothing-like-this").get_json()["results"] == []
    assert client.get("/api/anime/search?q=%20%20").get_json()["results"] == []


@pytest.mark.parametrize("url", ["/api/anime/search", "/api/anime/search?q=",
                                 "/api/anime/search?q=" + "x" * 101, "/api/anime/search?q=a&limit=0",
                                 "/api/anime/search?q=a&limit=101", "/api/anime/search?q=a&limit=x"])
def test_bad_search_requests(client, url: str) -> None:
    assert_error(client.get(url), 400)


# ---------------------------------------------------------------------- favourites
def test_favourites_recommendations(client) -> None:
    response = client.post("/api/recommendations", json={"liked": [101, 102], "n": 4})
    assert response.status_code == 200
    items = response.get_json()["recommendations"]
    assert {item["anime_id"] for item in items} == set(GROUP_B_IDS) - {101, 102}
    assert_items(items)


def test_favourites_skip_unknown_ids_and_list_them(client) -> None:
    response = client.post("/api/recommendations", json={"liked": [101, 999, 102, 998], "n": 4})
    assert response.status_code == 200
    body = response.get_json()
    assert body["ignored"] == [999, 998]
    assert {item["anime_id"] for item in body["recommendations"]} == set(GROUP_B_IDS) - {101, 102}
    assert client.post("/api/recommendations", json={"liked": [101]}).get_json()["ignored"] == []


def test_favourites_with_options_and_without_content_type(client) -> None:
    body = {"liked": [1], "n": 2, "user_weight": 0.2, "content_weight": 0.8, "genre": ["Action"], "type": "TV",
            "min_score": 7, "year_from": 1990, "year_to": 2010}
    response = client.post("/api/recommendations", data=json.dumps(body))  # no Content-Type header
    assert response.status_code == 200
    items = response.get_json()["recommendations"]
    assert len(items) == 2 and all("Action" in item["genres"] and item["type"] == "TV" for item in items)


BAD_FAVOURITES = [
    ('{"liked": [1', 400, "not valid JSON"),
    ("", 400, "not valid JSON"),
    ("[" * 30000 + "]" * 30000, 400, "not valid JSON"),  # deeper than json can recurse
    ("[1, 2]", 400, "JSON object"),
    ('{"liked": []}', 400, "liked must"),
    ('{"liked": "1"}', 400, "liked must"),
    ('{"liked": ["1"]}', 400, "liked must"),
    ('{"liked": [true]}', 400, "liked must"),
    ('{"liked": [1.5]}', 400, "liked must"),
    ('{"liked": [-1]}', 400, "liked must"),
    ('{"liked": [NaN]}', 400, "liked must"),
    ('{"liked": null}', 400, "liked must"),
    ("{}", 400, "liked must"),
    ('{"liked": [' + ", ".join(["1"] * 51) + "]}", 400, "liked must"),
    ('{"liked": [1], "n": 0}', 400, "n must"),
    ('{"liked": [1], "n": "10"}', 400, "n must"),
    ('{"liked": [1], "n": true}', 400, "n must"),
    ('{"liked": [1], "user_weight": -1}', 400, "user_weight"),
    ('{"liked": [1], "user_weight": NaN}', 400, "user_weight"),
    ('{"liked": [1], "content_weight": Infinity}', 400, "content_weight"),
    ('{"liked": [1], "user_weight": 0, "content_weight": 0}', 400, "both be 0"),
    ('{"liked": [1], "genre": "Horror"}', 400, "unknown genre"),
    ('{"liked": [1], "genre": [1]}', 400, "genre must"),
    ('{"liked": [1], "type": "Manga"}', 400, "unknown type"),
    ('{"liked": [1], "likes": [2]}', 400, "unknown field"),
    ('{"liked": [998, 999]}', 404, "999"),
]


@pytest.mark.parametrize("body, status, fragment", BAD_FAVOURITES)
def test_bad_favourites_requests(client, body: str, status: int, fragment: str) -> None:
    response = client.post("/api/recommendations", data=body, content_type="application/json")
    assert fragment in assert_error(response, status)


def test_too_large_body_is_a_json_413(client) -> None:
    response = client.post("/api/recommendations", data=b'{"liked": [' + b"1, " * 40000 + b"1]}",
                           content_type="application/json")
    assert_error(response, 413)


# ---------------------------------------------------------------------- routing errors, headers, OpenAPI
@pytest.mark.parametrize("method, url, status", [
    ("get", "/api/nothing-here", 404), ("get", "/api", 404), ("delete", "/api/anime/search", 405),
    ("get", "/api/recommendations", 405), ("put", "/api/users/1/recommendations", 405),
])
def test_api_routing_errors_are_json(client, method: str, url: str, status: int) -> None:
    response = getattr(client, method)(url)
    assert_error(response, status)
    if status == 405:
        assert response.headers["Allow"]


def test_page_routing_errors_are_friendly_html(client) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert b"couldn't find that page" in response.data


def test_unexpected_errors_are_a_json_500_without_traceback(app, monkeypatch) -> None:
    from src.engine.recommender import Recommender

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(Recommender, "similar_anime", explode)
    response = app.test_client().get("/api/anime/1/similar")
    message = assert_error(response, 500)
    assert "secret" not in message


def test_security_headers(client) -> None:
    for url in ("/", "/api/anime/search?q=bebop"):
        headers = client.get(url).headers
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"]


def test_openapi_document_describes_every_endpoint(client) -> None:
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert {"/api/users/{user_id}/recommendations", "/api/anime/{anime_id}/similar", "/api/anime/search",
            "/api/recommendations", "/healthz", "/readyz"} <= set(document["paths"])
    parameters = {p["name"]: p for p in document["paths"]["/api/users/{user_id}/recommendations"]["get"]["parameters"]}
    assert parameters["n"]["schema"]["minimum"] == 1 and parameters["n"]["schema"]["maximum"] == 100
    assert "Romance" in parameters["genre"]["schema"]["items"]["enum"]
    body = document["components"]["schemas"]["FavouritesRequest"]
    assert body["properties"]["liked"]["maxItems"] == 50 and body["required"] == ["liked"]


def test_openapi_document_is_valid_openapi_3_0(client) -> None:
    """Checked against the OpenAPI 3.0 meta-schema that schemathesis (a dev dependency) ships."""
    jsonschema = pytest.importorskip("jsonschema")
    definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
    jsonschema.Draft4Validator(definitions.OPENAPI_30).validate(client.get("/api/openapi.json").get_json())


# ---------------------------------------------------------------------- HTML pages
def card_ids(page: str) -> list[int]:
    """The anime ids of a page's result cards, in order (not the picked chips of the favourites form)."""
    return [int(found) for found in re.findall(r'<article class="card" data-anime-id="(\d+)"', page)]


def test_index_form_post_redirects_to_the_users_own_address(client) -> None:
    response = client.post("/", data={"userID": str(TEST_USER), "user_weight": "0.6", "content_weight": "0.4",
                                      "genre": "", "type": "", "min_score": "", "n": "10"})
    assert response.status_code == 303  # POST, then GET the result's address: reload and share work
    assert response.headers["Location"] == f"/users/{TEST_USER}?user_weight=0.6&content_weight=0.4#results"
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert page.data.count(b'class="card"') == 6
    assert b"Cowboy Bebop: The Movie" in page.data and b"liked by" in page.data


def test_the_address_keeps_only_what_was_chosen(client) -> None:
    """Blank filters, the default n and the sliders where they start (the model's mix) stay out of the address;
    filters are spelled as the catalogue spells them; GET /?userID= (old links) redirects too."""
    sliders = client.application.extensions["anime_recommender"].recommender.default_weights()
    form = {"userID": f" {TEST_USER} ", "user_weight": str(round(sliders[0], 2)),
            "content_weight": str(round(sliders[1], 2)), "n": "10", "genre": "action", "year_from": "1990"}
    response = client.post("/", data=form)
    assert response.headers["Location"] == f"/users/{TEST_USER}?genre=Action&year_from=1990#results"
    old_link = client.get(f"/?userID={TEST_USER}&n=20")
    assert old_link.status_code == 302 and old_link.headers["Location"] == f"/users/{TEST_USER}?n=20#results"


def test_the_user_page_shows_what_the_api_recommends(client) -> None:
    api = client.get(f"/api/users/{TEST_USER}/recommendations?genre=Action&n=3").get_json()["recommendations"]
    page = client.get(f"/users/{TEST_USER}?genre=Action&n=3").get_data(as_text=True)
    assert card_ids(page) == [item["anime_id"] for item in api]
    assert f"<h1>Recommendations for user {TEST_USER}</h1>" in page and 'id="results"' in page
    assert card_ids(client.get(f"/users/{TEST_USER}").get_data(as_text=True))[0] == \
        client.get(f"/api/users/{TEST_USER}/recommendations").get_json()["recommendations"][0]["anime_id"]


def test_show_more_raises_n_up_to_the_limit(client) -> None:
    page = client.get(f"/users/{TEST_USER}?type=TV&type=Movie&n=2").get_data(as_text=True)
    assert len(card_ids(page)) == 2
    more = re.search(r'<p class="more"><a class="button-link" href="([^"]+)">Show more</a>', page)
    assert more and html.unescape(more.group(1)) == f"/users/{TEST_USER}?type=TV&type=Movie&n=12#result-3"
    longer = client.get(html.unescape(more.group(1))).get_data(as_text=True)
    assert card_ids(longer)[:2] == card_ids(page) and 'id="result-3"' in longer
    assert "Show more" not in longer  # all 6 unseen anime are shown: nothing more to show
    assert "Show more" not in client.get(f"/users/{TEST_USER}?n=100").get_data(as_text=True)
    similar = client.get("/anime/1?n=3").get_data(as_text=True)
    assert "/anime/1?n=13#result-4" in similar


def test_a_random_user_is_one_of_the_model(client) -> None:
    engine = client.application.extensions["anime_recommender"].recommender
    for _ in range(5):
        response = client.get("/users/random")
        assert response.status_code == 302 and response.headers["Cache-Control"] == "no-store"
        user = int(re.fullmatch(r"/users/(\d+)#results", response.headers["Location"]).group(1))
        assert user in engine.user_ids
    assert 'href="/users/random"' in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("form, status, text", [
    ({"userID": "424242"}, 404, "We don't know that user ID"),
    ({"userID": "abc"}, 400, "User ID must be a whole number"),
    ({"userID": str(TEST_USER), "user_weight": "0", "content_weight": "0"}, 400,
     "Similar users weight and Similar anime weight cannot both be 0"),
    ({"userID": str(TEST_USER), "n": "0"}, 400, "How many must be a whole number from 1 to 100"),
    ({"userID": str(TEST_USER), "min_score": "11"}, 400, "Minimum score must be a number from 0 to 10"),
    ({"userID": str(TEST_USER), "genre": "Horror"}, 400, "Genre “Horror” is not one we know"),
    ({"userID": str(TEST_USER), "genre": "Mecha", "type": "Movie"}, 200, "Nothing matches these filters"),
    ({"userID": str(TEST_USER), "year_from": "2010", "year_to": "2000"}, 200, "swap the two years"),
    ({}, 400, "Enter a user ID"),
])
def test_index_shows_inline_messages_not_error_pages(client, form: dict, status: int, text: str) -> None:
    response = client.post("/", data=form, follow_redirects=True)
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == status and text in page
    assert 'id="user-form"' in page  # the form is still there to fix the input
    for api_name in ("user_weight and", "content_weight cannot", "min_score must", "n must", "genre '"):
        assert api_name not in page, "the page names fields as it labels them"


def test_an_unknown_user_is_offered_a_random_user_and_the_favourites(client) -> None:
    page = client.get("/users/424242").get_data(as_text=True)
    message = re.search(r'<p class="message error".*?</p>', page, re.DOTALL).group(0)
    assert 'href="/users/random"' in message and 'href="/favourites"' in message


def test_the_options_panel_stays_as_the_person_left_it(client) -> None:
    opened = '<details class="options" open>'
    assert opened not in client.get(f"/users/{TEST_USER}?genre=Action").get_data(as_text=True)  # not by itself
    assert "1 filter set" in client.get(f"/users/{TEST_USER}?genre=Action").get_data(as_text=True)
    client.set_cookie("options", "open")
    assert opened in client.get(f"/users/{TEST_USER}").get_data(as_text=True)
    client.set_cookie("options", "closed")
    assert opened not in client.get(f"/users/{TEST_USER}").get_data(as_text=True)
    assert opened in client.get(f"/users/{TEST_USER}?n=0").get_data(as_text=True)  # the field to fix is shown


def test_anime_page_shows_similar_anime(client) -> None:
    response = client.get("/anime/1")
    assert response.status_code == 200 and b"Similar anime" in response.data
    assert response.data.count(b'class="card"') == 10


@pytest.mark.parametrize("url, status", [("/anime/999", 404), ("/anime/abc", 400), ("/anime/1?n=0", 400)])
def test_anime_page_inline_errors(client, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status and b'class="message error"' in response.data


@pytest.mark.parametrize("url, heading", [("/anime/999", "We couldn't find that anime"),
                                          ("/no-such-page", "We couldn't find that page")])
def test_not_found_pages_have_a_heading_and_a_way_forward(client, url: str, heading: str) -> None:
    response = client.get(url)
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert f"<h1>{heading}</h1>" in page
    assert re.search(r'<form class="search-form" action="/search#results"[^>]*>', page)  # the search box
    assert 'href="/">Home' in page
    assert "/api/" not in page and "openapi" not in page


def test_html_pages_never_point_to_the_api(client) -> None:
    for url in ("/", f"/users/{TEST_USER}", "/users/424242", "/anime/1", "/anime/999", "/search?q=o",
                "/search", "/favourites", "/favourites?liked=101", "/nowhere"):
        assert "/api" not in client.get(url).get_data(as_text=True), url


def test_search_page(client) -> None:
    assert client.get("/search?q=bebop").data.count(b'class="card"') == 2
    assert "2 titles match “bebop”" in client.get("/search?q=bebop").get_data(as_text=True)
    assert b"No title contains" in client.get("/search?q=zzzz").data
    empty = client.get("/search")
    assert empty.status_code == 200 and "Type part of a title" in empty.get_data(as_text=True)
    assert "Type part of a title" in client.get("/search?q=%20").get_data(as_text=True)


def test_search_page_pages_with_the_total(client, monkeypatch) -> None:
    from src.web import pages
    monkeypatch.setattr(pages, "SEARCH_PAGE_SIZE", 3)  # the tiny catalogue has 12 anime, not 20 pages' worth
    everything = [item["anime_id"] for item in client.get("/api/anime/search?q=o&limit=100").get_json()["results"]]
    first = client.get("/search?q=o").get_data(as_text=True)
    second = client.get("/search?q=o&page=2").get_data(as_text=True)
    assert card_ids(first) == everything[:3] and card_ids(second) == everything[3:6]
    assert f"{len(everything)} titles match “o”" in first and f"Showing 4–6 of {len(everything)}" in second
    assert 'rel="next" href="/search?q=o&amp;page=2#results"' in first
    assert 'rel="prev" href="/search?q=o#results"' in second
    last = -(-len(everything) // 3)
    past = client.get("/search?q=o&page=99").get_data(as_text=True)
    assert "past the end" in past and f"/search?q=o&amp;page={last}#results" in past
    bad = client.get("/search?q=o&page=0")
    assert bad.status_code == 400 and "Page must be a whole number" in bad.get_data(as_text=True)


def test_favourites_page(client) -> None:
    assert client.get("/favourites").status_code == 200
    response = client.post("/favourites", data={"liked": ["101", "102"], "n": "4"})
    assert response.status_code == 303 and response.headers["Location"] == "/favourites?liked=101,102&n=4#results"
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and page.data.count(b'class="card"') == 4
    assert b"which you liked" in page.data
    assert b'name="liked" value="101"' in page.data  # the picks stay picked
    assert b"Pick at least one anime" in client.post("/favourites", data={}).data
    assert client.post("/favourites", data={"liked": "999"}, follow_redirects=True).status_code == 404
    repeated = client.get("/favourites?liked=101&liked=102").get_data(as_text=True)  # a form sent by GET
    assert card_ids(repeated) == card_ids(client.get("/favourites?liked=101,102").get_data(as_text=True))


def test_the_favourites_page_shows_what_the_api_recommends(client) -> None:
    api = client.post("/api/recommendations", json={"liked": [1, 20]}).get_json()["recommendations"]
    page = client.get("/favourites?liked=1,20").get_data(as_text=True)
    assert card_ids(page) == [item["anime_id"] for item in api]


def test_picking_a_favourite_twice_is_said_and_counted_once(client) -> None:
    response = client.get("/favourites?liked=101,102,101")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "You picked Clannad more than once: it counts once." in page
    assert card_ids(page) == card_ids(client.get("/favourites?liked=101,102").get_data(as_text=True))
    assert page.count('name="liked" value="101"') == 1


def test_unknown_favourites_are_skipped_and_named(client) -> None:
    page = client.get("/favourites?liked=101,999").get_data(as_text=True)
    assert "We skipped 999: no anime we know has that ID." in page and card_ids(page)
    none_known = client.get("/favourites?liked=998,999")
    assert none_known.status_code == 404
    assert "We don't know any of the anime you picked (998, 999)" in html.unescape(none_known.get_data(as_text=True))


def test_posters_and_placeholders(client, monkeypatch) -> None:
    """A poster from MyAnimeList's CDN is loaded lazily; anything else, or none, is the placeholder: initials on
    a colour of the first genre. An anime without community ratings says so. Reasons stay on every card."""
    from src.engine.catalogue import Catalogue
    original = Catalogue.item
    posters = {1: "https://cdn.myanimelist.net/images/anime/4/19644.jpg", 6: "https://example.com/trigun.jpg"}

    def item(self, index, reasons=None):
        found = original(self, index, reasons)
        found["image_url"] = posters.get(found["anime_id"])
        found["rated"] = found["anime_id"] != 30
        return found
    monkeypatch.setattr(Catalogue, "item", item)
    page = client.get("/anime/5?n=11").get_data(as_text=True)  # every other anime
    cards = {int(anime_id): body for anime_id, body in
             re.findall(r'<article class="card" data-anime-id="(\d+)".*?>(.*?)</article>', page, re.DOTALL)}
    assert {1, 6, 30} <= set(cards)
    assert '<img src="https://cdn.myanimelist.net/images/anime/4/19644.jpg" alt="" loading="lazy"' in cards[1]
    assert "<img" not in cards[6] and "example.com" not in page  # not the one image host the policy allows
    assert '<span class="poster-initials" aria-hidden="true">CB</span>' in cards[1]  # behind the image, for a failure
    colour = re.compile(r'<div class="poster (ph-\d+)')
    assert colour.search(cards[1]).group(1) == colour.search(cards[6]).group(1)  # both Action first
    # a never-rated title shows what the metadata knows (its score, its members) and says it is not in the data
    assert "not in our training data" in cards[30] and " members" in cards[30] and "★\xa08.78" in cards[1]
    assert "not in our training data" not in cards[1] and " members" not in cards[1]
    assert all('class="card-reason"' in body for body in cards.values())
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://cdn.myanimelist.net;" in policy


def test_pages_escape_user_input(client) -> None:
    response = client.get("/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert b"<script>alert(1)" not in response.data and b"&lt;script&gt;" in response.data


def test_static_files_are_served(client) -> None:
    for name in ("app.js", "style.css", "favicon.svg"):
        with client.get(f"/static/{name}") as response:  # closed: a static file is streamed from an open file
            assert response.status_code == 200


def test_the_form_suggests_user_ids_that_exist(client) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'placeholder="e.g. 1001 or 1002"' in page  # the first ids of the loaded model, not made-up ones


@pytest.mark.integration
def test_pages_show_what_the_api_answers_on_a_really_trained_model(trained_root) -> None:
    """On the model trained from the embedded sample: user 13's page and the favourites page for [1, 20] show the
    API's first recommendation first; the API's search pages with offset and says the total."""
    from application import create_app
    from config import paths_config
    client = create_app({"TESTING": True, "ARTIFACTS_DIR": str(paths_config.model_dir(trained_root))}).test_client()
    api_user = client.get("/api/users/13/recommendations").get_json()["recommendations"]
    assert card_ids(client.get("/users/13").get_data(as_text=True))[0] == api_user[0]["anime_id"]
    api_liked = client.post("/api/recommendations", json={"liked": [1, 20]}).get_json()["recommendations"]
    assert card_ids(client.get("/favourites?liked=1,20").get_data(as_text=True))[0] == api_liked[0]["anime_id"]
    first = client.get("/api/anime/search?q=naruto&limit=10").get_json()
    second = client.get("/api/anime/search?q=naruto&offset=10").get_json()
    assert second["total"] == first["total"] > 10 and second["offset"] == 10
    everything = client.get(f"/api/anime/search?q=naruto&limit={min(100, first['total'])}").get_json()["results"]
    assert [item["anime_id"] for item in second["results"]] == [item["anime_id"] for item in everything[10:20]]
    page = client.get("/search?q=naruto&page=2").get_data(as_text=True)
    assert f"{first['total']} titles match “naruto”" in page
    assert card_ids(page) == [item["anime_id"] for item in everything[20:40]]


def test_search_pages_with_offset_and_says_the_total(client) -> None:
    first = client.get("/api/anime/search?q=o&limit=3").get_json()
    second = client.get("/api/anime/search?q=o&limit=3&offset=3").get_json()
    everything = client.get("/api/anime/search?q=o&limit=100").get_json()
    assert first["total"] == second["total"] == len(everything["results"]) > 6
    ids = [item["anime_id"] for item in everything["results"]]
    assert [item["anime_id"] for item in first["results"]] == ids[:3]
    assert [item["anime_id"] for item in second["results"]] == ids[3:6] and second["offset"] == 3
    assert client.get("/api/anime/search?q=o&offset=-1").status_code == 400
