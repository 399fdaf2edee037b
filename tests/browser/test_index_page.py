"""The landing page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.chromium import screenshot

pytestmark = pytest.mark.browser


def test_index_links_both_modes(page: Page, frontend_server) -> None:
    page.goto(frontend_server.base_url)
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    expect(page.locator("#card-realtime")).to_have_attribute("href", "/realtime")
    expect(page.locator("#card-canvas")).to_have_attribute("href", "/canvas")
    expect(page.locator("#card-canvas [data-status]")).to_contain_text("Online")
    screenshot(page, "index")
    page.click("#card-canvas")
    expect(page).to_have_url(f"{frontend_server.base_url}/canvas")
