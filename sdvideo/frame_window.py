"""Decoded frames shared by the calls in flight: decoded once, in order, in a thread, kept while needed.

Realtime segments overlap (warm-up and lag frames), and canvas frames run several at once, so the
frames live in a window that the decoder fills ahead of the calls and that forgets a frame once
no unit can ask for it again. The window is bounded: a slow server holds the decoder back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import numpy as np

from sdvideo.frames_in import InputError


class FrameWindow:
    def __init__(self, frames: Iterator[np.ndarray], total: int, capacity: int) -> None:
        self._frames = frames
        self.total = total
        self.capacity = capacity
        self.decoded = 0
        """Frames the input actually gave; fewer than `total` means the container over-declared."""
        self._held: dict[int, np.ndarray] = {}
        self._low = 0
        self._changed = asyncio.Condition()
        self._failure: BaseException | None = None
        self._last: np.ndarray | None = None
        self._decoding: asyncio.Future[np.ndarray | None] | None = None
        """The decode running in its thread: cancelling the task does not stop it, so close waits for it."""

    async def decode(self) -> None:
        """Run as a task: decode ahead of `low` by at most `capacity` frames."""
        try:
            for index in range(self.total):
                async with self._changed:
                    await self._changed.wait_for(lambda i=index: i < self._low + self.capacity)
                self._decoding = asyncio.ensure_future(asyncio.to_thread(next, self._frames, None))
                frame = await asyncio.shield(self._decoding)
                if frame is None:  # the stream ended early: the last frame stands in
                    if self._last is None:
                        raise InputError("the video stream gave no frame at all")
                    frame = self._last
                else:
                    self.decoded += 1
                self._last = frame
                async with self._changed:
                    self._held[index] = frame
                    self._changed.notify_all()
        except Exception as exc:
            async with self._changed:
                self._failure = exc
                self._changed.notify_all()

    async def get(self, index: int) -> np.ndarray:
        async with self._changed:
            await self._changed.wait_for(lambda: index in self._held or self._failure is not None)
            if index not in self._held:
                assert self._failure is not None
                raise self._failure
            return self._held[index]

    async def release_below(self, low: int) -> None:
        """No unit will ask for a frame before `low` again."""
        async with self._changed:
            if low <= self._low:
                return
            for index in range(self._low, low):
                self._held.pop(index, None)
            self._low = low
            self._changed.notify_all()

    async def close(self) -> None:
        """After the decode task is cancelled: let a decode still in its thread finish, then close the
        input (its container), so nothing frees the decoder while a thread is inside it."""
        if self._decoding is not None:
            with contextlib.suppress(BaseException):
                await self._decoding
        close = getattr(self._frames, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
