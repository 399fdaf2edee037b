"""Headless Debian Chromium driven by Playwright against the real frontends and tritonserver.

`frontend_server` (tests/conftest.py) is shared by the session; tests that stop a server get
their own frontends process (`own_frontend`) against the same tritonserver.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.browser.chromium import launch, open_page
from tests.browser.servers import OwnFrontend
from tests.servers import free_port


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """Per module: Playwright's sync API keeps an event loop running in this thread while it is open,
    which would break asyncio.run() in any test that runs after it."""
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Chromium whose fake camera (a 640x480 test pattern) is allowed without a prompt."""
    browser = launch(playwright_driver)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context per test; an uncaught script error on the page fails the test."""
    page, errors = open_page(browser)
    yield page
    page.context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def own_frontend(triton_server) -> Iterator[OwnFrontend]:
    frontend = OwnFrontend(triton_server, free_port())
    frontend.start()
    yield frontend
    frontend.stop()
