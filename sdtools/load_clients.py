"""The load benchmark's protocol clients and the frames they send.

A realtime client answers every `send_frame` with the next frame of a synthetic moving scene (a
camera that never stands still, so the similar-image filter lets every frame through); a canvas
client sends drawings back to back, keeping a window of them unanswered. Each reads its own MJPEG
stream; parts come in frame order, so each part answers the oldest frame still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import cv2
import numpy as np

from frontends.client import ProtocolClient, StreamReader

SCENE_FRAMES = 60
DRAIN_S = 15.0
"""After the deadline, how long results of frames already sent are still awaited."""
STALLED = "no message from the server"
"""How a realtime client's error list says that the server went quiet past the phase and its drain."""


# --------------------------------------------------------------------------- frames


def moving_scene(t: int, width: int, height: int) -> np.ndarray:
    """A camera-like frame: a fixed textured background, a bright square that moves far each step,
    and a little sensor noise, so it compresses like a webcam picture rather than a flat drawing."""
    background = _background(width, height)
    noise = np.random.default_rng(t).integers(-2, 3, background.shape, dtype=np.int16)
    image = np.clip(background.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    side = min(width, height) // 3
    x = (t * width // 7) % (width - side)
    y = (t * height // 5) % (height - side)
    image[y : y + side, x : x + side] = 255 - image[y : y + side, x : x + side]
    return image


@functools.cache
def _background(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    detail = rng.integers(-6, 7, (height, width, 3), dtype=np.int16)
    return np.clip(smooth.astype(np.int16) + detail, 0, 255).astype(np.uint8)


def encode_frames(width: int, height: int, still: bool = False, quality: int = 90) -> list[bytes]:
    """The scene's frames as JPEG; a still scene is one frame, sent again and again."""
    return [
        cv2.imencode(".jpg", moving_scene(t, width, height), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        for t in range(1 if still else SCENE_FRAMES)
    ]


# --------------------------------------------------------------------------- clients


@dataclass
class ClientResult:
    sent: int = 0
    parts: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    first_frame_s: float | None = None
    """From sending the session's first frame to receiving its first part."""


@dataclass(frozen=True)
class Plan:
    """What the clients of one phase share: the server, the frames to send and when to stop."""

    http: aiohttp.ClientSession
    base: str
    frames: list[bytes]
    deadline: float
    max_frames: int

    def more(self, result: ClientResult) -> bool:
        """Whether a client that has sent `result.sent` frames sends another."""
        return time.monotonic() < self.deadline and result.sent < self.max_frames


class InFlight:
    """Send times of frames whose part has not arrived yet, oldest first."""

    def __init__(self) -> None:
        self.sent_at: deque[float] = deque()
        self.first_sent_at: float | None = None
        self.answered = asyncio.Event()

    def __len__(self) -> int:
        return len(self.sent_at)

    def sent(self) -> None:
        now = time.monotonic()
        self.sent_at.append(now)
        if self.first_sent_at is None:
            self.first_sent_at = now

    async def collect(self, stream: StreamReader, result: ClientResult) -> None:
        """Parts arrive in frame order: each one answers the oldest frame still waiting."""
        while await stream.next_part(wait_s=3600) is not None:
            now = time.monotonic()
            result.parts += 1
            if result.first_frame_s is None and self.first_sent_at is not None:
                result.first_frame_s = now - self.first_sent_at
            if self.sent_at:
                result.latencies.append(now - self.sent_at.popleft())
            self.answered.set()

    async def wait_below(self, count: int, wait_s: float) -> None:
        """Wait until fewer than `count` frames are unanswered (at most `wait_s`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while len(self.sent_at) >= count:
                    self.answered.clear()
                    await self.answered.wait()


@contextlib.asynccontextmanager
async def connected(
    plan: Plan, mode: str, user: str, result: ClientResult
) -> AsyncIterator[tuple[ProtocolClient, InFlight]]:
    """A protocol session with its MJPEG stream read in the background into `result`."""
    client = ProtocolClient(plan.http, plan.base, mode, user)
    await client.connect()
    stream = StreamReader(plan.http, client.stream_url)
    await stream.start()
    in_flight = InFlight()
    reader = asyncio.create_task(in_flight.collect(stream, result))
    try:
        yield client, in_flight
    finally:
        reader.cancel()
        await client.close()
        await stream.stop()


async def send_next(
    plan: Plan, client: ProtocolClient, in_flight: InFlight, result: ClientResult, **params: Any
) -> None:
    """Send the client's next frame of the scene, its latency timed from now."""
    in_flight.sent()
    await client.send_frame(plan.frames[result.sent % len(plan.frames)], **params)
    result.sent += 1


async def realtime_client(plan: Plan, user: str, drain_s: float) -> ClientResult:
    result = ClientResult()
    async with connected(plan, "realtime", user, result) as (client, in_flight):
        while plan.more(result):
            wait_s = max(1.0, plan.deadline - time.monotonic() + DRAIN_S)
            try:
                message = await client.next_message(wait_s=wait_s)
            except TimeoutError:
                result.errors.append(f"{STALLED} for {wait_s:.0f} s")
                break
            if message["status"] == "error":
                result.errors.append(message["message"])
            elif message["status"] == "closed":
                break
            elif message["status"] == "send_frame":
                await send_next(plan, client, in_flight, result, prompt="a watercolor street")
        await in_flight.wait_below(1, drain_s)
    return result


async def canvas_client(plan: Plan, user: str, window: int) -> ClientResult:
    result = ClientResult()
    async with connected(plan, "canvas", user, result) as (client, in_flight):
        while plan.more(result):
            await in_flight.wait_below(window, max(0.0, plan.deadline - time.monotonic()))
            if len(in_flight) >= window:
                break
            await send_next(plan, client, in_flight, result, prompt="a pencil sketch", seed=3)
        await in_flight.wait_below(1, DRAIN_S)
        result.errors += [m["message"] for m in client.drain() if m["status"] == "error"]
    return result
