"""The soak test's sessions and the pictures they send.

Realtime clients answer every `send_frame` with the next frame of a moving scene, as a camera
would, and every `--churn-every` seconds (give or take a quarter) leave and come back as a new
user, so sequences are started and ended all along. Canvas clients send a new drawing every
`--draw-every` seconds (give or take a half) without waiting, and keep their session; after the
deadline each waits up to `--drain` seconds for the parts of its drawings still in the queue.
What they see is counted in one `Tally`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import cv2
import numpy as np

from frontends.client import ProtocolClient, StreamReader

_FRAME_PREFIX = re.compile(r"^frame \d+: ")


# --------------------------------------------------------------------------- pictures


def moving_scene(t: int, width: int, height: int) -> np.ndarray:
    """A camera-like frame: a gradient with a bright square moving a few pixels per frame."""
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (xx * 255 // width).astype(np.uint8)
    image[..., 1] = (yy * 255 // height).astype(np.uint8)
    side = min(width, height) // 4
    x, y = (t * 7) % (width - side), (t * 5) % (height - side)
    image[y : y + side, x : x + side] = 255
    return image


def drawing(rng: random.Random, width: int, height: int) -> np.ndarray:
    """White paper with a few strokes of colour, like the canvas page sends."""
    image = np.full((height, width, 3), 255, np.uint8)
    for _ in range(rng.randint(1, 6)):
        points = np.array([[rng.randrange(width), rng.randrange(height)] for _ in range(4)], np.int32)
        colour = tuple(rng.randrange(256) for _ in range(3))
        cv2.polylines(image, [points], False, colour, rng.randint(1, 8))
    return image


def encode(image: np.ndarray, fmt: str) -> bytes:
    ok, data = cv2.imencode(f".{fmt}", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90] if fmt == "jpg" else [])
    assert ok
    return data.tobytes()


# --------------------------------------------------------------------------- results


@dataclass
class Tally:
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    unexpected_closes: collections.Counter[int] = field(default_factory=collections.Counter)
    realtime_sessions: int = 0
    realtime_frames: int = 0
    realtime_parts: int = 0
    canvas_sent: int = 0
    canvas_parts: int = 0
    canvas_errors: int = 0
    canvas_waits: int = 0
    canvas_surplus: int = 0
    """Parts beyond the drawings sent (must be 0, as must lost ones)."""
    canvas_cut: int = 0
    """Drawings neither answered nor refused when their connection closed unexpectedly (the client was
    told by the close); drawings unanswered on a connection that stayed open are the silent losses."""
    canvas_silent: int = 0
    stream_refused: int = 0
    canvas_sessions: int = 0
    part_times: dict[int, list[float]] = field(default_factory=dict)
    """When each realtime client's parts arrived (time.monotonic()), by client index."""
    close_times: list[float] = field(default_factory=list)

    def closed(self, code: int) -> None:
        self.unexpected_closes[code] += 1
        self.close_times.append(time.monotonic())

    def error(self, message: dict[str, Any]) -> None:
        self.errors[_FRAME_PREFIX.sub("", str(message.get("message", message)))[:160]] += 1


# --------------------------------------------------------------------------- clients


async def _open_stream(client: ProtocolClient, stream: StreamReader, tally: Tally) -> bool:
    """Start the session's MJPEG stream; a refusal (a proxy's 502 while a frontend restarts) is counted."""
    response = await stream.start()
    if response.status == 200:
        return True
    tally.stream_refused += 1
    tally.error({"message": f"MJPEG stream answered HTTP {response.status}"})
    await client.close()
    await stream.stop()
    return False


