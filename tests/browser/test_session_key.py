"""The pages open their MJPEG streams with the session key, so they work where only the key counts
(server.security.session_address_fallback off), and a page that reconnects offers its last key."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.chromium import screenshot
from tests.browser.pictures import results_count
from tests.browser.servers import OwnFrontend
from tests.browser.test_canvas_page import open_canvas, settled, stroke
from tests.servers import free_port

pytestmark = pytest.mark.browser


@pytest.fixture
def key_only_frontend(triton_server) -> Iterator[OwnFrontend]:
    frontend = OwnFrontend(
        triton_server, free_port(), extra_env={"SD__SERVER__SECURITY__SESSION_ADDRESS_FALLBACK": "false"}
    )
    frontend.start()
    yield frontend
    frontend.stop()


def stream_requests(page: Page) -> list[str]:
    urls: list[str] = []

    def seen(request: Request) -> None:
        if "/stream/" in request.url:
            urls.append(request.url)

    page.on("request", seen)
    return urls


def test_the_canvas_page_shows_results_when_only_the_key_opens_a_stream(page: Page, key_only_frontend) -> None:
    streams = stream_requests(page)
    traffic = open_canvas(page, key_only_frontend.base_url)
    stroke(page, (0.2, 0.3), (0.8, 0.6))
    settled(page, traffic, at_least=1)
    assert results_count(page) == len(traffic.frames) >= 1
    keys = [m["session_key"] for m in traffic.received if m.get("status") == "connected"]
    assert keys and all(re.search(rf"[?&]session_key={re.escape(keys[-1])}(&|$)", url) for url in streams[-1:])
    screenshot(page, "canvas-key-only")


def test_the_realtime_page_shows_results_when_only_the_key_opens_a_stream(page: Page, key_only_frontend) -> None:
    streams = stream_requests(page)
    page.goto(f"{key_only_frontend.base_url}/realtime")
    page.locator("#start").click()
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    expect(page.locator("#output")).to_have_attribute("src", re.compile(r"^blob:"), timeout=120_000)
    assert streams and all("session_key=" in url for url in streams)


def test_a_reconnecting_page_offers_the_key_of_its_last_session(page: Page, key_only_frontend) -> None:
    """So that it may replace its own session, should the server still hold it (a network drop)."""
    traffic = open_canvas(page, key_only_frontend.base_url)
    first_key = next(m["session_key"] for m in traffic.received if m.get("status") == "connected")
    key_only_frontend.stop()
    key_only_frontend.start()
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    assert "session_key" not in traffic.sockets[0].url
    assert traffic.sockets[-1].url.endswith(f"?session_key={first_key}")
    stroke(page, (0.3, 0.2), (0.6, 0.8))
    settled(page, traffic, at_least=1)
    assert results_count(page) >= 1
