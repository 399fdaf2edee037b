"""The pages' pure modules, run inside Chromium as the pages load them from /static/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from frontends.frame_codec import parse_frame
from frontends.mjpeg import PREAMBLE, part_bytes

pytestmark = pytest.mark.browser


@pytest.fixture
def blank(page: Page, frontend_server) -> Page:
    # a page of the server, so its modules load under the pages' own Content-Security-Policy (a
    # static file's "default-src 'none'" lets no script run)
    page.goto(f"{frontend_server.base_url}/")
    return page


def test_frame_envelope_is_what_the_server_parses(blank: Page) -> None:
    payload = blank.evaluate(
        """async () => {
            const { encodeFrame } = await import('/static/api.js');
            const image = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);
            return Array.from(new Uint8Array(encodeFrame({ prompt: 'ünïcode ✓', seed: 7 }, image.buffer)));
        }"""
    )
    frame = parse_frame(bytes(payload))
    assert frame.params == {"prompt": "ünïcode ✓", "seed": 7}
    assert frame.image == bytes([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9])


def test_mjpeg_parser_finds_every_part_however_the_stream_is_cut(blank: Page) -> None:
    parts = [bytes([0xFF, 0xD8]) + bytes([i]) * (50 + 7 * i) + bytes([0xFF, 0xD9]) for i in range(5)]
    stream = PREAMBLE + b"".join(part_bytes(p) for p in parts)
    found = blank.evaluate(
        """async ({ stream, sizes }) => {
            const { MultipartParser } = await import('/static/mjpeg.js');
            const bytes = new Uint8Array(stream);
            const results = [];
            for (const size of sizes) {
                const seen = [];
                const parser = new MultipartParser('frame', (part) => seen.push(Array.from(part)));
                for (let i = 0; i < bytes.length; i += size) parser.push(bytes.subarray(i, i + size));
                results.push(seen);
            }
            return results;
        }""",
        {"stream": list(stream), "sizes": [1, 2, 3, 7, 64, 1000, len(stream)]},
    )
    for seen in found:
        assert [bytes(p) for p in seen] == parts


def test_mjpeg_parser_without_content_length(blank: Page) -> None:
    head = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n"
    body = head + b"AAAA\r\n" + head + b"BB\r\n--frame\r\n"
    seen = blank.evaluate(
        """async (stream) => {
            const { MultipartParser } = await import('/static/mjpeg.js');
            const seen = [];
            const parser = new MultipartParser('frame', (part) => seen.push(new TextDecoder().decode(part)));
            parser.push(new Uint8Array(stream));
            return seen;
        }""",
        list(body),
    )
    assert seen == ["AAAA", "BB"]


def test_centre_crop_keeps_the_model_proportions(blank: Page) -> None:
    crops = blank.evaluate(
        """async () => {
            const { centreCrop } = await import('/static/camera.js');
            return [centreCrop(640, 480, 512, 512), centreCrop(480, 640, 512, 512), centreCrop(1280, 720, 512, 256)];
        }"""
    )
    assert crops[0] == {"x": 80, "y": 0, "w": 480, "h": 480}
    assert crops[1] == {"x": 0, "y": 80, "w": 480, "h": 480}
    assert crops[2] == {"x": 0, "y": 40, "w": 1280, "h": 640}


def test_download_names_carry_prompt_and_seed(blank: Page) -> None:
    name = blank.evaluate(
        """async () => {
            const { downloadName } = await import('/static/ui.js');
            return downloadName('realtime', 'A Watercolor painting, soft light!', 42, 'jpg');
        }"""
    )
    assert name.startswith("realtime_a-watercolor-painting-soft-light_seed-42_")
    assert name.endswith(".jpg")
