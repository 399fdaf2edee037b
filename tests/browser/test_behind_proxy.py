"""The realtime page in Chromium through the production topology (sdtools/topology.py): nginx
terminating TLS in front of two frontends and two tritonservers. The page's WebSocket and its
MJPEG stream must both pass the proxy and meet in one frontend.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from sdtools.topology import NGINX, Topology, nginx_available
from tests.browser.chromium import open_page, screenshot
from tests.browser.pictures import results_count, shown
from tests.browser.traffic import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    assert nginx_available(), f"{NGINX} or openssl is missing: scripts/setup.sh --dev installs Debian's nginx-light"
    topology = Topology(tmp_path_factory.mktemp("proxied"), say=lambda _: None)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


def test_the_realtime_page_streams_through_nginx_over_tls(browser: Browser, topology: Topology) -> None:
    # the certificate is self-signed for 127.0.0.1: Chromium is told to accept it, the page stays secure
    page, errors = open_page(browser, ignore_https_errors=True)
    page.goto(f"{topology.base_url}/realtime")
    assert page.evaluate("window.isSecureContext")
    expect(page.locator("#start")).to_be_enabled(timeout=60_000)
    page.click("#start")
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    wait_until(page, lambda: results_count(page) >= 3, "3 generated frames through the proxy")
    first = wait_until(page, lambda: shown(page), "a decoded output picture")
    wait_until(page, lambda: (s := shown(page)) and s.hash != first.hash, "the output picture to change")
    screenshot(page, "realtime-behind-nginx")
    assert errors == []
    page.context.close()
