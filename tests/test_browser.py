"""The pages in a real headless Chromium against the app under real gunicorn, on the tiny artifact set.

Every flow is opened by its own address, at desktop width (1280 px) and on a phone (390 px). Every page is
scanned with axe-core (from the npm registry, `make axe-deps`): a serious or critical violation fails the test;
every violation, whatever its impact, is written to tests/output/axe/ with the page's screenshot beside it in
tests/output/ (both git-ignored).

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser-deps``) and axe-core (``make axe-deps``);
skipped with the reason if absent.
"""
from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.servers import gunicorn
from tests.fixtures.myanimelist import make_samples
from tests.serving_fixtures import GROUP_A_IDS, TEST_USER, write_tiny_artifacts

pytestmark = [pytest.mark.browser, pytest.mark.integration]

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"
AXE_OUTPUT = OUTPUT / "axe"
AXE_SCRIPT = HERE / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 15
DESKTOP = (1280, 1000)
# An iPhone 12-14's CSS viewport; device pixel ratio 1 keeps the screenshots small.
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
WIDTHS = ["desktop", "phone"]
BLOCKING_IMPACTS = ("serious", "critical")
MYANIMELIST = HERE / "fixtures" / "myanimelist"  # real-format exports (make_samples.py there)


def _chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(tiny_artifacts_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real thing: gunicorn with gunicorn.conf.py, on a free local port, serving the model (/readyz 200)."""
    log_path = tmp_path_factory.mktemp("browser-server") / "gunicorn.log"
    with gunicorn(tiny_artifacts_root, log_path, timeout=60, ready_path="/readyz") as live:
        yield live.url


@pytest.fixture(scope="module")
def catalogue_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same, on a catalogue that also lists anime nobody rated (issue 12: the whole catalogue)."""
    root = tmp_path_factory.mktemp("catalogue-artifacts")
    write_tiny_artifacts(root / "model", unrated=True)
    with gunicorn(root, root / "gunicorn.log", timeout=60, ready_path="/readyz") as live:
        yield live.url


@pytest.fixture(scope="module")
def real_server(trained_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same, serving a model trained on the embedded sample: the whole real catalogue (issue 28's fan flows)."""
    log_path = tmp_path_factory.mktemp("real-server") / "gunicorn.log"
    with gunicorn(trained_root, log_path, timeout=120, ready_path="/readyz") as live:
        yield live.url


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_SCRIPT.is_file():
        pytest.skip(f"axe-core is not installed at {AXE_SCRIPT.relative_to(HERE.parent)}: run `make axe-deps`")
    return AXE_SCRIPT.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, axe_source: str):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-dev.txt)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary = _chromium_binary()
    if binary is None or not Path(CHROMEDRIVER).exists():
        pytest.skip("Chromium or chromedriver is not installed: run `make browser-deps` "
                    "(apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    driver.axe_source = axe_source
    driver.axe_report = {}
    try:
        yield driver
    finally:
        _write_axe_summary(driver.axe_report)
        driver.quit()


@pytest.fixture(params=WIDTHS)
def width(request: pytest.FixtureRequest, browser) -> Iterator[str]:
    """The browser at desktop width or as a 390 px phone, with no cookie left by an earlier test."""
    browser.delete_all_cookies()
    if request.param == "phone":
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        yield request.param
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.delete_all_cookies()


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------
def _by():
    from selenium.webdriver.common.by import By
    return By


def _wait(driver, condition):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, WAIT_SECONDS).until(condition)


def _cards(driver) -> list:
    return driver.find_elements(_by().CSS_SELECTOR, "article.card")


def _card_ids(driver) -> list[int]:
    return [int(card.get_attribute("data-anime-id")) for card in _cards(driver)]


def _path(driver) -> str:
    """The address bar without scheme and host: path, query and fragment."""
    return re.sub(r"^https?://[^/]+", "", driver.current_url)


def _open(driver, url: str) -> None:
    driver.get_log("browser")  # drain: a page an earlier test opened on purpose with a 404 must not count here
    driver.get(url)


def _assert_no_console_errors(driver) -> None:
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"browser console errors (a CSP violation, a failed fetch or a JS error): {errors}"


def _scan(driver, name: str, width: str) -> None:
    """Screenshot the page, run axe-core on it, record every violation, and fail on a serious or critical one."""
    OUTPUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUTPUT / f"browser_{name}_{width}.png"))
    driver.execute_script(driver.axe_source)
    outcome = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        "  .then(results => done({violations: results.violations}))"
        "  .catch(error => done({error: String(error)}));")
    assert "error" not in outcome, f"axe-core failed on {name}: {outcome.get('error')}"
    violations = [{"id": v["id"], "impact": v["impact"], "help": v["help"], "helpUrl": v["helpUrl"],
                   "targets": [node["target"] for node in v["nodes"]][:10]} for v in outcome["violations"]]
    AXE_OUTPUT.mkdir(parents=True, exist_ok=True)
    (AXE_OUTPUT / f"{name}_{width}.json").write_text(json.dumps({"url": driver.current_url,
                                                                   "violations": violations}, indent=2))
    driver.axe_report[f"{name}_{width}"] = {"url": _path(driver),
                                            "violations": {v["id"]: v["impact"] for v in violations}}
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"axe-core found serious or critical violations on {name} at {width} width:\n" + \
        "\n".join(f"- {v['impact']} {v['id']}: {v['help']} at {v['targets']}" for v in blocking)


