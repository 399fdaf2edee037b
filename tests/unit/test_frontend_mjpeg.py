"""MJPEG part bytes, the per-viewer mailboxes, and a viewer that resets its connection."""

import asyncio
import functools
import socket
import struct

import pytest
from aiohttp import web

from frontends.mjpeg import CONTENT_TYPE, PREAMBLE, Part, StreamHub, part_bytes, serve_stream
from frontends.slot import SlotClosed
from tests.servers import free_port


def sync(test):
    """Run an async test in its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


def test_content_type_and_preamble():
    assert CONTENT_TYPE == "multipart/x-mixed-replace; boundary=frame"
    assert PREAMBLE == b"--frame\r\n"


def test_part_bytes_then_next_boundary():
    jpeg = b"\xff\xd8JPEG\r\n--frame\xff\xd9"  # payload bytes may contain anything
    assert part_bytes(jpeg) == (
        b"Content-Type: image/jpeg\r\nContent-Length: "
        + str(len(jpeg)).encode()
        + b"\r\n\r\n"
        + jpeg
        + b"\r\n--frame\r\n"
    )


def test_stream_of_parts_reads_as_the_spec_says():
    """Preamble + parts == a sequence of `--frame\\r\\nContent-Type...\\r\\n\\r\\n<N>\\r\\n` parts."""
    parts = [b"one", b"second part"]
    stream = PREAMBLE + b"".join(part_bytes(p) for p in parts)
    expected = b"".join(
        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(p), p) for p in parts
    )
    assert stream == expected + b"--frame\r\n"


def part(n: int) -> Part:
    return Part(str(n).encode(), 0.0)


@sync
async def test_slow_viewer_sees_only_the_newest_part():
    hub = StreamHub()
    slot = hub.subscribe()
    replaced = [hub.publish(part(i)) for i in range(5)]
    assert replaced == [0, 1, 1, 1, 1]
    assert (await slot.get()).jpeg == b"4"
    hub.publish(part(5))
    assert (await slot.get()).jpeg == b"5"


@sync
async def test_each_viewer_gets_its_own_copy():
    hub = StreamHub()
    a, b = hub.subscribe(), hub.subscribe()
    hub.publish(part(1))
    assert (await a.get()).jpeg == (await b.get()).jpeg == b"1"
    hub.unsubscribe(a)
    assert hub.viewers == 1


@sync
async def test_close_ends_every_viewer():
    hub = StreamHub()
    slot = hub.subscribe()
    waiter = asyncio.create_task(slot.get())
    await asyncio.sleep(0)
    hub.close()
    with pytest.raises(SlotClosed):
        await waiter
    late = hub.subscribe()
    with pytest.raises(SlotClosed):
        await late.get()


@sync
async def test_a_canvas_viewer_gets_every_part_in_order_and_publishing_never_waits():
    hub = StreamHub(backlog=3)
    slot = hub.subscribe()
    assert [hub.publish(part(i)) for i in (1, 2, 3)] == [0, 0, 0]  # returns at once, nothing replaced
    assert [(await slot.get()).jpeg for _ in range(3)] == [b"1", b"2", b"3"]


@sync
async def test_a_closing_canvas_hub_still_hands_its_viewers_the_parts_they_hold():
    hub = StreamHub(backlog=3)
    slot = hub.subscribe()
    hub.publish(part(1))
    hub.publish(part(2))
    hub.close()
    assert [(await slot.get()).jpeg for _ in range(2)] == [b"1", b"2"]
    with pytest.raises(SlotClosed):
        await slot.get()


@sync
async def test_a_canvas_viewer_that_stops_reading_skips_its_oldest_parts():
    hub = StreamHub(backlog=2)
    stalled, reading = hub.subscribe(), hub.subscribe()
    for i in (1, 2, 3, 4):
        hub.publish(part(i))
        assert (await reading.get()).jpeg == str(i).encode()  # the other viewer misses nothing
    assert [(await stalled.get()).jpeg for _ in range(2)] == [b"3", b"4"]


@sync
async def test_a_viewer_reset_while_its_writes_wait_is_a_debug_line_not_a_traceback(caplog):
    """A client that stops reading and then resets its connection, over a real socket."""
    hub = StreamHub(backlog=4)

    async def stream(request: web.Request) -> web.StreamResponse:
        return await serve_stream(request, hub, lambda part: None)

    app = web.Application()
    app.router.add_get("/stream", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    loop = asyncio.get_running_loop()
    viewer = socket.socket()
    viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once: the server's writes wait
    viewer.setblocking(False)
    try:
        await loop.sock_connect(viewer, ("127.0.0.1", port))
        await loop.sock_sendall(viewer, b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with caplog.at_level("DEBUG"):
            for _ in range(200):  # parts of 1 MiB, never read
                hub.publish(Part(b"\xff" * (1 << 20), 0.0))
                await asyncio.sleep(0.01)
            viewer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            viewer.close()  # RST
            for _ in range(100):
                if hub.viewers == 0:
                    break
                hub.publish(Part(b"\xff" * 1024, 0.0))
                await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    assert hub.viewers == 0
    tracebacks = [r for r in caplog.records if r.exc_info is not None or r.levelname == "ERROR"]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]
    assert any("MJPEG viewer" in r.getMessage() and r.levelname == "DEBUG" for r in caplog.records)
