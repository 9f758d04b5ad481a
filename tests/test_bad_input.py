"""Bad input never hurts: hostile and malformed input to every JSON endpoint and every HTML form.

Each row is one request, the status it must get and a fragment of the message that says what to fix (JSON
``error.message`` for the API, the inline ``.message.error`` paragraph for a page, with the form still there; a
page names a field as its form labels it, never by the API's parameter name).
After every row: nothing was logged as an error or with a traceback, and the next valid request succeeds.

Hostile text that is still a well-formed request (unicode, SQL, HTML, JS or template syntax in a search) is
not an error: it is answered normally (200, no results) and shown escaped.
"""
from __future__ import annotations

import html
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import pytest
from markupsafe import escape

from tests.log_checks import errors_logged
from tests.serving_fixtures import TEST_USER

USER_URL = f"/api/users/{TEST_USER}/recommendations"
SIMILAR_URL = "/api/anime/1/similar"
FAVOURITES_URL = "/api/recommendations"
JSON = "application/json"


@dataclass(frozen=True)
class Case:
    """One hostile request and what it must get back."""

    label: str
    method: str
    url: str
    status: int
    fragment: str
    data: Any = None  # a str/bytes body, or a dict of form fields
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client):
        return client.open(self.url, method=self.method, data=self.data, content_type=self.content_type,
                           headers=self.headers)


def _id(case: Case) -> str:
    return case.label


# ---------------------------------------------------------------------------------------------------------
# Values every table draws from
# ---------------------------------------------------------------------------------------------------------
# (label, URL-encoded path segment or form value); all must be refused as malformed ids
BAD_IDS = [
    ("letters", "abc"), ("negative", "-1"), ("float", "1.5"), ("float-zero", "1.0"), ("exponent", "1e3"),
    ("hex", "0x10"), ("2**63", str(2**63)), ("10k-digits", "9" * 10_000), ("emoji", "%F0%9F%98%80"),
    ("nul", "%00"), ("fullwidth-one", "%EF%BC%91"), ("sql", "1%20OR%201%3D1"), ("html", "%3Cscript%3E"),
    ("space", "%20"), ("plus-sign", "%2B1"),
]
# the same ids as a form field carries them (decoded); a blank field is "not given", not a bad id
FORM_BAD_IDS = [(label, urllib.parse.unquote(value)) for label, value in BAD_IDS if urllib.parse.unquote(value).strip()]
UNKNOWN_IDS = [("zero", "0"), ("absent", "424242"), ("int64-max", str(2**63 - 1))]
BAD_N = [("0", "0"), ("-1", "-1"), ("101", "101"), ("10**9", str(10**9)), ("abc", "abc"), ("float", "1.5"),
         ("empty", ""), ("huge", "9" * 5000)]
BAD_WEIGHTS = [("user_weight", "-0.5"), ("user_weight", "nan"), ("content_weight", "inf"),
               ("content_weight", "-inf"), ("user_weight", "1e999"), ("content_weight", "abc"),
               ("user_weight", "1.5"), ("content_weight", "0x1")]
BAD_FILTERS = [("genre", "NoSuchGenre", "unknown genre"), ("genre", "x" * 10_000, "unknown genre"),
               ("genre", " ", "genre must not be empty"), ("type", "Manga", "unknown type"),
               ("type", "<b>", "unknown type"), ("min_score", "nan", "min_score"), ("min_score", "11", "min_score"),
               ("min_score", "-1", "min_score"), ("year_from", "abc", "year_from"), ("year_to", "99999", "year_to"),
               ("year_from", "1899", "year_from")]
# Well-formed text a person could type; never an error, always escaped when shown.
HOSTILE_TEXT = [
    ("unicode", "カウボーイビバップ"), ("emoji", "🚀 Ωmega"), ("rtl", "\u202eevil"),
    ("sql", "'; DROP TABLE anime; --"), ("sql-or", '" OR 1=1 --'), ("html", "<script>alert(1)</script>"),
    ("html-attr", '"><img src=x onerror=alert(1)>'), ("jinja", "{{7*7}}{% raw %}"), ("format", "%s%n%x{0}"),
    ("path", "../../etc/passwd"), ("nul", "a\x00b"), ("newlines", "a\r\nb\tc"),
]


