"""The pages behind server.security.access_token, and under the Content-Security-Policy they are
served with: a link carrying ?token= opens a working session, the token follows the links between
pages, a page without it says what is missing, and the browser reports no CSP violation."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.chromium import open_page
from tests.browser.pictures import results_count
from tests.browser.servers import OwnFrontend
from tests.browser.test_canvas_page import settled, stroke
from tests.browser.traffic import Traffic
from tests.servers import free_port

pytestmark = pytest.mark.browser
TOKEN = secrets.token_urlsafe(24)
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}:${event.columnNumber}`;
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI} ${where} ${event.sample}`);
});
"""


@pytest.fixture
def guarded_frontend(triton_server) -> Iterator[OwnFrontend]:
    frontend = OwnFrontend(triton_server, free_port(), extra_env={"SD__SERVER__SECURITY__ACCESS_TOKEN": TOKEN})
    frontend.start()
    yield frontend
    frontend.stop()


@pytest.fixture
def watched_page(browser: Browser) -> Iterator[Page]:
    page, errors = open_page(browser)
    page.add_init_script(WATCH_CSP)
    yield page
    page.context.close()
    assert not errors, f"script errors on the page: {errors}"


def csp_violations(page: Page) -> list[str]:
    return page.evaluate("window.__cspViolations")


def test_a_link_with_the_token_opens_a_working_canvas(watched_page: Page, guarded_frontend: OwnFrontend) -> None:
    page = watched_page
    traffic = Traffic.watch(page)
    page.goto(f"{guarded_frontend.base_url}/?token={TOKEN}")
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    expect(page.locator("#card-canvas")).to_have_attribute("href", f"/canvas?token={TOKEN}")
    assert csp_violations(page) == []

    page.click("#card-canvas")
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    stroke(page, (0.2, 0.3), (0.8, 0.6))
    settled(page, traffic, at_least=1)
    assert results_count(page) == len(traffic.frames) >= 1
    assert all(f"token={TOKEN}" in socket.url for socket in traffic.sockets)
    assert csp_violations(page) == [], "the page needs nothing its Content-Security-Policy forbids"


def test_a_realtime_page_runs_under_its_security_headers(watched_page: Page, frontend_server) -> None:
    """The camera (Permissions-Policy camera=(self)), the WebSocket and blob: results, all allowed."""
    page = watched_page
    response = page.goto(f"{frontend_server.base_url}/realtime")
    assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.locator("#start").click()
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    # polled from here: wait_for_function evaluates its string in the page, which this CSP forbids
    expect(page.locator("#output")).to_have_attribute("src", re.compile(r"^blob:"), timeout=120_000)
    page.evaluate("window.__samePage = true")
    page.locator("#params input").first.press("Enter")  # a form submit must not leave the page
    page.wait_for_timeout(500)
    assert page.evaluate("window.__samePage === true"), "pressing Enter in the form reloaded the page"
    assert csp_violations(page) == []


def test_without_the_token_the_page_says_what_is_missing(watched_page: Page, guarded_frontend: OwnFrontend) -> None:
    page = watched_page
    page.goto(f"{guarded_frontend.base_url}/canvas")
    expect(page.locator("#notices")).to_contain_text("token", timeout=60_000)
    assert csp_violations(page) == []
