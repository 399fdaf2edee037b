"""The canvas page: strokes drawn with Playwright's mouse against the real frontends and tritonserver."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.chromium import PHONE, open_page, screenshot
from tests.browser.pictures import Shown, image_format, pixels, results_count, shown
from tests.browser.servers import OwnFrontend, metric
from tests.browser.traffic import Traffic, wait_until
from tests.servers import free_port

pytestmark = pytest.mark.browser


def open_canvas(page: Page, base_url: str) -> Traffic:
    traffic = Traffic.watch(page)
    page.goto(f"{base_url}/canvas")
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    return traffic


def stroke(page: Page, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    """A mouse stroke between two points given as fractions of the drawing's size."""
    box = page.locator("#drawing").bounding_box()
    assert box is not None

    def at(fx: float, fy: float) -> tuple[float, float]:
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    page.mouse.move(*at(*start))
    page.mouse.down()
    for i in range(1, steps + 1):
        t = i / steps
        page.mouse.move(*at(start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t))
    page.mouse.up()


def canvas_pixels(page: Page) -> np.ndarray:
    data_url = page.evaluate("document.querySelector('#drawing').toDataURL('image/png')")
    return pixels(base64.b64decode(data_url.split(",", 1)[1]))


def settled(page: Page, traffic: Traffic, at_least: int) -> Shown:
    """Wait until the drawing on the canvas has been sent (at least `at_least` drawings in all)
    and every drawing sent has its result on screen; return the picture shown."""

    def done() -> Shown | None:
        sent = len(traffic.frames)
        if sent < at_least or results_count(page) != sent:
            return None
        if not np.array_equal(pixels(traffic.frames[-1].image), canvas_pixels(page)):
            return None
        picture = shown(page)
        if not picture or picture.frames != sent:
            return None
        page.wait_for_timeout(300)  # the <img> may still be swapping in the last part's blob
        again = shown(page)
        return picture if again and again.hash == picture.hash and again.frames == sent else None

    return wait_until(page, done, f"the current drawing sent and all of at least {at_least} drawings answered")


def test_every_stroke_gets_a_result(page: Page, frontend_server) -> None:
    received_before = metric(frontend_server.base_url, "frontend_frames_received_total", "canvas")
    traffic = open_canvas(page, frontend_server.base_url)
    info = page.evaluate("fetch('/api/canvas/settings').then(r => r.json()).then(s => s.info)")
    assert not traffic.frames, "nothing is sent before the first stroke"

    strokes = [((0.15, 0.2), (0.8, 0.3)), ((0.2, 0.8), (0.7, 0.4)), ((0.5, 0.1), (0.5, 0.9))]
    pictures = []
    for n, (start, end) in enumerate(strokes, start=1):
        stroke(page, start, end)
        pictures.append(settled(page, traffic, at_least=n))

    sent = len(traffic.frames)
    assert sent >= len(strokes)
    assert results_count(page) == sent
    assert {image_format(f.image) for f in traffic.frames} == {f"PNG {info['width']}x{info['height']}"}
    assert (pictures[-1].width, pictures[-1].height) == (info["width"], info["height"])
    assert len({p.hash for p in pictures}) == len(strokes), "each stroke changes the result"
    wait_until(
        page,
        lambda: metric(frontend_server.base_url, "frontend_frames_received_total", "canvas") - received_before == sent,
        "the server to count every drawing",
    )
    expect(page.locator("#stat-sent")).to_have_text(str(sent))
    expect(page.locator("#stat-received")).to_have_text(str(sent))
    expect(page.locator("#work-state")).to_have_text("Up to date")
    screenshot(page, "canvas-desktop")


