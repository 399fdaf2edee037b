"""Realtime scheduling: newest frame only, similar frames skipped, takes paced to max_fps.

The reader puts every valid frame into a one-slot mailbox; a frame still unread when the next one
arrives is dropped (and counted): a webcam frame is worth nothing once a newer one exists. The
worker takes at most `max_fps` frames a second, asks for the next frame as soon as it took one (so
the client's next frame travels while this one is processed: one frame of pipelining, no more),
skips it when it is nearly the last processed frame, and otherwise has it processed.
Only scheduling lives here; what processing means is the worker steps' business (`RealtimeSteps`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import numpy as np

from frontends.app_keys import Services
from frontends.incoming import Incoming
from frontends.mjpeg import Part, StreamHub
from frontends.protocol import SEND_FRAME
from frontends.similarity import SimilarityFilter
from frontends.slot import LatestSlot
from frontends.triton_sequence import TritonSequence
from sdconfig import Settings
from sdconfig.schema import RealtimePerformance


class RealtimeSteps(Protocol):
    async def send(self, text: str) -> None: ...

    async def decode(self, frame: Incoming) -> np.ndarray | None:
        """The frame's small grayscale decode, or None when it does not decode (already reported)."""

    async def process(self, frame: Incoming) -> bool:
        """Run the frame through the model; False when no result came of it (already reported)."""

    def count(self, event: Literal["dropped", "skipped"]) -> None: ...


class Pacer:
    """Spaces events at least 1/max_fps apart; max_fps 0 means no pacing."""

    def __init__(
        self,
        max_fps: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None

    async def wait(self) -> None:
        if self.interval and self._last is not None:
            delay = self._last + self.interval - self._clock()
            if delay > 0:
                await self._sleep(delay)

    def mark(self) -> None:
        self._last = self._clock()


class RealtimePolicy:
    @staticmethod
    def route(services: Services, user_id: str) -> TritonSequence:
        """One Triton sequence per session: the stream-batch state lives with the model."""
        settings = services.settings
        return TritonSequence(
            services.pool, user_id, settings.model_name("realtime"), settings.realtime.pipeline.sequence_idle_timeout_s
        )

    @staticmethod
    async def publish(hub: StreamHub, part: Part) -> None:
        """Latest wins: a viewer that lags skips to the newest result."""
        hub.publish(part)

    @staticmethod
    def viewer_backlog(settings: Settings) -> int:
        """One: a viewer sees the newest result."""
        return 1

    @classmethod
    def build(cls, settings: Settings, steps: RealtimeSteps) -> RealtimePolicy:
        return cls(settings.realtime.performance, steps)

    def __init__(self, perf: RealtimePerformance, steps: RealtimeSteps, rng: random.Random | None = None) -> None:
        self.steps = steps
        self.slot: LatestSlot[Incoming] = LatestSlot()
        self.pacer = Pacer(perf.max_fps)
        self._processing = False
        self.filter = (
            SimilarityFilter(perf.similar_image_filter_threshold, perf.similar_image_filter_max_skip_frame, rng)
            if perf.enable_similar_image_filter
            else None
        )

    async def accept(self, frame: Incoming) -> None:
        """Never waits: the newest frame replaces an unread one."""
        if self.slot.put(frame) is not None:
            self.steps.count("dropped")

    async def acknowledge(self) -> None:
        """Nothing yet: send_frame goes out when the worker takes the frame (one frame of pipelining)."""

    async def run(self) -> None:
        while True:
            await self.pacer.wait()
            frame = await self.slot.get()
            self.pacer.mark()
            await self.steps.send(SEND_FRAME)
            small = await self.steps.decode(frame)
            if small is None:
                continue
            if self.filter is not None and self.filter.should_skip(small):
                self.steps.count("skipped")
                continue
            self._processing = True
            try:
                if not await self.steps.process(frame) and self.filter is not None:
                    self.filter.reset()  # no result came of it: the next frame must not be skipped against it
            finally:
                self._processing = False

    @property
    def busy(self) -> bool:
        """A frame waits or is being processed: the client is waiting on the server, not idle."""
        return self._processing or not self.slot.empty

    async def drain(self) -> None:
        """Nothing to finish on shutdown: latency first, and a frame is stale by the time it would show."""

    def take_unanswered(self) -> list[Incoming]:
        """None: a pending or interrupted frame is dropped like any superseded one."""
        return []

    def close(self) -> None:
        self.slot.close()
