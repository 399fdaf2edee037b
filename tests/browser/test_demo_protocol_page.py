"""A page written to StreamDiffusion's demo protocol, in headless Chromium with its fake camera, served
from the frontends' own origin: it connects to the legacy route, sends frames and shows results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect

from tests.browser.chromium import BASE_ARGS, CAMERA_ALLOWED, CHROMIUM, open_page, screenshot

pytestmark = pytest.mark.browser
PAGE = Path(__file__).parent / "pages" / "demo_protocol.html"


@pytest.fixture
def demo_page(playwright_driver: Playwright) -> Iterator[Page]:
    """The page is handed to Chromium by the test (no server address), which Chromium's local-network
    checks would take for a public page calling 127.0.0.1; the real demo pages come from their server."""
    args = [*BASE_ARGS, CAMERA_ALLOWED, "--disable-features=LocalNetworkAccessChecks"]
    browser: Browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
    page, errors = open_page(browser)
    yield page
    browser.close()
    assert not errors, f"script errors on the page: {errors}"


def test_a_demo_protocol_page_streams_results(demo_page: Page, frontend_server) -> None:
    page = demo_page
    url = f"{frontend_server.base_url}/demo-protocol-test.html"

    def serve(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=PAGE.read_text())

    page.route(url, serve)
    page.goto(url)
    expect(page.locator("#status")).not_to_have_text("starting", timeout=60_000)
    page.wait_for_function("Number(document.getElementById('sent').textContent) >= 10", timeout=120_000)
    page.wait_for_function(
        "document.getElementById('result').complete && document.getElementById('result').naturalWidth > 0",
        timeout=60_000,
    )
    assert page.locator("#errors").text_content() == "0"
    size = frontend_server.triton.settings.pipeline.width
    assert page.evaluate("document.getElementById('result').naturalWidth") == size
    screenshot(page, "demo-protocol-page")