# ---------------------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------------------
def _query_cases(prefix: str, url: str, id_url: str, what: str) -> list[Case]:
    cases = [Case(f"{prefix}-id-{label}", "GET", id_url.format(value), 400, f"{what} id must")
             for label, value in BAD_IDS]
    cases += [Case(f"{prefix}-unknown-{label}", "GET", id_url.format(value), 404, "not in the model")
              for label, value in UNKNOWN_IDS]
    cases += [Case(f"{prefix}-n-{label}", "GET", f"{url}?n={value}", 400, "n must") for label, value in BAD_N]
    cases += [Case(f"{prefix}-{name}-{value[:12]}", "GET", f"{url}?{name}={value}", 400, fragment)
              for name, value, fragment in BAD_FILTERS]
    cases.append(Case(f"{prefix}-21-genres", "GET", url + "?" + "&".join(["genre=Action"] * 21), 400, "at most 20"))
    return cases


def _user_cases() -> list[Case]:
    cases = _query_cases("user", USER_URL, "/api/users/{}/recommendations", "user")
    cases += [Case(f"user-{name}-{value}", "GET", f"{USER_URL}?{name}={value}", 400, name)
              for name, value in BAD_WEIGHTS]
    cases.append(Case("user-weights-both-zero", "GET", f"{USER_URL}?user_weight=0&content_weight=0", 400, "both be 0"))
    return cases


def _search_cases() -> list[Case]:
    url = "/api/anime/search"
    cases = [Case("search-no-q", "GET", url, 400, "q must"), Case("search-empty-q", "GET", f"{url}?q=", 400, "q must"),
             Case("search-10k-q", "GET", f"{url}?q={'x' * 10_000}", 400, "q must"),
             Case("search-101-q", "GET", f"{url}?q={'x' * 101}", 400, "q must")]
    cases += [Case(f"search-limit-{label}", "GET", f"{url}?q=a&limit={value}", 400, "limit must")
              for label, value in BAD_N]
    return cases


def _body(label: str, body: str | bytes, status: int, fragment: str, content_type: str | None = JSON) -> Case:
    return Case(f"favourites-{label}", "POST", FAVOURITES_URL, status, fragment, body, content_type)


def _favourites_cases() -> list[Case]:
    many = lambda count: json.dumps({"liked": list(range(1, count + 1))})  # noqa: E731
    cases = [
        _body("invalid-json", '{"liked": [1', 400, "not valid JSON"),
        _body("trailing-garbage", '{"liked": [1]} x', 400, "not valid JSON"),
        _body("empty-body", "", 400, "not valid JSON"),
        _body("deep-nesting", "[" * 30_000 + "]" * 30_000, 400, "not valid JSON"),
        _body("5000-digit-int", '{"liked": [' + "9" * 5000 + "]}", 400, "not valid JSON"),
        _body("not-utf8", b'{"liked": [1], "genre": "\xff\xfe"}', 400, "not valid JSON"),
        _body("array", "[1, 2]", 400, "JSON object"),
        _body("string", '"liked"', 400, "JSON object"),
        _body("number", "42", 400, "JSON object"),
        _body("null", "null", 400, "JSON object"),
        _body("text-plain", '{"liked": [1]}', 415, "Content-Type: application/json", "text/plain"),
        _body("form-urlencoded", "liked=1", 415, "Content-Type: application/json", "application/x-www-form-urlencoded"),
        _body("multipart", "--x\r\n\r\n1\r\n--x--", 415, "Content-Type: application/json",
              "multipart/form-data; boundary=x"),
        _body("xml", "<liked>1</liked>", 415, "Content-Type: application/json", "application/xml"),
        _body("liked-missing", "{}", 400, "liked must"),
        _body("liked-empty", '{"liked": []}', 400, "liked must"),
        _body("liked-null", '{"liked": null}', 400, "liked must"),
        _body("liked-string", '{"liked": "1"}', 400, "liked must"),
        _body("liked-object", '{"liked": {"1": 1}}', 400, "liked must"),
        _body("liked-strings", '{"liked": ["1"]}', 400, "liked must"),
        _body("liked-float", '{"liked": [1.5]}', 400, "liked must"),
        _body("liked-negative", '{"liked": [-1]}', 400, "liked must"),
        _body("liked-2**63", f'{{"liked": [{2**63}]}}', 400, "liked must"),
        _body("liked-bool", '{"liked": [true]}', 400, "liked must"),
        _body("liked-nan", '{"liked": [NaN]}', 400, "liked must"),
        _body("liked-nested", '{"liked": [[1]]}', 400, "liked must"),
        _body("liked-null-item", '{"liked": [null]}', 400, "liked must"),
        _body("liked-unknown-only", '{"liked": [999, 998]}', 404, "999, 998"),
        _body("liked-none-known", '{"liked": [998, 999]}', 404, "999"),
        _body("liked-duplicated", '{"liked": [1, 5, 1]}', 400, "more than once"),
        _body("liked-51", many(51), 400, "liked must"),
        _body("liked-100000", many(100_000), 413, "too large"),
        _body("unknown-field", '{"liked": [1], "likes": [2]}', 400, "unknown field"),
        _body("weights-both-zero", '{"liked": [1], "user_weight": 0, "content_weight": 0}', 400, "both be 0"),
        *[_body(f"{name}-null", f'{{"liked": [1], "{name}": null}}', 400, f"{name} must not be null")
          for name in ("n", "user_weight", "content_weight", "genre", "type", "min_score", "year_from", "year_to",
                       "include_adult")],
    ]
    for name, value in [("n", "0"), ("n", "-1"), ("n", "101"), ("n", str(10**9)), ("n", '"abc"'), ("n", "1.5"),
                        ("n", "true"), ("n", "[10]"), ("user_weight", "-1"), ("user_weight", "NaN"),
                        ("content_weight", "Infinity"), ("content_weight", "-Infinity"), ("user_weight", "1e400"),
                        ("user_weight", "1" * 400), ("content_weight", '"0.5"'), ("min_score", "NaN"),
                        ("min_score", "11"), ("year_from", '"2000"'), ("year_to", "1" * 30), ("genre", '"Nope"'),
                        ("genre", '["Nope"]'), ("genre", '""'), ("genre", "[1]"), ("genre", '{"a": 1}'),
                        ("genre", json.dumps(["Action"] * 21)), ("type", '"Manga"'), ("type", "[null]")]:
        cases.append(_body(f"{name}-{value[:12]}", f'{{"liked": [1], "{name}": {value}}}', 400, name))
    return cases


