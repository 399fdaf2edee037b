"""MJPEG: one hub per session, fanning each result out to that user's viewers.

Wire format (`multipart/x-mixed-replace; boundary=frame`), each part:
    --frame\\r\\nContent-Type: image/jpeg\\r\\nContent-Length: N\\r\\n\\r\\n<N bytes>\\r\\n
The boundary line of the *next* part is written right after each part, because Chromium shows a
part only once the following boundary has arrived; so the stream is the preamble `--frame\\r\\n`
and then, per part, its headers, bytes and `\\r\\n--frame\\r\\n`. The stream simply ends (EOF) when
the session ends.

Publishing never waits for a viewer. A realtime viewer has a one-slot mailbox (a slow one sees the
newest result); a canvas viewer a few parts of backlog (every drawing, in order, while it keeps
up; one that stops reading skips its oldest parts and never holds the session back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from frontends.slot import BoundedSlot, LatestSlot, SlotClosed

log = logging.getLogger(__name__)

BOUNDARY = "frame"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
PREAMBLE = f"--{BOUNDARY}\r\n".encode()
GONE_CHECK_S = 2.0
"""How often an idle stream checks that its client is still connected."""


def part_bytes(jpeg: bytes) -> bytes:
    """One part plus the next boundary line (see the module docstring for why)."""
    head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
    return head + jpeg + b"\r\n" + PREAMBLE


@dataclass(slots=True, eq=False)
class Part:
    jpeg: bytes
    received_at: float
    """time.monotonic() when the frame behind this result arrived, for the latency histogram."""
    written: bool = field(default=False)
    session_started_at: float | None = None
    """time.monotonic() when the session's first frame arrived: the first result shown is timed from it."""


class StreamHub:
    """The viewers of one session's results; publishing never waits for a viewer.

    `backlog` 1: each viewer sees the newest result (realtime). More: each viewer gets every part in
    order while it keeps up, and one that falls `backlog` parts behind skips its oldest (canvas).
    """

    first_shown = False
    """Whether a result of this session has reached a viewer yet (the time to first frame is taken once)."""

    def __init__(self, backlog: int = 1) -> None:
        self._viewers: set[LatestSlot[Part] | BoundedSlot[Part]] = set()
        self._backlog = backlog
        self._closed = False

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def subscribe(self) -> LatestSlot[Part] | BoundedSlot[Part]:
        slot: LatestSlot[Part] | BoundedSlot[Part] = LatestSlot() if self._backlog == 1 else BoundedSlot(self._backlog)
        if self._closed:
            slot.close()
        else:
            self._viewers.add(slot)
        return slot

    def unsubscribe(self, slot: LatestSlot[Part] | BoundedSlot[Part]) -> None:
        self._viewers.discard(slot)
        slot.close()

    def publish(self, part: Part) -> int:
        """Hand `part` to every viewer now; return how many unread parts it replaced."""
        replaced = 0
        for slot in list(self._viewers):
            if slot.put(part) is not None:
                replaced += 1
        return replaced

    def close(self) -> None:
        """End every viewer's stream: a canvas viewer's once it has written the parts it still holds."""
        self._closed = True
        for slot in self._viewers:
            slot.close()
        self._viewers.clear()


async def serve_stream(
    request: web.Request, hub: StreamHub, on_written: Callable[[Part], None], headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Write the hub's parts to one HTTP client until the session ends or the client leaves."""
    response = web.StreamResponse(
        headers={
            "Content-Type": CONTENT_TYPE,
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
            **(headers or {}),
        }
    )
    await response.prepare(request)
    slot = hub.subscribe()
    watcher = asyncio.create_task(_unsubscribe_when_gone(request, hub, slot))
    try:
        await response.write(PREAMBLE)
        while True:
            part = await slot.get()
            await response.write(part_bytes(part.jpeg))
            if not part.written:
                part.written = True
                on_written(part)
    except SlotClosed:
        pass
    except ConnectionError as exc:  # a reset while a write waited to drain is a plain ConnectionError
        log.debug("MJPEG viewer %s left: %s", request.remote, exc)
    finally:
        watcher.cancel()
        hub.unsubscribe(slot)
    return response


async def _unsubscribe_when_gone(
    request: web.Request, hub: StreamHub, slot: LatestSlot[Part] | BoundedSlot[Part]
) -> None:
    """End the stream of a client that left while no part was coming (an idle canvas).

    aiohttp does not cancel a handler when its client disconnects, and a write is what would
    notice; without this, a page that reopens its stream (after a proxy timeout, say) would leave
    handlers behind that count against server.security.max_sessions_per_client.
    """
    while True:
        await asyncio.sleep(GONE_CHECK_S)
        transport = request.transport
        if transport is None or transport.is_closing():
            hub.unsubscribe(slot)  # closes the slot: the handler's get() ends
            return