def test_undo_and_redo_send_the_earlier_drawings(page: Page, frontend_server) -> None:
    traffic = open_canvas(page, frontend_server.base_url)
    stroke(page, (0.1, 0.5), (0.9, 0.5))
    one = settled(page, traffic, at_least=1)
    drawing_one = pixels(traffic.frames[-1].image)
    stroke(page, (0.5, 0.1), (0.5, 0.9))
    two = settled(page, traffic, at_least=2)
    drawing_two = pixels(traffic.frames[-1].image)
    assert not np.array_equal(drawing_one, drawing_two)

    sent = len(traffic.frames)
    page.click("#undo")
    undone = settled(page, traffic, at_least=sent + 1)
    assert len(traffic.frames) == sent + 1, "one undo sends one drawing"
    assert np.array_equal(pixels(traffic.frames[-1].image), drawing_one)
    assert undone.hash == one.hash, "the same drawing, prompt and seed give the same picture"

    page.click("#redo")
    redone = settled(page, traffic, at_least=sent + 2)
    assert np.array_equal(pixels(traffic.frames[-1].image), drawing_two)
    assert redone.hash == two.hash

    page.click("#clear")
    settled(page, traffic, at_least=sent + 3)
    assert pixels(traffic.frames[-1].image).min() == 255, "clear sends a blank (white) drawing"
    expect(page.locator("#clear")).to_be_disabled()


def test_a_seed_change_repaints_the_drawing(page: Page, frontend_server) -> None:
    traffic = open_canvas(page, frontend_server.base_url)
    stroke(page, (0.2, 0.2), (0.8, 0.8))
    original = settled(page, traffic, at_least=1)
    seed = int(page.input_value("#param-seed"))

    sent = len(traffic.frames)
    page.fill("#param-seed", str(seed + 1))
    page.locator("#param-seed").press("Enter")
    other = settled(page, traffic, at_least=sent + 1)
    assert traffic.frames[-1].header["seed"] == seed + 1
    assert other.hash != original.hash

    page.fill("#param-seed", str(seed))
    page.locator("#param-seed").press("Enter")
    again = settled(page, traffic, at_least=sent + 2)
    assert traffic.frames[-1].header["seed"] == seed
    assert again.hash == original.hash
    assert not traffic.statuses("error"), traffic.statuses("error")


def test_server_going_away_is_shown_and_drawing_resumes(page: Page, own_frontend) -> None:
    traffic = open_canvas(page, own_frontend.base_url)
    stroke(page, (0.1, 0.1), (0.9, 0.9))
    settled(page, traffic, at_least=1)

    own_frontend.stop()
    expect(page.locator(".notice-warn")).to_contain_text("restarting or shutting down", timeout=30_000)
    expect(page.locator("#badge")).to_have_attribute("data-state", "retrying")
    screenshot(page, "canvas-server-gone")

    own_frontend.start()
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    sent = len(traffic.frames)
    before = results_count(page)  # read before drawing: the result may arrive as soon as it is sent
    stroke(page, (0.9, 0.1), (0.1, 0.9))
    wait_until(page, lambda: len(traffic.frames) > sent, "a drawing sent on the new connection")
    wait_until(page, lambda: results_count(page) > before, "its result")


def test_an_idle_session_pauses_and_drawing_resumes_it(page: Page, triton_server) -> None:
    frontend = OwnFrontend(triton_server, free_port(), {"SD__SERVER__IDLE_TIMEOUT_S": "2"})
    frontend.start()
    try:
        traffic = open_canvas(page, frontend.base_url)
        stroke(page, (0.1, 0.3), (0.9, 0.3))
        settled(page, traffic, at_least=1)
        expect(page.locator("#badge")).to_have_attribute("data-state", "stopped", timeout=30_000)
        expect(page.locator("#badge")).to_have_text("Paused")
        expect(page.locator(".notice-info")).to_contain_text("Drawing again reconnects")
        screenshot(page, "canvas-paused")

        stroke(page, (0.1, 0.7), (0.9, 0.7))
        expect(page.locator("#badge")).to_have_attribute("data-state", "live")
        settled(page, traffic, at_least=2)
        assert len(traffic.sockets) == 2
    finally:
        frontend.stop()


