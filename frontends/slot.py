"""A one-item mailbox where a newer item replaces an unread one.

Used as the realtime session's pending frame (a stale frame is worth nothing once a newer one
arrived) and as each realtime MJPEG viewer's next part (a slow viewer skips parts instead of growing
a queue). BoundedSlot is its few-item sibling for canvas viewers; neither can build a backlog.
"""

from __future__ import annotations

import asyncio
import collections
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


class BoundedSlot(Generic[T]):
    """LatestSlot's interface over up to `capacity` items in order: a full slot drops its oldest.

    A canvas viewer's parts: every drawing in order while the viewer keeps up, and a viewer that
    stops reading costs the publisher nothing (it skips its oldest parts instead of being waited for).
    """

    def __init__(self, capacity: int) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._capacity = capacity
        self._closed = False
        self._readable = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def empty(self) -> bool:
        return not self._items

    def put(self, item: T) -> T | None:
        """Append `item`; return the oldest unread item it pushed out, if the slot was full."""
        if self._closed:
            raise SlotClosed
        dropped = self._items.popleft() if len(self._items) >= self._capacity else None
        self._items.append(item)
        self._readable.set()
        return dropped

    async def get(self) -> T:
        """The oldest item; raise SlotClosed once closed and empty."""
        while not self._items:
            if self._closed:
                raise SlotClosed
            self._readable.clear()
            await self._readable.wait()
        return self._items.popleft()

    def close(self) -> None:
        """No more items; those already put are still read (a drawing's part outlives its session's end)."""
        self._closed = True
        self._readable.set()
