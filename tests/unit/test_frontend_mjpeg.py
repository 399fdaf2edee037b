"""MJPEG part bytes and the per-viewer one-slot mailbox."""

import asyncio
import functools

import pytest

from frontends.mjpeg import CONTENT_TYPE, PREAMBLE, Part, StreamHub, part_bytes
from frontends.slot import SlotClosed


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
async def test_a_canvas_viewer_that_stops_reading_skips_its_oldest_parts():
    hub = StreamHub(backlog=2)
    stalled, reading = hub.subscribe(), hub.subscribe()
    for i in (1, 2, 3, 4):
        hub.publish(part(i))
        assert (await reading.get()).jpeg == str(i).encode()  # the other viewer misses nothing
    assert [(await stalled.get()).jpeg for _ in range(2)] == [b"3", b"4"]