def _routing_cases() -> list[Case]:
    return [Case("unknown-path", "GET", "/api/nothing", 404, "nothing at this address"),
            Case("post-to-get", "POST", USER_URL, 405, "does not accept"),
            Case("get-to-post", "GET", FAVOURITES_URL, 405, "does not accept"),
            Case("delete-search", "DELETE", "/api/anime/search?q=a", 405, "does not accept"),
            Case("post-healthz", "POST", "/healthz", 405, "does not accept"),
            Case("put-readyz", "PUT", "/readyz", 405, "does not accept"),
            Case("id-with-slash", "GET", "/api/users/1%2F2/recommendations", 404, "nothing at this address")]


API_CASES = (_user_cases() + _query_cases("similar", SIMILAR_URL, "/api/anime/{}/similar", "anime") + _search_cases()
             + _favourites_cases() + _routing_cases())


def _api_message(response) -> str:
    assert response.is_json, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["status"] == response.status_code
    return body["error"]["message"]


def _assert_still_serving(client) -> None:
    assert client.get(USER_URL + "?n=2").status_code == 200
    assert client.post(FAVOURITES_URL, json={"liked": [1]}).status_code == 200


@pytest.mark.parametrize("case", API_CASES, ids=_id)
def test_api_refuses_bad_input_with_a_message(client, app_log, case: Case) -> None:
    response = case.send(client)
    assert response.status_code == case.status, response.get_data(as_text=True)[:300]
    message = _api_message(response)
    assert case.fragment in message and "Traceback" not in message
    assert len(message) < 600, "the message should say what to fix, not echo the whole input back"
    assert not errors_logged(app_log)
    _assert_still_serving(client)


@pytest.mark.parametrize("label, text", HOSTILE_TEXT, ids=[label for label, _ in HOSTILE_TEXT])
def test_api_search_answers_hostile_text_normally(client, app_log, label: str, text: str) -> None:
    response = client.get("/api/anime/search", query_string={"q": text})
    assert response.status_code == 200
    assert response.get_json()["results"] == [] and response.get_json()["query"] == text
    assert not errors_logged(app_log)
    _assert_still_serving(client)


def test_an_empty_year_range_is_an_empty_answer(client) -> None:
    response = client.get(f"{USER_URL}?year_from=2010&year_to=2000")
    assert response.status_code == 200 and response.get_json()["recommendations"] == []


