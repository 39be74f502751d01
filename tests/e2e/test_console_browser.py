"""The web console in a real browser: Debian's headless Chromium driven by Selenium,
against the console served by the daemon's HTTP server. Sign in, acknowledge with a
note, read the live report (its chart and tables), see a note added elsewhere appear
without a reload, add and end a silence; every page at 390 px (a phone) and 1280 px
wide without the page scrolling sideways. Skips without chromium and chromedriver;
fails under ``CI=true`` (./scripts/test installs them)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_api
from tests.integration.test_console import TOKEN
from tests.support.daemon import Daemon

pytestmark = pytest.mark.e2e
template = test_api.template  # a state file with one open incident (Acme), and its id
REFRESH = 2
"""LISTENER_CONSOLE_REFRESH of the daemon under test: its live pages update this often."""


def _binaries() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver are needed under CI=true (./scripts/test)")
        pytest.skip("no chromium/chromedriver (apt-get install chromium chromium-driver)")
    return chromium, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver = _binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(20)
    yield chrome
    chrome.quit()


def fits(chrome: Any) -> bool:
    """Nothing makes the page wider than the window (tables scroll inside their box)."""
    return bool(
        chrome.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    )


def press(chrome: Any, button: Any) -> None:
    """Click ``button`` and wait for the page it loads (a form's answer)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = chrome.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(chrome, 10).until(expected_conditions.staleness_of(old))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    """A real `listener run` with the API token, and the id of the incident it opened
    from a feed that turned angry (after its first poll, a backfill)."""
    from tests.e2e.test_daemon import ANGRY, RULES, rss
    from tests.support.feed_server import FeedServer, Route

    with FeedServer() as feed:
        calm = rss([("calm", "Acme has a new logo")], age=timedelta(hours=3))
        feed.route("/feed.xml", Route(body=calm))
        config = tmp_path / "rules.yaml"
        hook = feed.url("/hook")  # the alerts' webhook: answered 404, retried; not looked at
        digests = "digests:\n  morning: {every: day, at: '08:00', route: [console]}\n"
        config.write_text(
            RULES.format(feed=feed.url("/feed.xml"), hook=hook) + digests, encoding="utf-8"
        )
        env = {"LISTENER_API_TOKEN": TOKEN, "LISTENER_CONSOLE_REFRESH": str(REFRESH)}
        running = Daemon(config, tmp_path / "state.db", env=env)
        try:
            running.wait_metric("listener_polls_total", 1, source="news", outcome="ok")
            feed.set_body("/feed.xml", rss(ANGRY))
            opened = {"rule": "negative-surge", "brand": "Acme", "kind": "opened"}
            running.wait_metric("listener_incident_events_total", 1, **opened)
            _, body = running.get("/incidents")
            yield running, json.loads(body)[0]["id"]
        finally:
            running.close()


def read(chrome: Any, by: str, value: str, timeout: float = 10) -> str:
    """The text of an element that a live update may swap while it is read."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        chrome, timeout, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
    )
    return str(wait.until(lambda d: d.find_element(by, value).text))


def chart_drawn(chrome: Any) -> bool:
    """The incident's chart has loaded (a picture, not a broken image)."""
    return bool(
        chrome.execute_script(
            "const i = document.querySelector('img.chart');"
            "return !!i && i.complete && i.naturalWidth > 1000"
        )
    )


