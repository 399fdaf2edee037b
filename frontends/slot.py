"""A one-item mailbox where a newer item replaces an unread one.

Used twice: as the realtime session's pending frame (a stale frame is worth nothing once a newer
one arrived) and as each MJPEG viewer's next part (a slow viewer skips parts instead of growing a
queue). Nothing here ever holds more than one item, so nothing can build a backlog.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class SlotClosed(Exception):
    """The slot's owner is gone; no item will come."""


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._readable = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def empty(self) -> bool:
        return not self._full

    def put(self, item: T) -> T | None:
        """Store `item`; return the unread item it supersedes (the caller counts it as dropped)."""
        if self._closed:
            raise SlotClosed
        superseded = self._item if self._full else None
        self._item, self._full = item, True
        self._readable.set()
        self._empty.clear()
        return superseded

    async def get(self) -> T:
        """Wait for and take the item; raise SlotClosed once closed and empty."""
        while not self._full:
            if self._closed:
                raise SlotClosed
            await self._readable.wait()
        item = self._item
        self._item, self._full = None, False
        self._readable.clear()
        self._empty.set()
        return item  # type: ignore[return-value]

    async def wait_empty(self) -> None:
        """Wait until the reader took the item (or the slot closed)."""
        await self._empty.wait()

    def close(self) -> None:
        """Wake every waiter; a pending item is discarded."""
        self._closed = True
        self._item, self._full = None, False
        self._readable.set()
        self._empty.set()
