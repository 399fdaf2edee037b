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
async def test_publish_every_waits_for_the_viewer_to_take_the_previous_part():
    hub = StreamHub()
    slot = hub.subscribe()
    hub.publish(part(1))
    second = asyncio.create_task(hub.publish_every(part(2)))
    await asyncio.sleep(0.01)
    assert not second.done()  # part 1 not taken yet: part 2 must not replace it
    assert (await slot.get()).jpeg == b"1"
    assert await second == 0
    assert (await slot.get()).jpeg == b"2"


@sync
async def test_publish_every_passes_over_a_stalled_viewer():
    hub = StreamHub()
    slot = hub.subscribe()
    hub.publish(part(1))
    assert await hub.publish_every(part(2), stall_s=0.01) == 1
    assert (await slot.get()).jpeg == b"2"
