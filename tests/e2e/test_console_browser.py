"""The web console in a real browser: Debian's headless Chromium driven by Selenium,
against the console served by the daemon's HTTP server. Sign in, acknowledge with a
note, add and end a silence; every page at 390 px (a phone) and 1280 px wide without
the page scrolling sideways. Skips without chromium and chromedriver; fails under
``CI=true`` (./scripts/test installs them)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_api, test_console
from tests.integration.test_console import TOKEN, Served

pytestmark = pytest.mark.e2e
template = test_api.template  # a state file with one open incident (Acme), and its id
served = test_console.served  # the console on a copy of it, signed in with TOKEN


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


def walk(chrome: Any, base: str, incident: str) -> None:
    """The browser's side, in a thread: the whole visit at 390 px, then each page at
    1280 px."""
    from selenium.webdriver.common.by import By

    chrome.set_window_size(390, 844)
    chrome.get(f"{base}/")
    assert "/login" in chrome.current_url  # a session is needed
    assert fits(chrome)
    chrome.find_element(By.NAME, "name").send_keys("Dana Lee")
    chrome.find_element(By.NAME, "token").send_keys(TOKEN)
    press(chrome, chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    assert chrome.current_url == f"{base}/"
    assert "not acknowledged" in chrome.page_source
    assert fits(chrome)
    press(chrome, chrome.find_element(By.CSS_SELECTOR, f'a[href="/incidents/{incident}"]'))
    assert "not yet acknowledged" in chrome.find_element(By.CLASS_NAME, "sentence").text
    assert fits(chrome)
    chrome.find_element(By.NAME, "note").send_keys("holding statement posted")
    press(chrome, chrome.find_element(By.XPATH, "//button[starts-with(., 'Acknowledge')]"))
    sentence = chrome.find_element(By.CLASS_NAME, "sentence").text
    assert "acknowledged by Dana Lee" in sentence
    assert "holding statement posted" in chrome.page_source
    assert fits(chrome)
    chrome.get(f"{base}/silences")
    chrome.find_element(By.TAG_NAME, "summary").click()
    chrome.find_element(By.CSS_SELECTOR, "select[name=brand] option[value=''] ~ option").click()
    chrome.find_element(By.NAME, "comment").send_keys("statement out, expect noise")
    press(chrome, chrome.find_element(By.XPATH, "//button[.='Silence']"))
    assert "statement out, expect noise" in chrome.page_source
    assert fits(chrome)
    press(chrome, chrome.find_element(By.XPATH, "//button[.='End now']"))
    assert "End now" not in chrome.page_source
    for width in (390, 1280):
        chrome.set_window_size(width, 900)
        pages = ("/", f"/incidents/{incident}", "/mentions", "/silences", "/sources")
        for path in (*pages, "/preview?query=acme+NOT+hiring&brand=Acme"):
            chrome.get(base + path)
            assert fits(chrome), (width, path)


async def test_sign_in_acknowledge_and_silence_in_a_browser_at_phone_width(
    browser: Any, served: Served
) -> None:
    await asyncio.to_thread(walk, browser, served.base, served.incident)


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
