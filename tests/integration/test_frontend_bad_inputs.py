"""Every bad input gets an error naming what was wrong, the session goes on, nobody else notices."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import struct
import time
import zlib

import aiohttp
import numpy as np
import pytest
from frontend_helpers import metric, metrics
from PIL import Image
from triton_calls import jpeg, scene

from frontends.client import ProtocolClient, StreamReader
from frontends.frame_codec import encode_frame

pytestmark = pytest.mark.triton

SIZE = 128  # tests/config.test.yaml
GOOD = jpeg(scene(SIZE, 1))


def envelope(json_bytes: bytes, image: bytes = GOOD, length: int | None = None) -> bytes:
    return struct.pack(">I", len(json_bytes) if length is None else length) + json_bytes + image


def png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header claims `width x height` pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


NEXT = b'{"status":"next_frame"}'
NESTED = b"[" * 100_000 + b"]" * 100_000


def many_scans_jpeg(extra: int) -> bytes:
    """A progressive JPEG with its last scan repeated: each scan is another pass of the decoder."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((128, 128, 3), 90, np.uint8)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    scan = data[data.rindex(b"\xff\xda") : -2]
    return data[:-2] + scan * extra + data[-2:]


def png_bomb(width: int, height: int, raw_bytes: int) -> bytes:
    """A PNG whose data stream inflates to `raw_bytes`, far beyond its `width x height` header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * raw_bytes, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# (id, message: bytes for a binary frame or str for a text one, a fragment the error must contain)
BAD_INPUTS = [
    ("shorter-than-header", b"\x00\x01", "shorter than its 4-byte"),
    ("length-past-end", envelope(NEXT, length=100_000), "only"),
    ("zero-json-length", envelope(b"", length=0), "JSON length of 0"),
    ("invalid-utf8", envelope(b'{"status":"next_frame","prompt":"\xff\xfe"}'), "not UTF-8"),
    ("invalid-json", envelope(b'{"status": next_frame}'), "does not parse"),
    ("json-not-object", envelope(b'["next_frame"]'), "must be an object"),
    ("binary-unknown-status", envelope(b'{"status":"draw_please"}'), "draw_please"),
    ("no-image", envelope(NEXT, image=b""), "no image"),
    ("not-an-image", envelope(NEXT, image=b"GIF89a" + bytes(200)), "not JPEG, PNG or WebP"),
    ("truncated-jpeg", envelope(NEXT, image=GOOD[: len(GOOD) // 2]), "truncated"),
    ("over-max-image-bytes", envelope(NEXT, image=b"\xff\xd8\xff" + bytes(2_100_000)), "max_image_bytes"),
    ("huge-dimensions", envelope(NEXT, image=png_claiming(100_000, 100_000)), "max_image_pixels"),
    ("big-dimensions", envelope(NEXT, image=png_claiming(4000, 4000)), "max_image_pixels"),
    ("seed-not-integer", encode_frame({"seed": "abc"}, GOOD), "'seed' must be an integer"),
    ("seed-negative", encode_frame({"seed": -1}, GOOD), "'seed' must be between"),
    ("guidance-out-of-range", encode_frame({"guidance_scale": 1e9}, GOOD), "'guidance_scale' must be between"),
    ("steps-not-a-list", encode_frame({"t_index_list": 3}, GOOD), "must be a list"),
    ("steps-not-increasing", encode_frame({"t_index_list": [20, 10]}, GOOD), "increasing"),
    ("unknown-parameter", encode_frame({"strength": 0.5}, GOOD), "unknown parameter 'strength'"),
    ("prompt-too-many-chars", encode_frame({"prompt": "x" * 1001}, GOOD), "at most 1000"),
    ("prompt-too-many-tokens", encode_frame({"prompt": " ".join(["word"] * 200)}, GOOD), "tokens"),
    ("text-not-json", "hello", "not JSON"),
    ("jpeg-2000-scans", envelope(NEXT, image=many_scans_jpeg(2000)), "max_image_scans"),
    ("png-inflating-to-100mb", envelope(NEXT, image=png_bomb(128, 128, 100_000_000)), "inflates beyond"),
    ("deeply-nested-json-text", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (
        "deeply-nested-json-frame",
        envelope(b'{"status":"next_frame","a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        "nested too deeply",
    ),
    ("5000-digit-integer", envelope(b'{"status":"next_frame","seed":' + b"9" * 5000 + b"}", image=GOOD), "too long"),
    ("lone-surrogate-prompt", json.dumps({"status": "update_params", "prompt": "\ud800"}), "lone surrogate"),
    ("text-not-object", "[1, 2]", "JSON object"),
    ("text-unknown-status", json.dumps({"status": "draw_please"}), "unknown status 'draw_please'"),
    ("text-without-status", json.dumps({"prompt": "a cat"}), "unknown status None"),
    ("frame-as-text", json.dumps({"status": "next_frame", "prompt": "a cat"}), "binary message"),
    ("bad-update-params", json.dumps({"status": "update_params", "seed": 1.5}), "'seed' must be an integer"),
]


async def _refused_then_alive(base_url: str, mode: str, user_id: str, bad: bytes | str) -> tuple[dict, dict]:
    async with aiohttp.ClientSession() as http:
        client = ProtocolClient(http, base_url, mode, user_id)
        assert (await client.connect())["status"] == "connected"
        await client.expect("send_frame")
        if isinstance(bad, bytes):
            await client.ws.send_bytes(bad)
        else:
            await client.ws.send_str(bad)
        error = await client.expect("error")
        await client.send_json({"status": "ping"})
        alive = await client.expect("pong")
        await client.close()
        return error, alive


@pytest.mark.parametrize("mode", ["realtime", "canvas"])
@pytest.mark.parametrize(("bad", "fragment"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_named_and_the_session_goes_on(frontend_server, mode, bad, fragment):
    error, alive = asyncio.run(_refused_then_alive(frontend_server.base_url, mode, f"bad-{mode}", bad))
    assert error["status"] == "error"
    assert fragment in error["message"], error["message"]
    assert alive == {"status": "pong"}


@pytest.mark.parametrize("mode", ["realtime", "canvas"])
def test_bad_inputs_disturb_nobody_and_the_session_still_works(frontend_server, mode):
    """One client sends every bad input, then a good frame; a bystander draws meanwhile."""
    drawings = [jpeg(scene(SIZE, 50 + i)) for i in range(3)]

    async def troublemaker(http: aiohttp.ClientSession) -> tuple[int, bytes | None]:
        client = ProtocolClient(http, frontend_server.base_url, mode, "troublemaker")
        await client.connect()
        stream = StreamReader(http, client.stream_url)
        await stream.start()
        errors = 0
        for _, bad, _ in BAD_INPUTS:
            await (client.ws.send_bytes(bad) if isinstance(bad, bytes) else client.ws.send_str(bad))
            await client.expect("error")
            errors += 1
        await client.send_frame(GOOD, prompt="still here")
        part = await stream.next_part(wait_s=120)
        await client.close()
        await stream.stop()
        return errors, part

    async def bystander(http: aiohttp.ClientSession) -> int:
        client = ProtocolClient(http, frontend_server.base_url, mode, "bystander")
        await client.connect()
        stream = StreamReader(http, client.stream_url)
        await stream.start()
        seen = 0
        for drawing in drawings:
            await client.expect("send_frame")
            await client.send_frame(drawing, prompt="calm")
            seen += (await stream.next_part(wait_s=120)) is not None
        errors = [m for m in client.drain() if m["status"] == "error"]
        await client.close()
        await stream.stop()
        return seen if not errors else -1

    async def scenario() -> tuple[tuple[int, bytes | None], int]:
        async with aiohttp.ClientSession() as http:
            return await asyncio.gather(troublemaker(http), bystander(http))

    (errors, part), seen = asyncio.run(scenario())
    assert errors == len(BAD_INPUTS)
    assert part is not None and part.startswith(b"\xff\xd8")
    assert seen == len(drawings)


def test_message_over_max_message_bytes_closes_with_1009(frontend_server):
    """aiohttp refuses the message from its header and closes with 1009.

    The server closes without reading the megabytes still in flight, so the kernel may reset
    the connection before the client reads the close frame (then the client sees 1006); the
    server's own counter says why in every case.
    """
    limit = frontend_server.triton.settings.server.max_message_bytes
    before = metric(metrics(frontend_server.base_url), "frontend_errors_total", mode="canvas", kind="message_too_big")

    async def scenario() -> int | None:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "canvas", "too-big")
            await client.connect()
            with contextlib.suppress(ConnectionError):
                await client.ws.send_bytes(encode_frame({}, b"\xff\xd8\xff" + bytes(limit)))
            return (await client.expect("closed"))["code"]

    code = asyncio.run(scenario())
    assert code in (1009, 1006)
    deadline = time.monotonic() + 30
    while (
        after := metric(
            metrics(frontend_server.base_url), "frontend_errors_total", mode="canvas", kind="message_too_big"
        )
    ) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert after == before + 1