def _write_axe_summary(report: dict) -> None:
    if not report:
        return
    AXE_OUTPUT.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for page in report.values():
        for impact in page["violations"].values():
            counts[impact] = counts.get(impact, 0) + 1
    (AXE_OUTPUT / "summary.json").write_text(json.dumps({"pages_scanned": len(report), "violations_by_impact": counts,
                                                         "pages": report}, indent=2))


def _pick_suggestion(driver, input_id: str, text: str, expected_title: str) -> None:
    """Type into a suggestion box and click the suggestion whose title is ``expected_title``."""
    box = driver.find_element(_by().ID, input_id)
    box.clear()
    box.send_keys(text)
    selector = f"#{box.get_attribute('aria-controls')} li[role=option]"
    _wait(driver, lambda d: any(expected_title in option.text
                                for option in d.find_elements(_by().CSS_SELECTOR, selector)))
    option = next(o for o in driver.find_elements(_by().CSS_SELECTOR, selector) if expected_title in o.text)
    option.click()


def _api(server: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _in_view(driver, element_id: str) -> bool:
    """The element's top comes on screen (after a submit, the results are what the visitor sees), within
    WAIT_SECONDS: the browser scrolls to the anchor as the page settles, later on a busy machine."""
    from selenium.common.exceptions import TimeoutException

    try:
        return bool(_wait(driver, lambda d: d.execute_script(
            "const box = document.getElementById(arguments[0]).getBoundingClientRect();"
            "return box.top >= -1 && box.top < window.innerHeight * 0.6;", element_id)))
    except TimeoutException:
        return False


def _first_card_in_view(driver) -> bool:
    return driver.execute_script(
        "const card = document.querySelector('article.card');"
        "return !!card && card.getBoundingClientRect().top < window.innerHeight - 80;")


def _options_open(driver) -> bool:
    return driver.execute_script("return document.querySelector('details.options').open;")


def _submit_user_form(driver) -> None:
    driver.find_element(_by().CSS_SELECTOR, "#user-form button[type=submit]").click()


def _path_of(link) -> str:
    return re.sub(r"^https?://[^/]+", "", link.get_attribute("href"))


def _top(driver, element) -> float:
    return driver.execute_script("return arguments[0].getBoundingClientRect().top + window.scrollY;", element)


def _fits_the_width(driver) -> bool:
    """Nothing is wider than the window: no sideways scrolling, and on a phone no zooming out to fit (which would
    also move every tap off its target)."""
    return driver.execute_script("const page = document.documentElement; return page.scrollWidth <= page.clientWidth;")


def _upload(driver, path: Path) -> None:
    """Choose ``path`` in the import form's file input, as the file picker would, and send the form."""
    driver.find_element(_by().ID, "list-file").send_keys(str(path.resolve()))
    driver.find_element(_by().ID, "import-submit").click()


# ---------------------------------------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------------------------------------
def test_home_page(server: str, browser, width: str) -> None:
    _open(browser, server + "/")
    assert browser.find_element(_by().TAG_NAME, "h1").text == "Find your next anime"
    assert browser.find_element(_by().ID, "random-user").get_attribute("href").endswith("/users/random")
    nav = browser.find_elements(_by().CSS_SELECTOR, "nav.site-nav a")
    assert [(link.text, _path_of(link)) for link in nav] == [("Your list", "/import"), ("Favourites", "/favourites")]
    assert not _options_open(browser)
    _scan(browser, "home", width)
    _assert_no_console_errors(browser)


def test_user_form_lands_on_the_users_address_with_the_results_in_view(server: str, browser, width: str) -> None:
    _open(browser, server + "/")
    browser.find_element(_by().ID, "userID").send_keys(str(TEST_USER))
    _submit_user_form(browser)
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert _path(browser) == f"/users/{TEST_USER}#results"  # bookmarkable, shareable, reloadable
    assert _in_view(browser, "results") and _first_card_in_view(browser)
    assert set(_card_ids(browser)[:2]) == {5, 20}  # the two group-A anime user 1001 has not seen
    assert "liked by" in browser.find_element(_by().CSS_SELECTOR, "article.card .card-reason").text
    _scan(browser, "user_recommendations", width)
    _assert_no_console_errors(browser)


def test_the_users_address_shows_what_the_api_recommends(server: str, browser, width: str) -> None:
    api = _api(server, f"/api/users/{TEST_USER}/recommendations")["recommendations"]
    _open(browser, f"{server}/users/{TEST_USER}")
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert _card_ids(browser) == [item["anime_id"] for item in api]
    with_options = _api(server, f"/api/users/{TEST_USER}/recommendations?user_weight=1&content_weight=0&type=TV")
    _open(browser, f"{server}/users/{TEST_USER}?user_weight=1&content_weight=0&type=TV")
    assert _card_ids(browser) == [item["anime_id"] for item in with_options["recommendations"]]
    assert browser.find_element(_by().CSS_SELECTOR, "details.options summary").text.endswith("1 filter set")
    _assert_no_console_errors(browser)


def test_show_more_without_retyping(server: str, browser, width: str) -> None:
    _open(browser, f"{server}/users/{TEST_USER}?n=3")
    assert len(_cards(browser)) == 3
    browser.find_element(_by().LINK_TEXT, "Show more").click()
    _wait(browser, lambda d: len(_cards(d)) > 3)
    assert _path(browser) == f"/users/{TEST_USER}?n=13#result-4"
    assert len(_cards(browser)) == 6  # everything user 1001 has not seen
    assert _in_view(browser, "result-4"), "the page lands on the first new card"
    assert not browser.find_elements(_by().LINK_TEXT, "Show more")
    _assert_no_console_errors(browser)


def test_unknown_user_is_offered_a_random_user_and_the_favourites(server: str, browser, width: str) -> None:
    _open(browser, server + "/users/424242")
    message = browser.find_element(_by().CSS_SELECTOR, ".message.error")
    assert "We don't know that user ID" in message.text and "Pick a few anime you liked" in message.text
    assert message.find_element(_by().LINK_TEXT, "Pick a few anime you liked →").get_attribute("href").endswith(
        "/favourites")
    _scan(browser, "unknown_user", width)
    browser.get_log("browser")  # the 404 of the page itself, on purpose
    message.find_element(_by().LINK_TEXT, "Try a random user").click()
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert re.fullmatch(r"/users/\d+#results", _path(browser))
    assert _in_view(browser, "results")
    _assert_no_console_errors(browser)


def test_the_options_panel_stays_as_the_person_left_it(server: str, browser, width: str) -> None:
    _open(browser, server + "/")
    assert not _options_open(browser)
    browser.find_element(_by().ID, "userID").send_keys(str(TEST_USER))
    _submit_user_form(browser)
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert not _options_open(browser), "a submit without touching the options must not open them"
    assert _in_view(browser, "results")
    browser.find_element(_by().CSS_SELECTOR, "details.options summary").click()  # open it, then submit again
    _submit_user_form(browser)
    _wait(browser, lambda d: len(_cards(d)) > 0 and d.execute_script("return document.readyState") == "complete")
    assert _options_open(browser) and _in_view(browser, "results")
    _scan(browser, "user_options_open", width)
    browser.find_element(_by().CSS_SELECTOR, "details.options summary").click()  # and closed again
    _submit_user_form(browser)
    _wait(browser, lambda d: len(_cards(d)) > 0 and d.execute_script("return document.readyState") == "complete")
    assert not _options_open(browser)
    _assert_no_console_errors(browser)


def test_bad_options_name_the_field_as_labelled(server: str, browser, width: str) -> None:
    _open(browser, f"{server}/users/{TEST_USER}?user_weight=0&content_weight=0")
    message = browser.find_element(_by().CSS_SELECTOR, ".message.error").text
    assert "Similar users weight and Similar anime weight cannot both be 0" in message
    assert _options_open(browser), "the fields to fix are shown"
    _scan(browser, "bad_options", width)


# ---------------------------------------------------------------------------------------------------------
# Anime, search, errors
# ---------------------------------------------------------------------------------------------------------
def test_search_suggestions_lead_to_an_anime_page_with_similar_anime(server: str, browser, width: str) -> None:
    _open(browser, server + "/")
    _pick_suggestion(browser, "site-search-q", "bebop", "Cowboy Bebop")
    _wait(browser, lambda d: d.current_url.endswith("/anime/1") and len(_cards(d)) > 0)
    assert browser.find_element(_by().TAG_NAME, "h1").text == "Cowboy Bebop"
    assert 1 not in _card_ids(browser)
    assert set(_card_ids(browser)[:5]) == {5, 6, 20, 21, 30}  # the rest of its group comes first
    _scan(browser, "similar_anime", width)
    _assert_no_console_errors(browser)


def test_a_never_rated_title_has_its_page_and_similar_anime(catalogue_server: str, browser, width: str) -> None:
    _open(browser, catalogue_server + "/anime/38000")
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert "Kimetsu no Yaiba" in browser.find_element(_by().TAG_NAME, "h1").text
    assert "not in our training data" in browser.find_element(_by().TAG_NAME, "main").text
    ids = _card_ids(browser)
    assert 38000 not in ids and 40748 in ids  # Jujutsu Kaisen, never rated either, found by content alone
    _scan(browser, "never_rated_anime", width)
    _assert_no_console_errors(browser)


def test_posters_fall_back_to_their_placeholder_and_the_policy_allows_only_the_cdn(server: str, browser,
                                                                                  width: str) -> None:
    """A poster that fails to load leaves its placeholder (initials on a colour of the first genre) in view.
    MyAnimeList's CDN is allowed by the Content-Security-Policy (this machine cannot reach it: the load fails
    for the network, not for the policy); another host is refused by the policy."""
    _open(browser, server + "/anime/1")
    placeholder = browser.find_element(_by().CSS_SELECTOR, ".anime-detail .poster")
    assert placeholder.find_element(_by().CLASS_NAME, "poster-initials").text == "CB"
    assert re.search(r"\bph-\d+\b", placeholder.get_attribute("class"))
    posters = browser.find_elements(_by().CSS_SELECTOR, "article.card .poster")[:2]
    for poster, url in zip(posters, ["https://cdn.myanimelist.net/images/anime/4/19644.jpg",
                                     "https://images.example.org/poster.jpg"], strict=True):
        browser.execute_script("const image = document.createElement('img'); image.alt = '';"
                               "arguments[0].appendChild(image); image.src = arguments[1];", poster, url)
    _wait(browser, lambda d: all("failed" in p.get_attribute("class") for p in posters))
    assert all(p.find_element(_by().CLASS_NAME, "poster-initials").is_displayed() for p in posters)
    log = [entry["message"] for entry in browser.get_log("browser")]
    refused = [line for line in log if "Content Security Policy" in line]
    assert any("images.example.org" in line for line in refused), log
    assert not any("image 'https://cdn.myanimelist.net" in line for line in refused), refused


def test_unknown_anime_has_a_heading_and_a_way_forward(server: str, browser, width: str) -> None:
    _open(browser, server + "/anime/999")
    assert browser.find_element(_by().TAG_NAME, "h1").text == "We couldn't find that anime"
    assert browser.find_element(_by().ID, "anime-search-q").is_displayed()
    assert browser.find_element(_by().PARTIAL_LINK_TEXT, "Home").get_attribute("href").rstrip("/") == server
    assert "/api" not in browser.page_source
    _scan(browser, "unknown_anime", width)
    box = browser.find_element(_by().ID, "anime-search-q")
    box.send_keys("bebop")
    box.submit()
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert _path(browser) == "/search?q=bebop#results" and _in_view(browser, "results")


def test_search_page_by_its_address_says_the_total(server: str, browser, width: str) -> None:
    api = _api(server, "/api/anime/search?q=o&limit=20")
    _open(browser, server + "/search?q=o")
    assert browser.find_element(_by().ID, "results-heading").text == f"{api['total']} titles match “o”"
    assert _card_ids(browser) == [item["anime_id"] for item in api["results"]]
    _scan(browser, "search", width)
    _open(browser, server + "/search")
    assert "Type part of a title" in browser.find_element(_by().CSS_SELECTOR, ".message.info").text
    _scan(browser, "search_empty", width)
    _assert_no_console_errors(browser)


def test_not_found_page_has_a_heading_and_a_way_forward(server: str, browser, width: str) -> None:
    _open(browser, server + "/no-such-page")
    assert browser.find_element(_by().TAG_NAME, "h1").text == "We couldn't find that page"
    assert browser.find_element(_by().ID, "error-search-q").is_displayed()
    assert browser.find_element(_by().PARTIAL_LINK_TEXT, "Home").is_displayed()
    assert "/api" not in browser.page_source
    _scan(browser, "not_found", width)


# ---------------------------------------------------------------------------------------------------------
# Favourites
# ---------------------------------------------------------------------------------------------------------
def test_favourites_picker_lands_on_a_shareable_address(server: str, browser, width: str) -> None:
    _open(browser, server + "/favourites")
    submit = browser.find_element(_by().ID, "favourites-submit")
    assert not submit.is_enabled()  # nothing picked yet
    _scan(browser, "favourites_empty", width)
    _pick_suggestion(browser, "favourite-q", "toradora", "Toradora!")
    _pick_suggestion(browser, "favourite-q", "clannad", "Clannad")
    _pick_suggestion(browser, "favourite-q", "toradora", "Toradora!")  # again: said, not silently dropped
    note = browser.find_element(_by().ID, "picked-note").text
    assert note == "Toradora! is already in your picks: each anime counts once."
    picked = browser.find_elements(_by().CSS_SELECTOR, "#picked li")
    assert [chip.get_attribute("data-anime-id") for chip in picked] == ["102", "101"]
    browser.find_element(_by().ID, "favourites-submit").click()
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert _path(browser) == "/favourites?liked=102,101#results"
    assert _in_view(browser, "results") and _first_card_in_view(browser)
    assert set(_card_ids(browser)[:4]) == {103, 104, 105, 106}  # the rest of the romance / slice-of-life group
    assert "which you liked" in browser.page_source
    _scan(browser, "favourites", width)
    _assert_no_console_errors(browser)


def test_enter_in_the_picker_takes_the_first_result_for_what_is_typed(real_server: str, browser, width: str) -> None:
    """Typed and Enter at once, before any suggestion is on show: the first result of the same search, the TV series
    (not the 2018 ONA that an exact title match used to put first); a fan's spelling finds the show too."""
    from selenium.webdriver.common.keys import Keys
    _open(browser, real_server + "/favourites")
    box = browser.find_element(_by().ID, "favourite-q")
    for text, expected in (("jujutsu kaisen", "40748"), ("steins gate", "9253"), ("fma", "5114")):
        box.send_keys(text + Keys.ENTER)
        _wait(browser, lambda d, expected=expected: expected in [
            chip.get_attribute("data-anime-id") for chip in d.find_elements(_by().CSS_SELECTOR, "#picked li")])
    picked = [chip.get_attribute("data-anime-id") for chip in browser.find_elements(_by().CSS_SELECTOR, "#picked li")]
    assert picked == ["40748", "9253", "5114"]
    _scan(browser, "favourites_real_catalogue", width)
    _assert_no_console_errors(browser)


def test_the_adult_choice_is_a_checkbox_the_pages_remember(real_server: str, browser, width: str) -> None:
    _open(browser, real_server + "/search?q=taimanin+asagi")
    assert "3479" not in [str(anime_id) for anime_id in _card_ids(browser)]
    box = browser.find_element(_by().CSS_SELECTOR, "main form.search-form input[name=include_adult][type=checkbox]")
    assert not box.is_selected()
    box.click()
    browser.find_element(_by().CSS_SELECTOR, "main form.search-form button[type=submit]").click()
    _wait(browser, lambda d: 3479 in _card_ids(d))
    _open(browser, real_server + "/anime/3479")  # another page, the choice remembered
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert browser.find_element(_by().CSS_SELECTOR, "input[name=include_adult][type=checkbox]").is_selected()
    _scan(browser, "adult_opt_in", width)
    _assert_no_console_errors(browser)


def test_the_favourites_address_shows_what_the_api_recommends(server: str, browser, width: str) -> None:
    api = _api(server, "/api/recommendations", {"liked": [1, 20]})["recommendations"]
    _open(browser, server + "/favourites?liked=1,20")
    assert _card_ids(browser) == [item["anime_id"] for item in api]
    chips = browser.find_elements(_by().CSS_SELECTOR, "#picked li")
    assert [chip.get_attribute("data-anime-id") for chip in chips] == ["1", "20"]  # the picks stay picked
    _open(browser, server + "/favourites?liked=1,20,1")
    assert "You picked Cowboy Bebop more than once" in browser.find_element(_by().CSS_SELECTOR, ".note").text
    _scan(browser, "favourites_repeated", width)
    _assert_no_console_errors(browser)


def test_the_home_page_leads_with_the_two_ways_in(server: str, browser, width: str) -> None:
    _open(browser, server + "/")
    paths = browser.find_elements(_by().CSS_SELECTOR, "main ul.paths a.path")
    assert [(link.find_element(_by().TAG_NAME, "strong").text, _path_of(link)) for link in paths] == [
        ("Bring your MyAnimeList list", "/import"), ("Pick a few anime you liked", "/favourites")]
    assert all(link.is_displayed() for link in paths)
    # first in the content, above the training-data users' form, which is named as what it is
    first_links = browser.find_elements(_by().CSS_SELECTOR, "main a, main input, main button")[:2]
    assert first_links == paths
    heading = browser.find_element(_by().ID, "training-users")
    assert heading.text == "Someone in our training data?"
    assert _top(browser, paths[-1]) < _top(browser, heading) < _top(browser, browser.find_element(_by().ID, "userID"))
    assert browser.find_element(_by().CSS_SELECTOR, "label[for=userID]").text == "Training-data user ID"
    paths[0].click()
    _wait(browser, lambda d: _path(d) == "/import")
    assert browser.find_element(_by().TAG_NAME, "h1").text == "Bring your MyAnimeList list"


# ---------------------------------------------------------------------------------------------------------
# Bring your own list
# ---------------------------------------------------------------------------------------------------------
def test_import_page(server: str, browser, width: str) -> None:
    _open(browser, server + "/import")
    assert browser.find_element(_by().TAG_NAME, "h1").text == "Bring your MyAnimeList list"
    drop = browser.find_element(_by().ID, "list-drop")
    chooser = drop.find_element(_by().ID, "list-file")
    assert chooser.is_displayed()
    assert (chooser.get_attribute("type"), chooser.get_attribute("name")) == ("file", "list")
    assert "never store or log it" in browser.find_element(_by().ID, "privacy-note").text
    assert browser.find_element(_by().ID, "import-submit").is_displayed()
    assert not _options_open(browser) and not browser.find_elements(_by().ID, "results")
    assert _fits_the_width(browser)
    _scan(browser, "import", width)
    _assert_no_console_errors(browser)


def test_uploading_a_myanimelist_export_shows_recommendations_and_a_link(real_server: str, browser,
                                                                         width: str) -> None:
    """The sample export (tests/fixtures/myanimelist/, an embedded-sample user's list) on the really trained model:
    the recommendations, what was read, the plan-to-watch section and the link to come back to, which works."""
    _open(browser, real_server + "/import")
    _upload(browser, MYANIMELIST / "animelist_sample.xml.gz")
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert _path(browser) == "/import#results" and _in_view(browser, "results")
    assert browser.find_element(_by().ID, "results-heading").text == "Recommended from your list"
    summary = browser.find_element(_by().ID, "import-summary").text
    assert summary.startswith("We read 243 anime from your list (8 watching, 199 completed, 5 on hold, 7 dropped, "
                              "24 plan to watch), 195 of them scored"), summary
    results = browser.find_elements(_by().CSS_SELECTOR, "#results article.card")
    planned = browser.find_elements(_by().CSS_SELECTOR, "#plan-to-watch article.card")
    assert len(results) == 10 and len(planned) == 5
    assert [card.get_attribute("id") for card in planned] == [f"plan-{k}" for k in range(1, 6)]
    assert any("because you gave" in card.text for card in results + planned)
    link = browser.find_element(_by().ID, "share-link").get_attribute("value")
    assert re.fullmatch(re.escape(real_server) + r"/favourites\?liked=\d+(,\d+){0,9}", link), link
    liked = link.split("liked=")[1].split(",")
    assert not set(liked) & {card.get_attribute("data-anime-id") for card in results + planned}
    note = browser.find_element(_by().ID, "share-note").text
    assert f"This link holds your {len(liked)} best-scored titles" in note
    assert _fits_the_width(browser)
    _scan(browser, "import_results", width)
    _assert_no_console_errors(browser)

    browser.execute_cdp_cmd("Browser.grantPermissions", {"origin": real_server,
                                                         "permissions": ["clipboardReadWrite",
                                                                         "clipboardSanitizedWrite"]})
    status = browser.find_element(_by().ID, "copy-status")
    assert status.text == ""
    copy = browser.find_element(_by().ID, "copy-link")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", copy)
    copy.click()
    _wait(browser, lambda d: status.text != "")
    assert status.text == "Copied."
    copied = browser.execute_async_script("const done = arguments[arguments.length - 1];"
                                          "navigator.clipboard.readText().then(done, error => done(String(error)));")
    assert copied == link

    browser.find_element(_by().ID, "open-link").click()
    _wait(browser, lambda d: _path(d).startswith("/favourites?liked=") and len(_cards(d)) > 0)
    assert _path(browser) == link[len(real_server):]
    picked = [chip.get_attribute("data-anime-id") for chip in browser.find_elements(_by().CSS_SELECTOR, "#picked li")]
    assert picked == liked  # the link's titles are the picks, and the favourites page recommends from them
    assert not set(liked) & {str(anime_id) for anime_id in _card_ids(browser)}
    _assert_no_console_errors(browser)


def test_a_manga_list_is_refused_on_the_page(server: str, browser, width: str) -> None:
    _open(browser, server + "/import")
    _upload(browser, MYANIMELIST / "mangalist.xml")
    message = _wait(browser, lambda d: d.find_element(_by().CSS_SELECTOR, ".message.error"))
    assert message.text.startswith("This is a manga list: export your anime list from MyAnimeList instead")
    assert not _cards(browser) and browser.find_element(_by().ID, "list-file").is_displayed()  # try again here
    _scan(browser, "import_manga", width)
    browser.get_log("browser")  # the page's own 400, on purpose


def test_a_file_dropped_on_the_zone_is_the_one_uploaded(server: str, browser, tmp_path: Path) -> None:
    """static/app.js: a file dropped on the drop zone becomes the file input's file."""
    text = make_samples.animelist_xml([make_samples.Entry(1, "Cowboy Bebop", "TV", 26, "Completed", 10, 26,
                                                          "0000-00-00", "0000-00-00")])
    _open(browser, server + "/import")
    zone = browser.find_element(_by().ID, "list-drop")
    browser.execute_script("const zone = arguments[0];"
                           "const transfer = new DataTransfer();"
                           "transfer.items.add(new File([arguments[1]], 'animelist.xml', {type: 'text/xml'}));"
                           "zone.dispatchEvent(new DragEvent('dragenter', {dataTransfer: transfer, bubbles: true,"
                           "                                                cancelable: true}));", zone, text)
    assert "dragging" in zone.get_attribute("class")
    browser.execute_script("const zone = arguments[0];"
                           "const transfer = new DataTransfer();"
                           "transfer.items.add(new File([arguments[1]], 'animelist.xml', {type: 'text/xml'}));"
                           "zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true,"
                           "                                           cancelable: true}));", zone, text)
    assert "dragging" not in zone.get_attribute("class")
    assert browser.execute_script("return document.getElementById('list-file').files[0].name;") == "animelist.xml"
    browser.find_element(_by().ID, "import-submit").click()
    _wait(browser, lambda d: len(_cards(d)) > 0)
    assert set(_card_ids(browser)[:5]) == set(GROUP_A_IDS) - {1}  # the tiny model: Cowboy Bebop's group, not itself
    _assert_no_console_errors(browser)


# ---------------------------------------------------------------------------------------------------------
# Keyboard and dark mode (desktop only: neither depends on the width)
# ---------------------------------------------------------------------------------------------------------
def test_keyboard_focus_follows_the_page_and_is_visible(server: str, browser) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    _open(browser, server + "/")
    order = []
    for _ in range(12):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        order.append(browser.execute_script(
            "const e = document.activeElement; const style = getComputedStyle(e);"
            "return [e.id || e.textContent.replace(/\\s+/g, ' ').trim().slice(0, 30), style.outlineStyle !== 'none' || "
            "style.boxShadow !== 'none'];"))
    names = [name for name, _ in order]
    # the header, then the two ways in, then the training-data users' form: the order they are seen in
    assert names == ["Skip to the main content", "Anime recommender", "Your list", "Favourites", "site-search-q",
                     "Search", "Bring your MyAnimeList list Up", "Pick a few anime you liked Typ", "userID",
                     "Recommend", "random-user", "Options and filters"], names
    assert all(visible for _, visible in order), f"focus must be visible on every stop: {order}"
    # the skip link takes the keyboard straight to the content
    _open(browser, server + "/")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert browser.execute_script("return document.activeElement.id") == "content"


@pytest.mark.parametrize("path, name", [("/", "home"), (f"/users/{TEST_USER}", "user_recommendations"),
                                        ("/favourites?liked=101", "favourites"), ("/import", "import")])
def test_dark_mode_passes_the_scan_too(server: str, browser, path: str, name: str) -> None:
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        _open(browser, server + path)
        _scan(browser, f"{name}_dark", "desktop")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
