"""Both pages show the share of late pictures beside their latency, against the service's own
target (performance.target_latency_ms from /api/{mode}/settings), with the real frontends and tritonserver."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.chromium import open_page, screenshot
from tests.browser.pictures import results_count
from tests.browser.servers import OwnFrontend
from tests.browser.test_canvas_page import open_canvas, stroke
from tests.browser.test_realtime_page import start_streaming
from tests.browser.traffic import wait_until
from tests.servers import free_port

pytestmark = pytest.mark.browser


def test_realtime_shows_late_pictures_beside_fps_and_latency(page: Page, frontend_server) -> None:
    start_streaming(page, frontend_server.base_url, frames=4)
    target = page.evaluate(
        "fetch('/api/realtime/settings').then(r => r.json()).then(s => s.performance.target_latency_ms)"
    )
    box = page.locator("#stat-misses-box")
    expect(box).to_have_attribute("title", re.compile(rf"the {round(target)} ms latency target"))
    expect(page.locator("#stat-misses")).to_have_text(re.compile(r"^\d{1,3} %$"))
    expect(page.locator("#stat-fps")).not_to_have_text("–")
    # one readout row: frames per second, latency, late share side by side
    row = page.locator(".controlbar .stats dt").all_inner_texts()
    assert [label.lower() for label in row[:3]] == ["output", "latency", "late"]  # the style capitalises them


@pytest.mark.parametrize(("target_ms", "shown"), [(1, "100 %"), (600_000, "0 %")])
def test_the_late_share_follows_the_configured_target(browser: Browser, triton_server, target_ms, shown) -> None:
    """A 1 ms target cannot be met over a network; ten minutes always is."""
    env = {
        "SD__REALTIME__PERFORMANCE__TARGET_LATENCY_MS": str(target_ms),
        "SD__CANVAS__PERFORMANCE__TARGET_LATENCY_MS": str(target_ms),
    }
    frontend = OwnFrontend(triton_server, free_port(), env)
    frontend.start()
    try:
        page, errors = open_page(browser)
        start_streaming(page, frontend.base_url, frames=3)
        expect(page.locator("#stat-misses")).to_have_text(shown, timeout=30_000)
        expect(page.locator("#stat-misses-box")).to_have_attribute("data-target-ms", str(target_ms))
        screenshot(page, f"realtime-late-share-{target_ms}ms")

        canvas, _ = open_page(browser)
        open_canvas(canvas, frontend.base_url)
        stroke(canvas, (0.2, 0.3), (0.8, 0.6))
        wait_until(canvas, lambda: results_count(canvas) >= 1, "a canvas result")
        expect(canvas.locator("#stat-misses")).to_have_text(shown, timeout=30_000)
        screenshot(canvas, f"canvas-late-share-{target_ms}ms")
        assert not errors
    finally:
        frontend.stop()


def test_the_late_share_counts_recent_pictures_over_the_target(page: Page, frontend_server) -> None:
    page.goto(f"{frontend_server.base_url}/")
    shares = page.evaluate(
        """async () => {
            const { LatencyMeter } = await import('/static/results.js');
            const meter = new LatencyMeter(Infinity, 15, 4);  // the share looks at the last 4 only
            for (const ms of [10, 300, 20, 400, 500]) { meter.sent(0); meter.received(ms); }
            return [meter.missShare(250), meter.missShare(1000), new LatencyMeter(2).missShare(250)];
        }"""
    )
    assert shares == [0.75, 0, None]