def live_report(chrome: Any, running: Daemon, incident: str) -> None:
    """On the incident's page: the report's chart and tables; a note added elsewhere (the
    API, as another person or the CLI would) shows up without a reload, the chart is
    fetched again, and what was being typed in a form stays."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = chrome.find_element(By.CSS_SELECTOR, "[data-refresh]")
    assert box.get_attribute("data-refresh") == str(REFRESH)
    WebDriverWait(chrome, 15).until(chart_drawn)
    titles = [h.text for h in chrome.find_elements(By.TAG_NAME, "h3")]
    assert {"Severity levels", "Top stories", "Top authors", "Sources"} <= set(titles)
    assert "1 + 7 copies" in read(chrome, By.ID, "live-report")
    assert fits(chrome)
    first = chrome.find_element(By.CSS_SELECTOR, "img.chart").get_attribute("src")
    chrome.execute_script("window.__marker = 1")
    draft = chrome.find_element(By.NAME, "text")
    draft.send_keys("half-written note")  # typed, not sent, and the field keeps the focus
    status, _ = running.call(
        "POST", f"/incidents/{incident}/notes", {"by": "Sam Roe", "text": "press call 11:20"}, TOKEN
    )
    assert status == 201
    WebDriverWait(chrome, 20).until(
        lambda d: "Sam Roe: press call 11:20" in read(d, By.CLASS_NAME, "timeline")
    )
    assert chrome.execute_script("return window.__marker") == 1  # no navigation
    assert "Updated " in read(chrome, By.CSS_SELECTOR, "[data-live-status]")
    assert chrome.find_element(By.NAME, "text").get_attribute("value") == "half-written note"
    WebDriverWait(chrome, 15).until(
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "img.chart").get_attribute("src") != first
            and chart_drawn(d)
        )
    )
    assert fits(chrome)


def walk(chrome: Any, running: Daemon, incident: str) -> None:
    """The browser's side, at 390 px: sign in, the incidents, one incident (assign, note,
    acknowledge; the live report, at 1280 px too), a silence added and ended, a search, a
    query preview; then every page at 1280 px. No page is ever wider than the window."""
    from selenium.webdriver.common.by import By

    base = running.base

    def field(name: str) -> Any:
        return chrome.find_element(By.NAME, name)

    def button(text: str) -> Any:
        return chrome.find_element(By.XPATH, f"//button[starts-with(normalize-space(.), '{text}')]")

    chrome.set_window_size(390, 844)
    chrome.get(f"{base}/")
    assert "/login" in chrome.current_url  # a session is needed
    assert fits(chrome)
    field("name").send_keys("Dana Lee")
    field("token").send_keys(TOKEN)
    press(chrome, button("Sign in"))
    assert chrome.current_url == f"{base}/"
    assert "not acknowledged" in chrome.page_source
    assert fits(chrome)
    press(chrome, chrome.find_element(By.CSS_SELECTOR, f'a[href="/incidents/{incident}"]'))
    assert "not yet acknowledged" in read(chrome, By.CLASS_NAME, "sentence")
    assert fits(chrome)
    to = field("to")
    to.clear()
    to.send_keys("Eve Ng")
    press(chrome, button("Assign"))
    assert "Eve Ng" in chrome.page_source
    field("text").send_keys("holding statement posted 11:05")
    press(chrome, button("Add note"))
    field("note").send_keys("on the phone with support")
    press(chrome, button("Acknowledge"))
    assert "acknowledged by Dana Lee" in read(chrome, By.CLASS_NAME, "sentence")
    timeline = read(chrome, By.CLASS_NAME, "timeline")
    assert "Dana Lee: holding statement posted 11:05" in timeline
    assert "assigned it to Eve Ng" in timeline
    assert fits(chrome)
    live_report(chrome, running, incident)
    chrome.set_window_size(1280, 900)
    assert fits(chrome)
    assert chart_drawn(chrome)
    chrome.set_window_size(390, 844)

    chrome.get(f"{base}/silences")
    chrome.find_element(By.TAG_NAME, "summary").click()
    chrome.find_element(By.CSS_SELECTOR, "select[name=brand] option[value=''] ~ option").click()
    field("comment").send_keys("statement out, expect noise")
    press(chrome, button("Silence"))
    assert "statement out, expect noise" in chrome.page_source
    assert fits(chrome)
    press(chrome, button("End now"))
    assert "End now" not in chrome.page_source

    chrome.get(f"{base}/mentions")
    field("q").send_keys("terrible")
    press(chrome, button("Search"))
    assert chrome.page_source.count('<li class="card ') == 8
    assert fits(chrome)
    chrome.get(f"{base}/preview")
    field("query").send_keys("acme AND outage NOT logo")
    press(chrome, button("Preview"))
    assert "It matches 8 of the 9 mentions" in chrome.page_source
    assert fits(chrome)

    for width in (390, 1280):
        chrome.set_window_size(width, 900)
        pages = ("/", f"/incidents/{incident}", "/mentions", "/silences", "/sources")
        pages += ("/digests", "/digests/morning")
        for path in (*pages, "/preview?query=acme+NOT+hiring&brand=Acme"):
            chrome.get(base + path)
            assert fits(chrome), (width, path)
            if path == "/digests/morning":
                assert "Daily digest ·" in chrome.page_source


def test_a_pr_lead_works_an_incident_on_a_phone_through_the_real_daemon(
    browser: Any, daemon: tuple[Daemon, str]
) -> None:
    running, incident = daemon
    walk(browser, running, incident)
    # what the console did is the daemon's: the API and the log say so
    _, body = running.get(f"/incidents/{incident}")
    shown = json.loads(body)
    assert shown["acknowledged_by"] == "Dana Lee"
    assert shown["assignee"] == "Eve Ng"
    running.wait_log("acknowledged")


def test_the_report_file_reads_on_a_phone(
    browser: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``listener report``'s HTML at 390 px: the sentence on top, nothing wider than the
    screen (the chart keeps a readable width and scrolls inside its box, as the tables
    do)."""
    from selenium.webdriver.common.by import By

    from listener.cli import main

    path, incident = request.getfixturevalue("template")
    out = tmp_path / "report.html"
    assert main(["report", incident, "--state", str(path), "--out", str(out)]) == 0
    browser.set_window_size(390, 844)
    browser.get(out.as_uri())
    assert browser.find_element(By.CLASS_NAME, "sentence").text.startswith("Acme: ")
    assert fits(browser)
    chart = browser.find_element(By.CSS_SELECTOR, "img.chart")
    assert chart.size["width"] >= 600  # readable, not shrunk to the screen
    browser.set_window_size(1280, 900)
    browser.get(out.as_uri())
    assert fits(browser)