# ---------------------------------------------------------------------------------------------------------
# HTML forms: the user-id form (/), the favourites form, the search forms, the anime page's options form
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FormCase:
    label: str
    method: str
    url: str
    fields: dict[str, Any]
    status: int
    fragment: str
    form_id: str  # the form that must still be on the page, to fix the input

    def send(self, client):
        # A valid form is answered with a redirect to its result's address: followed, as a browser does.
        if self.method == "GET":
            return client.get(self.url, query_string=self.fields, follow_redirects=True)
        return client.post(self.url, data=self.fields, follow_redirects=True)


USER_FORM = 'id="user-form"'
FAVOURITES_FORM = 'id="favourites-form"'
SEARCH_FORM = 'id="search-q"'
ANIME_FORM = 'action="/anime/1#results"'
USER_ID = str(TEST_USER)


# Each option as the form labels it: what a page's message must name (src/web/pages.py LABELS).
PAGE_LABELS = {"n": "How many", "user_weight": "Similar users weight", "content_weight": "Similar anime weight",
               "genre": "Genre", "type": "Type", "min_score": "Minimum score", "year_from": "From year",
               "year_to": "To year"}


def _option_cases(prefix: str, method: str, url: str, base: dict[str, Any], form_id: str,
                  weights: bool = True) -> list[FormCase]:
    cases = [FormCase(f"{prefix}-n-{label}", method, url, {**base, "n": value}, 400, "How many must", form_id)
             for label, value in BAD_N if value]  # an empty field means "default"
    cases += [FormCase(f"{prefix}-{name}-{value[:12]}", method, url, {**base, name: value}, 400,
                       PAGE_LABELS[name], form_id)
              for name, value, fragment in BAD_FILTERS if value.strip()]
    if weights:
        cases += [FormCase(f"{prefix}-{name}-{value}", method, url, {**base, name: value}, 400,
                           f"{PAGE_LABELS[name]} must be a number", form_id) for name, value in BAD_WEIGHTS]
        cases.append(FormCase(f"{prefix}-weights-both-zero", method, url,
                              {**base, "user_weight": "0", "content_weight": "0"}, 400,
                              "Similar users weight and Similar anime weight cannot both be 0", form_id))
    return cases


def _user_form_cases() -> list[FormCase]:
    cases = []
    for method in ("POST", "GET"):
        prefix = f"index-{method.lower()}"
        cases += [FormCase(f"{prefix}-id-{label}", method, "/", {"userID": value}, 400, "User ID must", USER_FORM)
                  for label, value in FORM_BAD_IDS]
        cases += [FormCase(f"{prefix}-id-{label}", method, "/", {"userID": text}, 400, "User ID must", USER_FORM)
                  for label, text in HOSTILE_TEXT if text.strip()]
        cases += [FormCase(f"{prefix}-unknown-{label}", method, "/", {"userID": value}, 404,
                           "We don't know that user ID", USER_FORM) for label, value in UNKNOWN_IDS]
        cases += _option_cases(prefix, method, "/", {"userID": USER_ID}, USER_FORM)
    cases.append(FormCase("index-post-no-id", "POST", "/", {}, 400, "Enter a user ID", USER_FORM))
    return cases


def _favourites_form_cases() -> list[FormCase]:
    cases = []
    for method in ("POST", "GET"):
        prefix = f"favourites-{method.lower()}"
        cases += [FormCase(f"{prefix}-liked-{label}", method, "/favourites", {"liked": value}, 400,
                           "Anime you liked are given by their IDs", FAVOURITES_FORM)
                  for label, value in FORM_BAD_IDS]
        cases += [FormCase(f"{prefix}-unknown-only", method, "/favourites", {"liked": ["999", "998"]}, 404,
                           "We don't know any of the anime you picked (999, 998)", FAVOURITES_FORM),
                  FormCase(f"{prefix}-51", method, "/favourites", {"liked": [str(i) for i in range(1, 52)]}, 400,
                           "at most 50", FAVOURITES_FORM),
                  FormCase(f"{prefix}-51-in-one-field", method, "/favourites",
                           {"liked": ",".join(str(i) for i in range(1, 52))}, 400, "at most 50", FAVOURITES_FORM)]
        cases += _option_cases(prefix, method, "/favourites", {"liked": "1"}, FAVOURITES_FORM)
    # 100,000 picks: as a query string (a POST body that large is a 413, below)
    cases.append(FormCase("favourites-get-100000", "GET", "/favourites", {"liked": ["1"] * 100_000}, 400,
                          "at most 50", FAVOURITES_FORM))
    cases.append(FormCase("favourites-post-none", "POST", "/favourites", {}, 400, "Pick at least one", FAVOURITES_FORM))
    return cases


