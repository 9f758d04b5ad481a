"""Bring your own list (issue 29): a MyAnimeList export uploaded to ``POST /api/lists/myanimelist`` or the ``/import``
page gets recommendations from the whole list, through the real app and engine.

The parser has its own tests (tests/test_list_import.py); here is what the upload leads to. The sample export
(tests/fixtures/myanimelist/, an embedded-sample user's 243 rows with statuses) is read on a model trained for real
(conftest's ``trained_root``: the whole 2020 catalogue), so it is what a fan meets; the engine's rules are also
checked on the tiny hand-made model, where the right answer is known (tests/serving_fixtures.py: group A, action and
sci-fi, ids 1, 5, 6, 20, 21, 30; group B, romance and slice of life, ids 101 to 106).
"""
from __future__ import annotations

import dataclasses
import gzip
import html
import io
import logging
import os
import re
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from config import paths_config
from src.engine.catalogue import Filters
from src.engine.personal_lists import ListEntry
from src.engine.recommender import Recommender
from src.engine.validation import UnknownAnimeError
from src.logger import get_logger
from src.web.list_import import upload_limit
from tests.fixtures.myanimelist import make_samples
from tests.serving_fixtures import GROUP_A_IDS, GROUP_B_IDS

FIXTURES = Path(__file__).parent / "fixtures" / "myanimelist"
SAMPLE_XML = (FIXTURES / "animelist_sample.xml").read_bytes()
SAMPLE_GZ = (FIXTURES / "animelist_sample.xml.gz").read_bytes()
API = "/api/lists/myanimelist"
# MyAnimeList's statuses as the export writes them, and as the API counts them
STATUSES = {"Watching": "watching", "Completed": "completed", "On-Hold": "on_hold", "Dropped": "dropped",
            "Plan to Watch": "plan_to_watch"}
WRITTEN = {status: written for written, status in STATUSES.items()}
MYINFO_TOTALS = {"watching": "user_total_watching", "completed": "user_total_completed",
                 "on_hold": "user_total_onhold", "dropped": "user_total_dropped",
                 "plan_to_watch": "user_total_plantowatch"}
NOT_IN_CATALOGUE = 987_654_321  # a MyAnimeList id no catalogue here holds
BECAUSE_GAVE = re.compile(r"because you gave (.+) a (\d+)")
BECAUSE_WATCHED = re.compile(r"because you watched (.+)")
integration = pytest.mark.integration  # the tests on the really trained model


@dataclasses.dataclass(frozen=True)
class Row:
    """One <anime> of an export as the file says it, read here with ElementTree (not by the code under test)."""

    anime_id: int
    title: str
    score: int
    status: str


def read_rows(xml: bytes) -> list[Row]:
    return [Row(int(anime.findtext("series_animedb_id")), anime.findtext("series_title"),
                int(anime.findtext("my_score")), STATUSES[anime.findtext("my_status")])
            for anime in ElementTree.fromstring(xml).iter("anime")]


SAMPLE_ROWS = read_rows(SAMPLE_XML)


def entry(anime_id: int, title: str, score: int = 0, status: str = "Completed") -> make_samples.Entry:
    """An export entry with every field MyAnimeList writes (``status`` as MyAnimeList spells it)."""
    return make_samples.Entry(anime_id, title, "TV", 12, status, score, 12 if status != "Plan to Watch" else 0,
                              "0000-00-00", "0000-00-00")


def export(entries: list[make_samples.Entry]) -> bytes:
    """A whole export in MyAnimeList's format, as make_samples.py writes the fixtures."""
    return make_samples.animelist_xml(entries).encode("utf-8")


def with_entries(xml: bytes, entries: list[make_samples.Entry]) -> bytes:
    """``xml`` (a real-format export) with ``entries`` added at its end."""
    text = xml.decode("utf-8")
    assert text.endswith(make_samples.FOOTER)
    return (text[:-len(make_samples.FOOTER)] + "".join(map(make_samples.anime_xml, entries))
            + make_samples.FOOTER).encode("utf-8")


def post_list(client, body: bytes, content_type: str | None = "application/gzip", query: str = ""):
    headers = {} if content_type is None else {"Content-Type": content_type}
    return client.post(API + query, data=body, headers=headers)


def ids(items: list[dict]) -> list[int]:
    return [item["anime_id"] for item in items]


def one_sentence(message: str) -> bool:
    """One sentence: nothing ends a sentence before its end."""
    return bool(message) and "\n" not in message and not re.search(r"[.!?]\s", message)


def chunked(client, url: str, body: bytes, content_type: str):
    """A body sent chunked, as gunicorn hands it over: no Content-Length, the stream ends where the body ends."""
    return client.post(url, input_stream=io.BytesIO(body), content_type=content_type,
                       headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})