async def realtime_client(
    http: aiohttp.ClientSession,
    base: str,
    index: int,
    frames: list[bytes],
    args: argparse.Namespace,
    tally: Tally,
    prefix: str = "soak",
) -> None:
    rng = random.Random(index)
    deadline = args.deadline
    generation = 0
    await asyncio.sleep(rng.uniform(0, 2))
    while time.monotonic() < deadline:
        generation += 1
        client = ProtocolClient(http, base, "realtime", f"{prefix}-rt-{index}-{generation}")
        stream = StreamReader(http, client.stream_url)
        first = await client.connect()
        if first["status"] != "connected":
            tally.error(first)
            await client.close()
            await asyncio.sleep(1)
            continue
        tally.realtime_sessions += 1
        if not await _open_stream(client, stream, tally):
            await asyncio.sleep(1)
            continue
        parts = asyncio.create_task(_count_parts(stream, tally, "realtime", index))
        leave_at = min(deadline, time.monotonic() + args.churn_every * rng.uniform(0.75, 1.25))
        t = rng.randrange(len(frames))
        closed = False
        while time.monotonic() < leave_at:
            try:
                message = await client.expect("send_frame", "error", wait_s=max(0.1, leave_at - time.monotonic()))
            except TimeoutError:
                break
            if message["status"] == "closed":
                tally.closed(message["code"])
                closed = True
                break
            if message["status"] == "error":
                tally.error(message)
                continue
            t += 1
            await client.send_frame(frames[t % len(frames)], prompt="a watercolor fox", seed=index)
            tally.realtime_frames += 1
        if not closed:
            await client.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(parts, 30)
        await stream.stop()


async def _count_parts(stream: StreamReader, tally: Tally, mode: str, index: int = -1) -> int:
    count = 0
    while (await stream.next_part(wait_s=3600)) is not None:
        count += 1
        if mode == "realtime":
            tally.realtime_parts += 1
            tally.part_times.setdefault(index, []).append(time.monotonic())
    return count


async def canvas_client(
    http: aiohttp.ClientSession,
    base: str,
    index: int,
    drawings: list[bytes],
    args: argparse.Namespace,
    tally: Tally,
    user: str | None = None,
) -> bool:
    """One canvas session; False when it ended by an unexpected close (or a refused stream)."""
    rng = random.Random(1000 + index)
    await asyncio.sleep(rng.uniform(0, args.draw_every))
    client = ProtocolClient(http, base, "canvas", user or f"soak-canvas-{index}")
    first = await client.connect()
    if first["status"] != "connected":
        tally.error(first)
        await client.close()
        return False
    tally.canvas_sessions += 1
    stream = StreamReader(http, client.stream_url)
    if not await _open_stream(client, stream, tally):
        return False
    sent = parts = errors = 0

    async def take_parts() -> None:
        nonlocal parts
        while (await stream.next_part(wait_s=3600)) is not None:
            parts += 1

    def read_messages() -> bool:
        """Count what the server said; False once the session is closed."""
        nonlocal errors
        for message in client.drain():
            if message["status"] == "error":
                errors += 1
                tally.error(message)
            elif message["status"] == "wait":
                tally.canvas_waits += 1
            elif message["status"] == "closed":
                tally.closed(message["code"])
                return False
        return True

    reader = asyncio.create_task(take_parts())
    open_ = True
    try:
        while time.monotonic() < args.deadline and open_:
            await client.send_frame(rng.choice(drawings), prompt="a pencil sketch of a house", seed=sent)
            sent += 1
            open_ = read_messages()
            await asyncio.sleep(args.draw_every * rng.uniform(0.5, 1.5))
        drain_until = time.monotonic() + args.drain
        while open_ and parts + errors < sent and time.monotonic() < drain_until:
            await asyncio.sleep(0.2)
            open_ = read_messages()
        await asyncio.sleep(0.5)  # a surplus part would show up now
        open_ = read_messages() and open_
    except (aiohttp.ClientError, ConnectionError):  # a send on a connection the server just dropped
        tally.closed(1006)
        open_ = False
    finally:
        await client.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await stream.stop()
        unanswered = max(0, sent - parts - errors)
        tally.canvas_sent += sent
        tally.canvas_parts += min(parts, sent)
        tally.canvas_surplus += max(0, parts - sent)
        tally.canvas_errors += errors
        if open_:
            tally.canvas_silent += unanswered
        else:
            tally.canvas_cut += unanswered
    return open_