def _anime_page_cases() -> list[FormCase]:
    cases = [FormCase(f"anime-id-{label}", "GET", f"/anime/{value}", {}, 400, "Anime ID must", 'class="search-form"')
             for label, value in BAD_IDS]
    cases += [FormCase(f"anime-unknown-{label}", "GET", f"/anime/{value}", {}, 404, "in our catalogue",
                       'class="search-form"') for label, value in UNKNOWN_IDS]
    cases += _option_cases("anime", "GET", "/anime/1", {}, ANIME_FORM, weights=False)
    return cases


def _search_page_cases() -> list[FormCase]:
    cases = [FormCase(f"search-page-{length}", "GET", "/search", {"q": "x" * length}, 400, "1 to 100 characters",
                      SEARCH_FORM) for length in (10_000, 101)]
    cases += [FormCase(f"search-page-{label}", "GET", "/search", {"q": "bebop", "page": value}, 400, "Page must",
                       SEARCH_FORM) for label, value in BAD_N if value and value != "101"]  # page 101: past the end
    return cases


FORM_CASES = _user_form_cases() + _favourites_form_cases() + _anime_page_cases() + _search_page_cases()


def inline_error(page: str) -> str:
    """The text of the page's inline error message (tags stripped, entities decoded)."""
    found = re.search(r'<p class="message error"[^>]*>(.*?)</p>', page, re.DOTALL)
    assert found, "no inline error message on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def assert_escaped(page: str, values: list[Any]) -> None:
    """No value a visitor sent appears in the page as live markup."""
    for value in values:
        if isinstance(value, str) and re.search(r"[<>\"]", value):
            assert value not in page, f"{value!r} reached the page unescaped"


def _assert_pages_still_work(client) -> None:
    assert client.post("/", data={"userID": USER_ID}, follow_redirects=True).status_code == 200
    assert client.post("/favourites", data={"liked": ["1"]}, follow_redirects=True).status_code == 200


@pytest.mark.parametrize("case", FORM_CASES, ids=lambda case: case.label)
def test_forms_show_an_inline_message_for_bad_input(client, app_log, case: FormCase) -> None:
    response = case.send(client)
    page = response.get_data(as_text=True)
    assert response.status_code == case.status, page[:500]
    assert response.mimetype == "text/html"
    message = inline_error(page)
    assert case.fragment in message
    assert not re.search(r"\b(n|q|user_weight|content_weight|min_score|year_from|year_to|liked)\b must", message), \
        "a page names a field as its form labels it"
    assert case.form_id in page, "the form must still be there to fix the input"
    assert "Traceback" not in page
    assert_escaped(page, list(case.fields.values()))
    assert not errors_logged(app_log)
    _assert_pages_still_work(client)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_favourite_picked_twice_is_counted_once_and_said(client, app_log, method: str) -> None:
    """The JSON API refuses a repeated id (a client bug); a person who picked a title twice is told, and served."""
    response = FormCase("twice", method, "/favourites", {"liked": ["1", "1"]}, 200, "", FAVOURITES_FORM).send(client)
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 200 and "You picked Cowboy Bebop more than once: it counts once." in page
    assert not errors_logged(app_log)


@pytest.mark.parametrize("label, text", HOSTILE_TEXT, ids=[label for label, _ in HOSTILE_TEXT])
def test_search_page_answers_hostile_text_escaped(client, app_log, label: str, text: str) -> None:
    response = client.get("/search", query_string={"q": text})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "No title contains" in page
    assert str(escape(text.strip())) in page, "the text is shown back, escaped, not evaluated"
    assert_escaped(page, [text])
    assert not errors_logged(app_log)
    _assert_pages_still_work(client)


@pytest.mark.parametrize("url", ["/", "/favourites"])
def test_form_bodies_over_the_cap_are_refused(client, app_log, url: str) -> None:
    response = client.post(url, data={"userID": USER_ID, "liked": ["1"] * 10_000, "q": "x" * 70_000})
    assert response.status_code == 413 and "too large" in response.get_data(as_text=True)
    assert not errors_logged(app_log)
    _assert_pages_still_work(client)


def test_the_tables_are_as_large_as_the_issue_asks() -> None:
    """A guard against a refactor quietly emptying a table: every kind of input listed in issue 7 is here."""
    assert len(API_CASES) >= 150 and len(FORM_CASES) >= 150
