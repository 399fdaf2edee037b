"""The realtime page with Chromium's fake camera against the real frontends and tritonserver."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.chromium import PHONE, launch, open_page, screenshot
from tests.browser.pictures import image_format, results_count, shown
from tests.browser.servers import OwnFrontend, metric
from tests.browser.traffic import Traffic, wait_until
from tests.servers import free_port

pytestmark = pytest.mark.browser


def start_streaming(page: Page, base_url: str, frames: int = 3) -> Traffic:
    """Open the page, press Start, and wait until `frames` results have come back."""
    traffic = Traffic.watch(page)
    page.goto(f"{base_url}/realtime")
    expect(page.locator("#start")).to_be_enabled(timeout=60_000)
    page.click("#start")
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    wait_until(page, lambda: results_count(page) >= frames, f"{frames} generated frames")
    return traffic


def test_frames_flow_both_ways_and_the_output_changes(page: Page, frontend_server) -> None:
    traffic = start_streaming(page, frontend_server.base_url)
    info = page.evaluate("fetch('/api/realtime/settings').then(r => r.json()).then(s => s.info)")

    first = wait_until(page, lambda: shown(page), "a decoded output picture")
    assert (first.width, first.height) == (info["width"], info["height"])
    later = wait_until(page, lambda: (s := shown(page)) and s.hash != first.hash and s, "the output picture to change")
    assert later.frames > first.frames

    frames = list(traffic.frames)
    assert len(frames) >= 3
    assert all(frame.header["status"] == "next_frame" for frame in frames)
    assert {image_format(frame.image) for frame in frames} == {f"JPEG {info['width']}x{info['height']}"}
    # one frame per send_frame, never ahead of the server
    assert len(traffic.frames) <= len(traffic.statuses("send_frame"))
    expect(page.locator("#stat-fps")).not_to_have_text("–")
    expect(page.locator("#stat-latency")).to_have_text(re.compile(r"^\d+(\.\d)? m?s$"))
    screenshot(page, "realtime-desktop")

    with page.expect_download() as download:
        page.click("#snapshot")
    name = download.value.suggested_filename
    prompt_word = page.input_value("#param-prompt").split()[0].lower()
    assert name.startswith(f"realtime_{prompt_word}") and name.endswith(".jpg")
    assert f"_seed-{page.input_value('#param-seed')}_" in name
    assert image_format(Path(download.value.path()).read_bytes()) == f"JPEG {info['width']}x{info['height']}"

    page.click("#fullscreen")
    wait_until(page, lambda: page.evaluate("document.fullscreenElement?.id") == "output-pane", "fullscreen")
    expect(page.locator("#fullscreen")).to_have_attribute("aria-pressed", "true")
    page.click("#fullscreen")
    wait_until(page, lambda: page.evaluate("document.fullscreenElement") is None, "leaving fullscreen")


def test_a_prompt_change_reaches_the_server(page: Page, frontend_server) -> None:
    traffic = start_streaming(page, frontend_server.base_url)
    prompt = "an oil painting of a lighthouse in a storm"
    page.fill("#param-prompt", prompt)
    page.locator("#param-prompt").press("Control+Enter")

    # the server confirms the parameters it now uses for this session
    confirmed = wait_until(
        page,
        lambda: [m for m in traffic.statuses("params_updated") if m["params"].get("prompt") == prompt],
        "the server to confirm the new prompt",
    )
    assert confirmed
    # later frames carry it, and are answered
    sent_before = len(traffic.frames)
    wait_until(
        page, lambda: any(f.header.get("prompt") == prompt for f in traffic.frames[sent_before:]), "a frame with it"
    )
    answered = results_count(page)
    wait_until(page, lambda: results_count(page) > answered + 1, "results for frames with the new prompt")

    page.click("[data-action=random-seed]")
    seed = int(page.input_value("#param-seed"))
    wait_until(page, lambda: any(f.header.get("seed") == seed for f in traffic.frames), "a frame with the new seed")
    assert not traffic.statuses("error"), traffic.statuses("error")


def test_stop_ends_the_session_and_the_camera(page: Page, frontend_server) -> None:
    traffic = start_streaming(page, frontend_server.base_url)
    page.click("#start")  # now labelled Stop
    wait_until(page, lambda: traffic.closed, "the WebSocket to close")
    expect(page.locator("#badge")).to_have_attribute("data-state", "stopped")
    expect(page.locator("#start")).to_have_text("Start")
    assert page.evaluate("document.querySelector('#camera').srcObject") is None
    wait_until(
        page,
        lambda: metric(frontend_server.base_url, "frontend_sessions", "realtime") == 0,
        "the server to see the session end",
    )
    frames, results, sockets = len(traffic.frames), results_count(page), len(traffic.sockets)
    page.wait_for_timeout(1500)
    assert (len(traffic.frames), results_count(page), len(traffic.sockets)) == (frames, results, sockets)


def test_camera_refused_is_explained(playwright_driver, frontend_server) -> None:
    browser = launch(playwright_driver, allow_camera=False)
    try:
        page, errors = open_page(browser)
        page.goto(f"{frontend_server.base_url}/realtime")
        expect(page.locator("#start")).to_be_enabled(timeout=60_000)
        page.click("#start")
        expect(page.locator(".notice-error")).to_contain_text("Camera access was denied")
        expect(page.locator("#badge")).to_have_attribute("data-state", "error")
        expect(page.locator("#start")).to_have_text("Start")
        screenshot(page, "realtime-camera-denied")
        assert not errors
    finally:
        browser.close()


def test_server_going_away_is_shown_and_the_page_reconnects(page: Page, own_frontend) -> None:
    traffic = start_streaming(page, own_frontend.base_url)
    own_frontend.stop()
    expect(page.locator(".notice-warn")).to_contain_text("restarting or shutting down", timeout=30_000)
    expect(page.locator("#badge")).to_have_attribute("data-state", "retrying")
    screenshot(page, "realtime-server-gone")

    shown_before = results_count(page)
    own_frontend.start()
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    wait_until(page, lambda: results_count(page) >= shown_before + 3, "frames after reconnecting")
    assert len(traffic.sockets) >= 2
    expect(page.locator(".notice-warn")).to_have_count(0)


def test_triton_unavailable_is_shown(browser, triton_server) -> None:
    """A frontends process whose Triton endpoint does not answer."""
    frontend = OwnFrontend(triton_server, free_port(), {"SD__TRITON__URLS": "[127.0.0.1:9]"})
    frontend.start()
    try:
        page, errors = open_page(browser)
        page.goto(f"{frontend.base_url}/realtime")
        expect(page.locator(".notice-error")).to_contain_text("not available", timeout=60_000)
        expect(page.locator("#badge")).to_have_attribute("data-state", "error")
        expect(page.locator("#start")).to_be_disabled()
        screenshot(page, "realtime-triton-unavailable")
        page.context.close()
        assert not errors
    finally:
        frontend.stop()


def test_phone_layout(browser, frontend_server) -> None:
    page, errors = open_page(browser, viewport=PHONE, is_mobile=True, has_touch=True)
    start_streaming(page, frontend_server.base_url)
    wait_until(page, lambda: shown(page), "a decoded output picture")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "realtime-phone")
    page.context.close()
    assert not errors