# ---------------------------------------------------------------------------------------------------------
# Pages, read with a few regular expressions (the markup is the app's own, from templates/)
# ---------------------------------------------------------------------------------------------------------
def section(page: str, section_id: str) -> str:
    """The HTML of the <section> with ``section_id`` ("" when the page has none); sections do not nest here."""
    found = re.search(rf'<section[^>]*\bid="{section_id}".*?</section>', page, re.DOTALL)
    return found.group(0) if found else ""


def text_of(page: str, element_id: str) -> str:
    """The text of the element with ``element_id`` (one without a child of its own tag), white space collapsed."""
    found = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(2))).split()) if found else ""


def attribute(page: str, element_id: str, name: str) -> str | None:
    tag = re.search(rf'<\w+[^>]*\bid="{element_id}"[^>]*>', page)
    value = tag and re.search(rf'\b{name}="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else None


def cards(fragment: str) -> list[tuple[int, str]]:
    """(anime id, element id) of each card in ``fragment``."""
    return [(int(anime_id), element_id) for anime_id, element_id in
            re.findall(r'<article class="card" data-anime-id="(\d+)" id="([\w-]+)"', fragment)]


def error_message(page: str) -> str:
    found = re.search(r'<p class="message error"[^>]*>(.*?)</p>', page, re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split()) if found else ""


def upload(client, body: bytes | None, filename: str = "animelist_1623616958_-_3667065.xml.gz", **options: str):
    """The /import form posted as a browser posts it: the file as the ``list`` part (none when ``body`` is None),
    the options beside it. Encoded in memory: the test client would spool a large form to a file it never closes."""
    data = {**options} if body is None else {**options, "list": FileStorage(io.BytesIO(body), filename)}
    boundary, form = encode_multipart(data)
    return client.post("/import", data=form, content_type=f"multipart/form-data; boundary={boundary}")


# ---------------------------------------------------------------------------------------------------------
# Fixtures: the really trained model in the app, and the sample's answer, once per module
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_app(trained_root: Path):
    from application import create_app
    return create_app({"TESTING": True, "ARTIFACTS_DIR": str(paths_config.model_dir(trained_root))})


@pytest.fixture(scope="module")
def real_engine(real_app) -> Recommender:
    """The app's own engine (the one that answers its requests)."""
    from src.web.state import EXTENSION_KEY
    engine = real_app.extensions[EXTENSION_KEY].recommender
    assert engine is not None, real_app.extensions[EXTENSION_KEY].reason
    return engine


@pytest.fixture
def real_client(real_app):
    return real_app.test_client()


@pytest.fixture(scope="module")
def sample_answer(real_app) -> dict:
    """The API's answer to the gzipped sample export, with the defaults."""
    response = post_list(real_app.test_client(), SAMPLE_GZ)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture(scope="module")
def sample_page(real_app) -> str:
    response = upload(real_app.test_client(), SAMPLE_GZ)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    return response.get_data(as_text=True)


def expected_summary(xml: bytes) -> dict:
    """What the API should report having read from an export whose rows are all usable: its <myinfo> totals, and
    the rows with a score."""
    root = ElementTree.fromstring(xml)
    rows = read_rows(xml)
    by_status = {status: int(root.findtext(f"myinfo/{total}")) for status, total in MYINFO_TOTALS.items()}
    assert sum(by_status.values()) == int(root.findtext("myinfo/user_total_anime")) == len(rows)
    return {"entries": len(rows), "known": len(rows), "rated": sum(1 for row in rows if row.score),
            "by_status": by_status, "skipped": {"without_id": 0, "repeats": 0}}


def shown_title(engine: Recommender, anime_id: int) -> str:
    """The title the app shows for an anime (what reasons name)."""
    return engine.catalogue.titles_shown[engine.anime_index(anime_id)]


# ---------------------------------------------------------------------------------------------------------
# The API on the sample export, on the really trained model
# ---------------------------------------------------------------------------------------------------------
@integration
def test_the_sample_export_is_read_whole(sample_answer, real_engine):
    assert sample_answer["imported"] == expected_summary(SAMPLE_XML)
    # the fixture as make_samples.py describes it
    assert sample_answer["imported"]["by_status"] == {"watching": 8, "completed": 199, "on_hold": 5, "dropped": 7,
                                                       "plan_to_watch": 24}
    assert sample_answer["imported"]["rated"] == 195 and sample_answer["ignored"] == []
    assert len(sample_answer["recommendations"]) == real_engine.config.default_n
    assert len(sample_answer["plan_to_watch"]) == real_engine.config.list_plan_to_watch == 5
    assert list(sample_answer) == ["recommendations", "plan_to_watch", "imported", "ignored"]


@integration
@pytest.mark.parametrize("body, content_type", [
    (SAMPLE_GZ, "application/x-gzip"), (SAMPLE_GZ, None), (SAMPLE_XML, "application/xml"),
    (SAMPLE_XML, "text/xml"), (SAMPLE_XML, "application/xml; charset=utf-8"), (SAMPLE_XML, None),
], ids=["gz x-gzip", "gz no type", "xml", "text/xml", "xml charset", "xml no type"])
def test_plain_xml_gzip_and_no_content_type_get_the_same_answer(real_client, sample_answer, body, content_type):
    response = post_list(real_client, body, content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == sample_answer


@integration
def test_a_chunked_upload_is_read_whole(real_client, sample_answer):
    response = chunked(real_client, API, SAMPLE_GZ, "application/gzip")
    assert response.status_code == 200 and response.get_json() == sample_answer


@integration
def test_nothing_on_the_list_is_recommended_back_whatever_its_status(real_client, real_engine):
    n = real_engine.config.max_n
    answer = post_list(real_client, SAMPLE_GZ, query=f"?n={n}").get_json()
    assert len(answer["recommendations"]) == n
    listed = {row.anime_id for row in SAMPLE_ROWS}
    assert not listed & set(ids(answer["recommendations"]))
    assert len(set(ids(answer["recommendations"]))) == n  # no title twice
    # Without their entries, titles of the list would be recommended: the exclusion is what keeps them out
    for status in ("completed", "plan_to_watch"):
        rest = [row for row in SAMPLE_ROWS if row.status != status]
        body = export([entry(row.anime_id, row.title, row.score, WRITTEN[row.status]) for row in rest])
        shown = set(ids(post_list(real_client, body, "application/xml", f"?n={n}").get_json()["recommendations"]))
        assert shown & {row.anime_id for row in SAMPLE_ROWS if row.status == status}, status


@integration
@pytest.mark.parametrize("status", STATUSES)
def test_a_title_added_to_the_list_in_any_status_leaves_the_recommendations(real_client, sample_answer, status):
    top = sample_answer["recommendations"][:2]
    body = with_entries(SAMPLE_XML, [entry(item["anime_id"], item["name"], 3 if status == "Dropped" else 0, status)
                                     for item in top])
    answer = post_list(real_client, body, "application/xml").get_json()
    assert answer["imported"]["by_status"][STATUSES[status]] == sample_answer["imported"]["by_status"][
        STATUSES[status]] + 2
    assert not set(ids(top)) & set(ids(answer["recommendations"]))
    assert len(answer["recommendations"]) == len(sample_answer["recommendations"])
    if status == "Plan to Watch":  # planned: ranked with the other plans, where they fit well
        assert set(ids(top)) <= set(ids(answer["plan_to_watch"]))
    else:
        assert not set(ids(top)) & set(ids(answer["plan_to_watch"]))


@integration
def test_a_list_of_nothing_but_plans_gets_recommendations_never_the_plans(real_client, real_engine):
    plans = [row for row in SAMPLE_ROWS if row.status == "plan_to_watch"]
    body = export([entry(row.anime_id, row.title, 0, "Plan to Watch") for row in plans])
    answer = post_list(real_client, body, "application/xml", "?n=50").get_json()
    assert answer["imported"]["by_status"]["plan_to_watch"] == answer["imported"]["entries"] == 24
    assert len(answer["recommendations"]) == 50
    assert not {row.anime_id for row in plans} & set(ids(answer["recommendations"]))
    assert set(ids(answer["plan_to_watch"])) <= {row.anime_id for row in plans}
    for item in answer["recommendations"]:  # nothing was watched or scored: no reason may say so
        assert not any(reason.startswith("because you") for reason in item["reasons"]), item["reasons"]


@integration
def test_the_plan_to_watch_section_ranks_the_lists_own_plans_only(sample_answer):
    planned = {row.anime_id for row in SAMPLE_ROWS if row.status == "plan_to_watch"}
    shown = ids(sample_answer["plan_to_watch"])
    assert len(shown) == len(set(shown)) == 5 and set(shown) <= planned
    assert not set(shown) & set(ids(sample_answer["recommendations"]))
    matches = [item["match"] for item in sample_answer["plan_to_watch"]]
    assert matches == sorted(matches, reverse=True) and matches[0] > 0  # best fit first, scored for the person
    assert all(item["reasons"] for item in sample_answer["plan_to_watch"])


@integration
def test_reasons_name_the_persons_own_titles_with_their_scores(real_client, real_engine):
    answer = post_list(real_client, SAMPLE_GZ, query=f"?n={real_engine.config.max_n}").get_json()
    by_title: dict[str, list[Row]] = {}
    for row in SAMPLE_ROWS:
        by_title.setdefault(shown_title(real_engine, row.anime_id), []).append(row)
    cited = []
    for item in answer["recommendations"] + answer["plan_to_watch"]:
        for reason in item["reasons"]:
            assert "which you rated" not in reason and "which you liked" not in reason, reason  # another voice
            if gave := BECAUSE_GAVE.fullmatch(reason):
                title, score = gave.group(1), int(gave.group(2))
                rows = by_title.get(title, [])
                assert any(row.score == score and row.status != "plan_to_watch" for row in rows), \
                    f"{reason!r}: no entry of the file has that title and score"
                cited.append((title, score))
            elif watched := BECAUSE_WATCHED.fullmatch(reason):
                assert any(row.score == 0 and row.status != "plan_to_watch"
                           for row in by_title.get(watched.group(1), [])), reason
    assert len(cited) >= 5, cited
    # the titles cited are the person's preferred ones: scored at or above their own preference percentile
    scores = [row.score for row in SAMPLE_ROWS if row.score and row.status != "plan_to_watch"]
    threshold = np.percentile(scores, real_engine.config.preference_percentile)
    assert all(score >= threshold for _, score in cited), (threshold, cited)


@integration
def test_n_and_filters_are_honoured(real_client, sample_answer):
    assert {item["type"] for item in sample_answer["recommendations"]} != {"TV"}  # the filter has work to do
    answer = post_list(real_client, SAMPLE_GZ, query="?n=5&type=TV&min_score=7.5").get_json()
    assert len(answer["recommendations"]) == 5
    for item in answer["recommendations"] + answer["plan_to_watch"]:
        assert item["type"] == "TV" and item["score"] >= 7.5, item
    assert answer["imported"] == sample_answer["imported"]
    three = post_list(real_client, SAMPLE_GZ, query="?n=3").get_json()
    assert ids(three["recommendations"]) == ids(sample_answer["recommendations"])[:3]


@integration
def test_weights_are_taken_and_checked(real_client, sample_answer):
    users_only = post_list(real_client, SAMPLE_GZ, query="?user_weight=1&content_weight=0").get_json()
    assert ids(users_only["recommendations"]) != ids(sample_answer["recommendations"])
    refused = post_list(real_client, SAMPLE_GZ, query="?user_weight=0&content_weight=0")
    assert refused.status_code == 400
    assert refused.get_json()["error"]["message"].startswith("user_weight and content_weight cannot both be 0")


@integration
def test_adult_titles_only_with_the_opt_in(real_client, real_engine):
    catalogue = real_engine.catalogue
    adult = np.flatnonzero(catalogue.adult)
    rated = adult[adult < catalogue.n_rated]
    favourites = rated[np.argsort(-catalogue.members[rated], kind="stable")][:10]
    body = export([entry(int(real_engine.anime_ids[row]), catalogue.titles_shown[row], 10) for row in favourites])
    adult_ids = set(real_engine.anime_ids[adult].tolist())
    default = post_list(real_client, body, "application/xml", "?n=20").get_json()
    assert len(default["recommendations"]) == 20 and not adult_ids & set(ids(default["recommendations"]))
    opted_in = post_list(real_client, body, "application/xml", "?n=20&include_adult=1").get_json()
    assert len(adult_ids & set(ids(opted_in["recommendations"]))) >= 5  # an adult list's nearest titles are adult


# ---------------------------------------------------------------------------------------------------------
# What is not in the catalogue, and refusals (the tiny model: the checks come before or beside the engine)
# ---------------------------------------------------------------------------------------------------------
def test_unknown_ids_are_ignored_and_reported(client):
    body = export([entry(1, "Cowboy Bebop", 10), entry(NOT_IN_CATALOGUE, "Zz Not Here", 9),
                   entry(101, "Clannad", 0, "Plan to Watch"), entry(1, "Cowboy Bebop", 7), entry(0, "No Id", 8)])
    response = post_list(client, body, "application/xml")
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["ignored"] == [NOT_IN_CATALOGUE]
    assert answer["imported"] == {"entries": 3, "known": 2, "rated": 2,
                                  "by_status": {"watching": 0, "completed": 2, "on_hold": 0, "dropped": 0,
                                                "plan_to_watch": 1},
                                  "skipped": {"without_id": 1, "repeats": 1}}
    assert set(ids(answer["recommendations"])[:3]) <= set(GROUP_A_IDS) - {1}
    assert ids(answer["plan_to_watch"]) == [101]
    assert not {1, 101} & set(ids(answer["recommendations"]))


def test_a_list_the_catalogue_knows_none_of_is_404_in_one_sentence(client):
    body = export([entry(NOT_IN_CATALOGUE, "Zz Not Here", 9), entry(NOT_IN_CATALOGUE + 1, "Zz Nor This", 0)])
    response = post_list(client, body, "application/xml")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["status"] == 404 and one_sentence(error["message"]), error
    assert "2 anime" in error["message"] and "catalogue" in error["message"]


@pytest.mark.parametrize("body, content_type, status, words", [
    ((FIXTURES / "mangalist.xml").read_bytes(), "application/xml", 400, "manga list"),
    ((FIXTURES / "animelist_empty.xml").read_bytes(), "application/xml", 400, "empty"),
    (b"", "application/xml", 400, "empty"),
    (b"", None, 400, "empty"),
    (b'{"liked": [1]}', None, 400, "JSON"),
    (SAMPLE_XML[:len(SAMPLE_XML) // 2], "application/xml", 400, "cut short"),
    (gzip.compress((FIXTURES / "mangalist.xml").read_bytes()), "application/gzip", 400, "manga list"),
    (SAMPLE_XML, "application/json", 415, "application/xml"),
    (SAMPLE_XML, "text/plain", 415, "application/xml"),
    (SAMPLE_GZ, "application/octet-stream", 415, "application/gzip"),
    (SAMPLE_XML, "application/x-www-form-urlencoded", 415, "application/xml"),
], ids=["manga", "empty list", "empty body", "empty body no type", "json", "cut short", "manga gz", "json type",
        "text/plain", "octet-stream", "form type"])
def test_refusals_are_json_errors_in_one_sentence(client, body, content_type, status, words):
    response = post_list(client, body, content_type)
    assert response.status_code == status and response.is_json
    assert response.get_json().keys() == {"error"} and response.get_json()["error"].keys() == {"status", "message"}
    error = response.get_json()["error"]
    assert error["status"] == status and words in error["message"] and one_sentence(error["message"]), error


def test_bad_options_are_refused_by_name(client):
    response = post_list(client, b"", "application/xml", "?n=abc")  # said before the (empty) file is read
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "n must be a whole number from 1 to 100, got 'abc'"
    genre = post_list(client, export([entry(1, "Cowboy Bebop", 9)]), "application/xml", "?genre=Nope")
    assert genre.status_code == 400 and genre.get_json()["error"]["message"].startswith("unknown genre 'Nope'")


def test_a_body_over_the_upload_cap_is_413_about_the_file(app, client, serving_config):
    limit = upload_limit(serving_config)
    assert limit > app.config["MAX_CONTENT_LENGTH"]  # the list views take more than any other request
    response = post_list(client, b"<" * (limit + 1), "application/xml")
    assert response.status_code == 413
    message = response.get_json()["error"]["message"]
    assert "file" in message and "bytes" not in message and "20 MB" in message and one_sentence(message), message
    # a gzipped file over its own cap, within the request's: told the same way, by the parser
    gzipped = post_list(client, b"\x1f\x8b" + b"\0" * (serving_config.list_max_upload_bytes + 1))
    assert gzipped.status_code == 413
    message = gzipped.get_json()["error"]["message"]
    assert "file" in message and "5 MB" in message and "bytes" not in message, message
    # the app still answers, a list upload included, and every other view keeps its own small cap
    assert client.get("/healthz").status_code == 200
    assert post_list(client, export([entry(1, "Cowboy Bebop", 9)]), "application/xml").status_code == 200
    favourites = client.post("/api/recommendations", data=b'{"liked": [1]}' + b" " * limit,
                             content_type="application/json")
    assert favourites.status_code == 413 and "65536 bytes" in favourites.get_json()["error"]["message"]


def test_a_chunked_body_over_the_upload_cap_is_413(client, serving_config):
    response = chunked(client, API, b"<" * (upload_limit(serving_config) + 1), "application/xml")
    assert response.status_code == 413
    message = response.get_json()["error"]["message"]
    assert "file" in message and "bytes" not in message, message
    assert client.get("/healthz").status_code == 200
    small = chunked(client, API, export([entry(1, "Cowboy Bebop", 9)]), "application/xml")
    assert small.status_code == 200 and 1 not in ids(small.get_json()["recommendations"])


# ---------------------------------------------------------------------------------------------------------
# The /import page
# ---------------------------------------------------------------------------------------------------------
def test_the_import_page_offers_the_upload_and_says_the_list_is_private(client):
    response = client.get("/import")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    form = re.search(r'<form[^>]*id="import-form"[^>]*>', page).group(0)
    assert 'method="post"' in form and 'enctype="multipart/form-data"' in form
    drop = re.search(r'id="list-drop".*?</div>', page, re.DOTALL).group(0)
    assert re.search(r'<input id="list-file" name="list" type="file"', drop)
    assert 'for="list-file"' in drop
    assert "never store or log it" in text_of(page, "privacy-note")
    assert attribute(page, "list-file", "aria-describedby") == "privacy-note"
    assert 'id="import-submit"' in page and 'class="options"' in page
    assert not section(page, "results") and not section(page, "share")


@integration
def test_uploading_the_sample_answers_on_the_page(sample_page, sample_answer):
    assert text_of(sample_page, "import-summary") == (
        "We read 243 anime from your list (8 watching, 199 completed, 5 on hold, 7 dropped, 24 plan to watch), "
        "195 of them scored; 243 are in our catalogue.")
    results = cards(section(sample_page, "results"))
    assert [anime_id for anime_id, _ in results] == ids(sample_answer["recommendations"])  # what the API says
    assert [element for _, element in results] == [f"result-{k}" for k in range(1, len(results) + 1)]
    planned = cards(section(sample_page, "plan-to-watch"))
    assert [anime_id for anime_id, _ in planned] == ids(sample_answer["plan_to_watch"])
    assert [element for _, element in planned] == [f"plan-{k}" for k in range(1, 6)]
    assert not section(sample_page, "import-ignored") and 'id="import-ignored"' not in sample_page
    assert not error_message(sample_page)


@integration
def test_the_share_link_holds_only_the_lists_best_scored_titles(sample_page, real_engine, real_client):
    link = attribute(sample_page, "share-link", "value")
    assert attribute(sample_page, "open-link", "href") == link
    address = urllib.parse.urlsplit(link)
    query = urllib.parse.parse_qs(address.query)
    assert address.path == "/favourites" and query.keys() == {"liked"}
    liked = [int(anime_id) for anime_id in query["liked"][0].split(",")]
    eligible = {row.anime_id: row for row in SAMPLE_ROWS if row.score and row.status != "plan_to_watch"}
    assert set(liked) <= set(eligible) and len(liked) == len(set(liked))
    assert len(liked) == min(real_engine.config.list_link_titles, len(eligible)) == 10
    scores = [eligible[anime_id].score for anime_id in liked]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= max(row.score for anime_id, row in eligible.items() if anime_id not in liked)
    note = text_of(sample_page, "share-note")
    assert f"holds your {len(liked)} best-scored titles" in note
    assert note.endswith(", ".join(shown_title(real_engine, anime_id) for anime_id in liked) + ".")
    # the link works, and on it the titles are the picks, not recommended back
    page = real_client.get(link).get_data(as_text=True)
    shown = [anime_id for anime_id, _ in cards(section(page, "results"))]
    assert shown and not set(shown) & set(liked)


@integration
def test_the_page_takes_the_options(real_client, sample_answer):
    response = upload(real_client, SAMPLE_GZ, n="3", type="TV")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    results = cards(section(page, "results"))
    assert len(results) == 3
    assert all("TV ·" in card for card in re.findall(r'<p class="card-meta">([^<]*)</p>',
                                                     section(page, "results")))
    assert [anime_id for anime_id, _ in results] != ids(sample_answer["recommendations"])[:3]


def test_the_page_names_titles_the_catalogue_does_not_know_as_text(client):
    script = '<script>alert("list")</script>'
    body = export([entry(1, "Cowboy Bebop", 10), entry(NOT_IN_CATALOGUE, "Zz Not Here Either", 9),
                   entry(NOT_IN_CATALOGUE + 1, script, 7)])
    response = upload(client, body, "animelist.xml")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert text_of(page, "import-ignored") == f"Not in our catalogue, so not used: Zz Not Here Either, {script}."
    assert script not in page and "&lt;script&gt;" in page  # a title from the file is text, never markup
    assert text_of(page, "import-summary").endswith("3 of them scored; 1 are in our catalogue.")
    assert cards(section(page, "results"))


def test_the_share_link_leaves_out_titles_the_person_dropped(client):
    body = export([entry(1, "Cowboy Bebop", 10), entry(6, "Trigun", 9), entry(30, "Neon Genesis Evangelion", 8),
                   entry(102, "Toradora!", 2, "Dropped"), entry(5, "Cowboy Bebop: The Movie", 0, "Plan to Watch")])
    page = upload(client, body, "animelist.xml").get_data(as_text=True)
    link = urllib.parse.urlsplit(attribute(page, "share-link", "value"))
    # "This link holds your best-scored titles" and opens "Pick a few anime you liked": not one scored 2 and dropped
    assert urllib.parse.parse_qs(link.query)["liked"] == ["1,6,30"]


@pytest.mark.parametrize("body, filename, status, words", [
    (None, None, 400, "Choose your MyAnimeList export file first"),
    (b"", "", 400, "Choose your MyAnimeList export file first"),
    ((FIXTURES / "mangalist.xml").read_bytes(), "mangalist.xml", 400, "This is a manga list"),
    ((FIXTURES / "animelist_empty.xml").read_bytes(), "animelist.xml", 400, "empty"),
    (b"\x1f\x8b" + b"\0" * (5 * 2**20 + 1), "animelist.xml.gz", 413, "larger than 5 MB"),
    (make_samples.animelist_xml([entry(NOT_IN_CATALOGUE, "Zz Not Here", 9)]).encode(), "animelist.xml", 404,
     "The one anime on the list is not in our catalogue"),
], ids=["no file", "empty file part", "manga", "empty list", "gz over its cap", "none known"])
def test_the_page_refuses_inline_with_the_status(client, body, filename, status, words):
    response = upload(client, body, filename, n="5")
    assert response.status_code == status and response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert words in error_message(page), error_message(page)
    assert 'id="list-file"' in page and 'id="import-submit"' in page  # the form is there to try again
    assert not cards(page) and 'id="share"' not in page


def test_a_form_over_the_upload_cap_is_413_about_the_file(client, serving_config):
    response = upload(client, b"<" * upload_limit(serving_config), "animelist.xml")
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "The file is larger than any anime list export" in error_message(page) and "bytes" not in page
    assert client.get("/import").status_code == 200


# ---------------------------------------------------------------------------------------------------------
# The engine's rules for a list, where the right answer is known (the tiny model)
# ---------------------------------------------------------------------------------------------------------
def listed(*entries: tuple[int, int, str]) -> list[ListEntry]:
    return [ListEntry(anime_id, score, status) for anime_id, score, status in entries]


def test_a_list_of_plans_only_gets_recommendations_and_never_its_own_titles(engine):
    plans = listed((1, 0, "plan_to_watch"), (6, 0, "plan_to_watch"))
    answer = engine.recommend_from_list(plans, 10)
    shown = ids(answer["recommendations"])
    assert shown and not {1, 6} & set(shown)
    assert set(shown[:3]) <= set(GROUP_A_IDS)  # what the plans look like comes first
    # the plans are what the list is scored by, so nothing is left to rank them by: no plan-to-watch section
    assert answer["plan_to_watch"] == [] and answer["ignored"] == []
    for item in answer["recommendations"]:
        assert not any(reason.startswith("because you gave") for reason in item["reasons"])


def test_scored_entries_are_the_taste_and_reasons_give_their_scores(engine):
    answer = engine.recommend_from_list(listed((1, 10, "completed"), (6, 9, "watching"), (101, 2, "dropped")), 10)
    shown = ids(answer["recommendations"])
    assert set(shown[:4]) == set(GROUP_A_IDS) - {1, 6} and not {1, 6, 101} & set(shown)
    reasons = [reason for item in answer["recommendations"][:4] for reason in item["reasons"]]
    assert "because you gave Cowboy Bebop a 10" in reasons
    assert not any("Clannad" in reason for reason in reasons)


def test_unscored_entries_count_as_watched(engine):
    answer = engine.recommend_from_list(listed((1, 0, "completed"), (6, 0, "on_hold")), 10)
    shown = ids(answer["recommendations"])
    assert set(shown[:4]) == set(GROUP_A_IDS) - {1, 6} and not {1, 6} & set(shown)
    assert answer["plan_to_watch"] == []


@pytest.fixture(scope="module")
def lenient_engine(tiny_model_dir: Path, serving_config) -> Recommender:
    """The tiny model with a list policy that reads every score as taste (list_min_taste_score 1)."""
    return Recommender.from_folder(tiny_model_dir, dataclasses.replace(serving_config, list_min_taste_score=1))


def test_a_low_scored_dropped_title_only_excludes_under_a_minimum_taste_score(engine, lenient_engine):
    assert engine.list_policy.min_taste_score == 4  # the configured minimum (config.yaml, as serving_fixtures pins it)
    dropped = [(anime_id, 2, "dropped") for anime_id in GROUP_B_IDS[:3]]
    entries = listed((1, 8, "completed"), *dropped)
    answer = engine.recommend_from_list(entries, 10)
    shown = ids(answer["recommendations"])
    assert set(shown[:5]) == set(GROUP_A_IDS) - {1}  # the one title liked leads, the dropped ones say nothing
    assert not set(GROUP_B_IDS[:3]) & set(shown)  # but are never recommended back
    for item in answer["recommendations"]:
        assert not any(title in reason for reason in item["reasons"] for title in ("Clannad", "Toradora!", "Kimi ni"))
    # with every score taste, the same 2s draw up the romance the person dropped
    lenient = ids(lenient_engine.recommend_from_list(entries, 10)["recommendations"])
    assert set(lenient[:5]) & set(GROUP_B_IDS) and not set(GROUP_B_IDS[:3]) & set(lenient)


def test_plans_are_ranked_best_fit_first_capped_and_kept_out_of_the_list(engine, serving_config):
    plans = [101, 5, 104, 20, 102, 103, 105]
    entries = listed((1, 10, "completed"), (6, 9, "completed"), *[(anime_id, 0, "plan_to_watch") for anime_id in plans])
    answer = engine.recommend_from_list(entries, 10)
    planned = answer["plan_to_watch"]
    assert len(planned) == serving_config.list_plan_to_watch == 5 and set(ids(planned)) <= set(plans)
    assert set(ids(planned)[:2]) == {5, 20}  # the group-A plans fit an action fan best
    matches = [item["match"] for item in planned]
    assert matches == sorted(matches, reverse=True)
    assert not (set(plans) | {1, 6}) & set(ids(answer["recommendations"]))
    assert set(ids(answer["recommendations"])[:2]) == {21, 30}
    movies = engine.recommend_from_list(entries, 10, filters=Filters(types=("Movie",)))
    assert ids(movies["plan_to_watch"]) == [5, 104]  # the filters hold for the plans too
    assert all(item["type"] == "Movie" for item in movies["recommendations"])


def test_the_plans_section_can_be_switched_off(tiny_model_dir, serving_config):
    off = Recommender.from_folder(tiny_model_dir, dataclasses.replace(serving_config, list_plan_to_watch=0))
    answer = off.recommend_from_list(listed((1, 10, "completed"), (5, 0, "plan_to_watch")), 10)
    assert answer["plan_to_watch"] == [] and 5 not in ids(answer["recommendations"])


def test_unknown_ids_are_ignored_in_order_and_a_list_of_only_unknown_ids_is_refused(engine):
    answer = engine.recommend_from_list(listed((NOT_IN_CATALOGUE, 9, "completed"), (1, 9, "completed"),
                                               (NOT_IN_CATALOGUE - 1, 0, "plan_to_watch")), 5)
    assert answer["ignored"] == [NOT_IN_CATALOGUE, NOT_IN_CATALOGUE - 1] and len(answer["recommendations"]) == 5
    with pytest.raises(UnknownAnimeError, match="none of the 2 anime on the list is in our catalogue"):
        engine.recommend_from_list(listed((NOT_IN_CATALOGUE, 9, "completed"), (NOT_IN_CATALOGUE - 1, 9, "dropped")))


# ---------------------------------------------------------------------------------------------------------
# Privacy: the list serves one response, and is never logged or written anywhere
# ---------------------------------------------------------------------------------------------------------
PRIVATE_NAME = "zq_private_fan_4417"
PRIVATE_FILE = "animelist_1765000000_-_88442211.xml.gz"  # MyAnimeList names the file after the person's user id


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` at DEBUG on every logger there is, the project's non-propagating ones ("anime") included."""
    loggers = [logging.getLogger()] + [logger for logger in logging.root.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    levels = [(logger, logger.level) for logger in loggers]
    quiet = [logger for logger in loggers if not logger.propagate]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    for logger in quiet:
        logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        for logger in quiet:
            logger.removeHandler(caplog.handler)
        for logger, level in levels:
            logger.setLevel(level)


def listing(folder: Path) -> list[tuple[str, int, int]]:
    """Every file and folder under ``folder``: path, size and modification time."""
    found = []
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(parent) / name
            stat = path.stat()
            found.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


@integration
def test_the_list_is_never_logged_nor_written(real_app, trained_root, tmp_path, monkeypatch, every_log, capfd):
    private = SAMPLE_XML.replace(b"<user_name>sample_user</user_name>",
                                 f"<user_name>{PRIVATE_NAME}</user_name>".encode())
    assert PRIVATE_NAME.encode() in private
    private_gz = make_samples.gzipped(private.decode("utf-8"))
    refused = private.replace(b"<my_status>Completed</my_status>", b"<my_status>Reading</my_status>", 1)
    secrets = [PRIVATE_NAME, "88442211"] + sorted({row.title for row in SAMPLE_ROWS})
    work, temp = tmp_path / "cwd", tmp_path / "temp"
    work.mkdir()
    temp.mkdir()
    monkeypatch.chdir(work)  # the process's working directory while the lists are read
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    before = listing(trained_root)
    client = real_app.test_client()

    assert post_list(client, private_gz).status_code == 200
    assert post_list(client, private, "application/xml", "?n=50&type=TV").status_code == 200
    assert upload(client, private_gz, PRIVATE_FILE).status_code == 200
    assert upload(client, private, PRIVATE_FILE.removesuffix(".gz"), n="5").status_code == 200
    assert post_list(client, refused, "application/xml").status_code == 400
    assert upload(client, refused, PRIVATE_FILE).status_code == 400
    # the capture sees the project's own DEBUG records: had anything been logged, it would be here
    get_logger("src.web.api").debug("privacy probe")
    assert "privacy probe" in [record.getMessage() for record in every_log.records]

    logged = [f"{record.name} {record.getMessage()} {record.exc_text or ''}" for record in every_log.records]
    printed = capfd.readouterr()
    for secret in secrets:
        assert not any(secret in line for line in logged), secret
        assert secret not in printed.out and secret not in printed.err, secret
    assert listing(work) == [] and listing(temp) == []
    assert listing(trained_root) == before


@integration
def test_the_user_name_is_not_in_any_answer(real_app):
    private = SAMPLE_XML.replace(b"sample_user", PRIVATE_NAME.encode())
    client = real_app.test_client()
    for response in (post_list(client, private, "application/xml"), upload(client, private, "animelist.xml")):
        assert response.status_code == 200 and PRIVATE_NAME.encode() not in response.data
