"""Canvas scheduling: every drawing, in order, through a bounded queue that pushes back.

No filter, no dropping, no pacing. When `max_pending_drawings` are waiting, the reader's `accept`
waits for room, so the session stops reading its socket: the client's sends slow down through
TCP flow control instead of the server dropping a drawing or growing without bound. The client
is told once with {"status": "wait"}.

On shutdown the session lets the worker go on for `server.shutdown_drain_s` (`drain`), then stops it
and refuses by number every drawing still in hand (`take_unanswered`): none is dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import numpy as np

from frontends.app_keys import Services
from frontends.frame_steps import StatelessRoute
from frontends.incoming import Incoming
from frontends.mjpeg import Part, StreamHub
from frontends.protocol import SEND_FRAME, WAIT
from sdconfig import Settings


class CanvasSteps(Protocol):
    async def send(self, text: str) -> None: ...

    async def decode(self, frame: Incoming) -> np.ndarray | None:
        """The drawing's small decode, or None when it does not decode (already reported)."""

    async def process(self, frame: Incoming) -> bool: ...


class CanvasPolicy:
    @staticmethod
    def route(services: Services, user_id: str) -> StatelessRoute:
        """Drawings are independent and seeded: any healthy server answers each the same."""
        return StatelessRoute(services, user_id, services.settings.model_name("canvas"))

    @staticmethod
    async def publish(hub: StreamHub, part: Part) -> None:
        """Every drawing is one MJPEG part, in order; the hub's viewers keep a backlog of them."""
        hub.publish(part)

    @staticmethod
    def viewer_backlog(settings: Settings) -> int:
        """Parts a viewer may fall behind before it skips: the drawings a session can have in hand."""
        return settings.canvas.performance.max_pending_drawings + 2

    @classmethod
    def build(cls, settings: Settings, steps: CanvasSteps) -> CanvasPolicy:
        return cls(settings.canvas.performance.max_pending_drawings, steps, settings.server.shutdown_drain_s)

    def __init__(self, max_pending: int, steps: CanvasSteps, drain_s: float = 0.0) -> None:
        self.steps = steps
        self.queue: asyncio.Queue[Incoming] = asyncio.Queue(maxsize=max_pending)
        self.drain_s = drain_s
        self._current: Incoming | None = None
        """The drawing the worker is on; still set if the worker was stopped before answering it."""
        self._offered: Incoming | None = None
        """The drawing the reader waits to queue (the queue is full)."""
        self._idle = asyncio.Event()
        self._idle.set()

    async def accept(self, frame: Incoming) -> None:
        """Waits while the queue is full (back-pressure); never drops."""
        self._idle.clear()
        self._offered = frame
        try:
            if self.queue.full():
                await self.steps.send(WAIT)
            await self.queue.put(frame)
        finally:
            self._offered = None

    async def acknowledge(self) -> None:
        """A queued drawing is safe: ask for the next one at once."""
        await self.steps.send(SEND_FRAME)

    async def run(self) -> None:
        while True:
            frame = await self.queue.get()
            self._current = frame
            if await self.steps.decode(frame) is not None:
                await self.steps.process(frame)
            self._current = None  # answered: a part or an error went out
            if self.queue.empty() and self._offered is None:
                self._idle.set()

    @property
    def busy(self) -> bool:
        """Drawings wait or one is being processed: the client is waiting on the server, not idle."""
        return self._current is not None or not self.queue.empty()

    async def drain(self) -> None:
        """Every drawing received is owed an answer: work on for up to `drain_s` until none is left."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.drain_s)

    def take_unanswered(self) -> list[Incoming]:
        """Once the worker is stopped: the drawings that got neither a part nor an error, in order."""
        frames = [self._current] if self._current is not None else []
        while not self.queue.empty():
            frames.append(self.queue.get_nowait())
        if self._offered is not None:
            frames.append(self._offered)
        self._current = None
        return sorted(frames, key=lambda frame: frame.seq)

    def close(self) -> None:
        """Pending drawings of a closed session have nobody left to show them to."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self._idle.set()
