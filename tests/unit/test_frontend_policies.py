"""Scheduling only: realtime keeps the newest frame, skips similar ones and paces; canvas keeps every
drawing in order and pushes back when full. The steps are a recorder, as the policies' contract allows."""

import asyncio
import functools
import random

import numpy as np
import pytest

from frontends.canvas_policy import CanvasPolicy
from frontends.image_intake import ImageHeader
from frontends.incoming import Incoming
from frontends.protocol import SEND_FRAME, WAIT
from frontends.realtime_policy import Pacer, RealtimePolicy
from frontends.slot import LatestSlot
from sdconfig.schema import RealtimePerformance

HEADER = ImageHeader("jpeg", 8, 8)


def sync(test):
    """Run an async test in its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


def incoming(seq: int, image: bytes | None = None) -> Incoming:
    return Incoming({}, image or bytes([seq]), HEADER, 0.0, seq)


class Recorder:
    def __init__(self, process_gate: asyncio.Event | None = None, still: bool = False) -> None:
        self.sent: list[str] = []
        self.processed: list[int] = []
        self.counts = {"dropped": 0, "skipped": 0}
        self.gate = process_gate
        self.still = still

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def decode(self, frame: Incoming) -> np.ndarray | None:
        if frame.image == b"bad":
            return None
        value = 7 if self.still else frame.seq
        return np.random.default_rng(value).integers(0, 256, (16, 16), dtype=np.uint8)

    async def process(self, frame: Incoming) -> bool:
        if self.gate is not None:
            await self.gate.wait()
            self.gate.clear()
        if frame.image == b"refused":
            return False
        self.processed.append(frame.seq)
        return True

    def count(self, event: str) -> None:
        self.counts[event] += 1


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def perf(**kw) -> RealtimePerformance:
    return RealtimePerformance(**{"max_fps": 0, "enable_similar_image_filter": False, **kw})


@sync
async def test_latest_slot_keeps_only_the_newest():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert slot.put(3) == 2
    assert await slot.get() == 3
    assert slot.put(4) is None


@sync
async def test_realtime_drops_superseded_frames_while_busy():
    gate = asyncio.Event()
    steps = Recorder(process_gate=gate)
    policy = RealtimePolicy(perf(), steps)
    worker = asyncio.create_task(policy.run())
    await policy.accept(incoming(1))
    await settle()  # frame 1 taken, processing blocked on the gate
    for seq in range(2, 7):
        await policy.accept(incoming(seq))
    assert steps.counts["dropped"] == 4  # 2..5 superseded, 6 waits
    gate.set()
    await settle()
    gate.set()
    await settle()
    assert steps.processed == [1, 6]
    assert steps.sent == [SEND_FRAME, SEND_FRAME]  # one per frame taken
    worker.cancel()


@sync
async def test_realtime_skips_a_static_scene_up_to_max_skip():
    steps = Recorder(still=True)
    policy = RealtimePolicy(
        perf(enable_similar_image_filter=True, similar_image_filter_max_skip_frame=3), steps, random.Random(0)
    )
    worker = asyncio.create_task(policy.run())
    for seq in range(1, 13):
        await policy.accept(incoming(seq))
        await settle()
    assert steps.processed == [1, 5, 9]
    assert steps.counts["skipped"] == 9
    assert steps.sent.count(SEND_FRAME) == 12
    worker.cancel()


@sync
async def test_realtime_undecodable_frame_is_neither_processed_nor_skipped():
    steps = Recorder()
    policy = RealtimePolicy(perf(), steps)
    worker = asyncio.create_task(policy.run())
    await policy.accept(incoming(1, b"bad"))
    await settle()
    await policy.accept(incoming(2))
    await settle()
    assert steps.processed == [2]
    assert steps.counts == {"dropped": 0, "skipped": 0}
    assert steps.sent == [SEND_FRAME, SEND_FRAME]
    worker.cancel()


@sync
async def test_pacer_spaces_takes():
    now = [0.0]
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)
        now[0] += delay

    pacer = Pacer(10, clock=lambda: now[0], sleep=sleep)
    await pacer.wait()
    pacer.mark()
    now[0] += 0.03
    await pacer.wait()
    pacer.mark()
    now[0] += 0.5
    await pacer.wait()
    assert slept == [pytest.approx(0.07)]
    unpaced = Pacer(0, clock=lambda: now[0], sleep=sleep)
    unpaced.mark()
    await unpaced.wait()
    assert len(slept) == 1


@sync
async def test_canvas_processes_every_drawing_in_order():
    steps = Recorder()
    policy = CanvasPolicy(4, steps)
    worker = asyncio.create_task(policy.run())
    for seq in range(1, 21):
        await policy.accept(incoming(seq))
    await settle()
    assert steps.processed == list(range(1, 21))
    worker.cancel()


@sync
async def test_canvas_full_queue_pushes_back_instead_of_dropping():
    gate = asyncio.Event()
    steps = Recorder(process_gate=gate)
    policy = CanvasPolicy(2, steps)
    worker = asyncio.create_task(policy.run())
    await policy.accept(incoming(1))
    await settle()  # 1 in processing
    await policy.accept(incoming(2))
    await policy.accept(incoming(3))  # queue now full
    blocked = asyncio.create_task(policy.accept(incoming(4)))
    await settle()
    assert not blocked.done()
    assert steps.sent == [WAIT]
    gate.set()
    await settle()
    assert blocked.done()
    for _ in range(3):
        gate.set()
        await settle()
    assert steps.processed == [1, 2, 3, 4]
    worker.cancel()


@sync
async def test_realtime_a_failed_frame_is_no_reference_for_skipping():
    steps = Recorder(still=True)
    policy = RealtimePolicy(perf(enable_similar_image_filter=True), steps, random.Random(0))
    worker = asyncio.create_task(policy.run())
    for seq, image in ((1, b"refused"), (2, None), (3, None)):
        await policy.accept(incoming(seq, image))
        await settle()
    assert steps.processed == [2]  # 2 looks like 1, but 1 gave no result; 3 looks like 2, which did
    assert steps.counts["skipped"] == 1
    worker.cancel()


@sync
async def test_canvas_drain_finishes_the_queued_drawings_within_its_budget():
    steps = Recorder()
    policy = CanvasPolicy(4, steps, drain_s=30.0)
    worker = asyncio.create_task(policy.run())
    for seq in (1, 2, 3):
        await policy.accept(incoming(seq))
    await policy.drain()  # returns when they are done, long before the budget
    worker.cancel()
    assert steps.processed == [1, 2, 3]
    assert policy.take_unanswered() == []


@sync
async def test_canvas_drain_past_its_budget_hands_back_every_unanswered_drawing_in_order():
    gate = asyncio.Event()  # never opened: drawing 1 stays in processing
    steps = Recorder(process_gate=gate)
    policy = CanvasPolicy(2, steps, drain_s=0.05)
    worker = asyncio.create_task(policy.run())
    await policy.accept(incoming(1))
    await settle()
    await policy.accept(incoming(2))
    await policy.accept(incoming(3))
    blocked = asyncio.create_task(policy.accept(incoming(4)))  # the reader waits for room
    await settle()
    await policy.drain()
    worker.cancel()
    await asyncio.wait([worker])
    assert [frame.seq for frame in policy.take_unanswered()] == [1, 2, 3, 4]
    assert steps.processed == []
    blocked.cancel()


@sync
async def test_realtime_owes_nothing_on_shutdown():
    gate = asyncio.Event()
    steps = Recorder(process_gate=gate)
    policy = RealtimePolicy(perf(), steps)
    worker = asyncio.create_task(policy.run())
    await policy.accept(incoming(1))
    await settle()
    await policy.accept(incoming(2))
    await policy.drain()  # at once, with a frame in processing and one pending
    worker.cancel()
    assert policy.take_unanswered() == []
