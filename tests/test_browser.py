"""The pages in a real headless Chromium against the app under real gunicorn, on the tiny artifact set.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser-deps``); skipped with the reason if absent.
Screenshots go to tests/output/ (git-ignored).
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.servers import gunicorn

pytestmark = [pytest.mark.browser, pytest.mark.integration]

OUTPUT = Path(__file__).resolve().parent / "output"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 15


def _chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(tiny_artifacts_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real thing: gunicorn with gunicorn.conf.py, on a free local port, serving the model (/readyz 200)."""
    log_path = tmp_path_factory.mktemp("browser-server") / "gunicorn.log"
    with gunicorn(tiny_artifacts_root, log_path, timeout=60, ready_path="/readyz") as live:
        yield live.url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
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
                     "--disable-sync", "--window-size=1280,1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, WAIT_SECONDS).until(condition)


def _cards(driver) -> list:
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, "article.card")


def _card_ids(driver) -> list[int]:
    return [int(card.get_attribute("data-anime-id")) for card in _cards(driver)]


def _screenshot(driver, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUTPUT / f"browser_{name}.png"))


def _pick_suggestion(driver, input_id: str, text: str, expected_title: str) -> None:
    """Type into a suggestion box and click the suggestion whose title is ``expected_title``."""
    from selenium.webdriver.common.by import By
    box = driver.find_element(By.ID, input_id)
    box.clear()
    box.send_keys(text)
    list_id = box.get_attribute("aria-controls")
    selector = f"#{list_id} li[role=option]"
    _wait(driver, lambda d: any(expected_title in option.text for option in d.find_elements(By.CSS_SELECTOR, selector)))
    option = next(o for o in driver.find_elements(By.CSS_SELECTOR, selector) if expected_title in o.text)
    option.click()


def _open(driver, url: str) -> None:
    driver.get_log("browser")  # drain: a page an earlier test opened on purpose with a 404 must not count here
    driver.get(url)


def _assert_no_console_errors(driver) -> None:
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"browser console errors (a CSP violation, a failed fetch or a JS error): {errors}"


def test_user_id_form_shows_recommendation_cards(server: str, browser) -> None:
    from selenium.webdriver.common.by import By
    _open(browser, server + "/")
    browser.find_element(By.ID, "userID").send_keys("1001")
    browser.find_element(By.CSS_SELECTOR, "#user-form button[type=submit]").click()
    _wait(browser, lambda d: len(_cards(d)) > 0)
    _screenshot(browser, "user_recommendations")
    ids = _card_ids(browser)
    assert set(ids[:2]) == {5, 20}  # the two group-A anime user 1001 has not seen
    assert "liked by" in browser.find_element(By.CSS_SELECTOR, "article.card .card-reason").text
    _assert_no_console_errors(browser)


def test_unknown_user_gets_an_inline_message_pointing_to_favourites(server: str, browser) -> None:
    from selenium.webdriver.common.by import By
    _open(browser, server + "/")
    browser.find_element(By.ID, "userID").send_keys("424242")
    browser.find_element(By.CSS_SELECTOR, "#user-form button[type=submit]").click()
    message = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".message.error"))
    assert "Pick a few anime you liked" in message.text
    assert message.find_element(By.TAG_NAME, "a").get_attribute("href").endswith("/favourites")


def test_search_suggestions_lead_to_an_anime_page_with_similar_anime(server: str, browser) -> None:
    from selenium.webdriver.common.by import By
    _open(browser, server + "/")
    _pick_suggestion(browser, "site-search-q", "bebop", "Cowboy Bebop")
    _wait(browser, lambda d: d.current_url.endswith("/anime/1") and len(_cards(d)) > 0)
    _screenshot(browser, "similar_anime")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Cowboy Bebop"
    assert 1 not in _card_ids(browser)
    assert set(_card_ids(browser)[:5]) == {5, 6, 20, 21, 30}  # the rest of its group comes first
    _assert_no_console_errors(browser)


def test_favourites_picker_gives_recommendations(server: str, browser) -> None:
    from selenium.webdriver.common.by import By
    _open(browser, server + "/favourites")
    submit = browser.find_element(By.ID, "favourites-submit")
    assert not submit.is_enabled()  # nothing picked yet
    _pick_suggestion(browser, "favourite-q", "toradora", "Toradora!")
    _pick_suggestion(browser, "favourite-q", "clannad", "Clannad")
    picked = browser.find_elements(By.CSS_SELECTOR, "#picked li")
    assert [chip.get_attribute("data-anime-id") for chip in picked] == ["102", "101"]
    browser.find_element(By.ID, "favourites-submit").click()
    _wait(browser, lambda d: len(_cards(d)) > 0)
    _screenshot(browser, "favourites")
    assert set(_card_ids(browser)[:4]) == {103, 104, 105, 106}  # the rest of the romance / slice-of-life group
    assert "which you liked" in browser.page_source
    _assert_no_console_errors(browser)
