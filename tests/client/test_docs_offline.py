"""/docs and /redoc render in a browser with no network: their scripts come from the server itself."""

from __future__ import annotations

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.client.conftest import LiveServer
from tests.client.test_report_html import browser  # noqa: F401  (the headless Chromium fixture)


def _heading(driver: webdriver.Chrome, url: str, selector: str) -> str:
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def test_swagger_ui_renders_offline(live_server: LiveServer, browser: webdriver.Chrome) -> None:  # noqa: F811
    title = _heading(browser, f"{live_server.url}/docs", ".swagger-ui .info .title")

    assert "ModelPress" in title
    scripts = [s.get_attribute("src") for s in browser.find_elements(By.CSS_SELECTOR, "script[src]")]
    assert scripts and all(str(src).startswith(live_server.url) for src in scripts)


def test_redoc_renders_offline(live_server: LiveServer, browser: webdriver.Chrome) -> None:  # noqa: F811
    assert "ModelPress" in _heading(browser, f"{live_server.url}/redoc", "h1")