def test_eraser_upload_and_saving(page: Page, frontend_server, tmp_path) -> None:
    traffic = open_canvas(page, frontend_server.base_url)
    size = page.evaluate("[document.querySelector('#drawing').width, document.querySelector('#drawing').height]")

    picture = tmp_path / "background.png"
    gradient = np.zeros((300, 400, 3), np.uint8)
    gradient[..., 0] = np.linspace(0, 255, 400, dtype=np.uint8)[None, :]
    gradient[..., 2] = 180
    Image.fromarray(gradient).save(picture)
    page.set_input_files("#upload", str(picture))
    settled(page, traffic, at_least=1)
    sent = pixels(traffic.frames[-1].image)
    assert sent.shape[:2] == (size[1], size[0]), "the picture is fitted to the model's size"
    assert abs(int(sent[..., 2].mean()) - 180) <= 2, "the picture is the background"

    page.click("#tool-brush")
    page.click("[data-color='#ef4444']")
    stroke(page, (0.1, 0.5), (0.9, 0.5))
    settled(page, traffic, at_least=2)
    middle = pixels(traffic.frames[-1].image)[size[1] // 2]
    assert (middle[:, 0] > 200).sum() > size[0] // 2 and (middle[:, 2] < 100).sum() > size[0] // 2, "a red line"

    page.click("#tool-eraser")
    page.fill("#brush-size", "40")
    stroke(page, (0.05, 0.5), (0.95, 0.5))
    settled(page, traffic, at_least=3)
    middle = pixels(traffic.frames[-1].image)[size[1] // 2, size[0] // 8 : -size[0] // 8]
    assert middle.min() == 255, "the eraser paints the background colour (white)"

    with page.expect_download() as download:
        page.click("#save-result")
    name = download.value.suggested_filename
    prompt_word = page.input_value("#param-prompt").split()[0].lower()
    assert name.startswith(f"canvas_{prompt_word}") and name.endswith(".jpg")
    assert f"_seed-{page.input_value('#param-seed')}_" in name
    with page.expect_download() as download:
        page.click("#save-drawing")
    saved = pixels(Path(download.value.path()).read_bytes())
    assert np.array_equal(saved, pixels(traffic.frames[-1].image))


_HOLD_SESSIONS_JS = """async (mode) => {
  window.held = [];
  for (let i = 0; i < 1000; i++) {
    const ws = new WebSocket(`ws://${location.host}/api/${mode}/ws/held-${i}`);
    const outcome = await new Promise((resolve) => {
      ws.onmessage = (event) => { if (JSON.parse(event.data).status === "connected") resolve("connected"); };
      ws.onclose = (event) => resolve(event.code);
    });
    if (outcome !== "connected") return { held: window.held.length, code: outcome };
    window.held.push(ws);
  }
  return { held: window.held.length, code: null };
}"""


def test_server_full_is_shown_and_the_page_gets_in_later(page: Page, frontend_server) -> None:
    holder = page.context.new_page()
    holder.goto(f"{frontend_server.base_url}/")  # a page: its CSP lets it open WebSockets
    held = holder.evaluate(_HOLD_SESSIONS_JS, "canvas")
    assert held["code"] == 1013, held
    try:
        page.goto(f"{frontend_server.base_url}/canvas")
        expect(page.locator(".notice-warn")).to_contain_text("The server is full")
        expect(page.locator("#badge")).to_have_attribute("data-state", "retrying")
        expect(page.locator(".notice-error")).to_have_count(0)
        screenshot(page, "canvas-server-full")
    finally:
        holder.evaluate("window.held.forEach((ws) => ws.close())")
    expect(page.locator("#badge")).to_have_attribute("data-state", "live", timeout=60_000)
    expect(page.locator(".notice-warn")).to_have_count(0)
    holder.close()


def test_phone_layout_with_touch(browser, frontend_server) -> None:
    page, errors = open_page(browser, viewport=PHONE, is_mobile=True, has_touch=True)
    traffic = open_canvas(page, frontend_server.base_url)
    assert page.evaluate("getComputedStyle(document.querySelector('#drawing')).touchAction") == "none"
    stroke(page, (0.2, 0.3), (0.8, 0.6))
    settled(page, traffic, at_least=1)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "canvas-phone")
    page.context.close()
    assert not errors
