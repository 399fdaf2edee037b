"""Realtime end to end: a still camera costs about one Triton call in max_skip+1 frames (counted by
Triton itself), a moving one is processed frame by frame, a flood keeps only the newest frame, the
sequence is ended on disconnect, and users are kept apart."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import cv2
import numpy as np
import pytest
from frontend_helpers import live_sequences, metric, metrics, moving_scene, triton_counts, wait_until_no_sessions
from triton_calls import jpeg

from frontends.client import ProtocolClient, StreamReader

pytestmark = pytest.mark.triton

PROMPT = "a watercolor fox"


def realtime_model(triton_server) -> str:
    return triton_server.settings.triton.realtime_model


async def answer_send_frames(client: ProtocolClient, frames: list[bytes], **params: object) -> list[dict]:
    """The well-behaved client: one frame per send_frame. Returns the other messages seen."""
    others = []
    for frame in frames:
        while (message := await client.next_message(wait_s=120))["status"] != "send_frame":
            others.append(message)
        await client.send_frame(frame, **params)
    return others


SENTINEL_PROMPT = " ".join(["word"] * 200)
"""More tokens than the model takes: the frontends cannot count tokens, so the model refuses it."""


async def finish(client: ProtocolClient, size: int) -> list[dict]:
    """Send a frame the model refuses and wait for that refusal.

    The worker handles frames one after the other, so once the refusal arrives every frame sent
    before it has been taken and answered: the session is idle and the counters are final.
    Triton's statistics count the refused request as answered (the model did answer it).
    """
    others = []
    while (message := await client.next_message(wait_s=120))["status"] != "send_frame":
        others.append(message)
    await client.send_frame(jpeg(255 - moving_scene(99, size)), prompt=SENTINEL_PROMPT)
    while True:
        message = await client.next_message(wait_s=120)
        if message["status"] == "error" and "tokens" in message["message"]:
            return others
        if message["status"] != "send_frame":
            others.append(message)


def test_moving_scene_every_frame_processed(frontend_server, triton_server):
    size = triton_server.settings.pipeline.width
    frames = [jpeg(moving_scene(t, size)) for t in range(10)]
    wait_until_no_sessions(frontend_server.base_url, "realtime")
    before_triton = triton_counts(triton_server.grpc_url, realtime_model(triton_server))
    before = metrics(frontend_server.base_url)

    async def scenario() -> tuple[list[bytes], list[dict]]:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "realtime", "mover")
            assert (await client.connect())["status"] == "connected"
            stream = StreamReader(http, client.stream_url)
            assert (await stream.start()).status == 200
            others = await answer_send_frames(client, frames, prompt=PROMPT)
            others += await finish(client, size)
            await client.close()
            parts = []
            while (part := await stream.next_part()) is not None:
                parts.append(part)
            return parts, others

    parts, others = asyncio.run(scenario())
    assert [m for m in others if m["status"] == "error"] == []
    after = metrics(frontend_server.base_url)
    assert metric(after, "frontend_frames_processed_total", mode="realtime") - metric(
        before, "frontend_frames_processed_total", mode="realtime"
    ) == len(frames)
    assert metric(after, "frontend_frames_skipped_total", mode="realtime") == metric(
        before, "frontend_frames_skipped_total", mode="realtime"
    )
    succeeded, _ = triton_counts(triton_server.grpc_url, realtime_model(triton_server))
    assert succeeded - before_triton[0] >= len(frames)  # the frames (and the END of the sequence)
    assert 1 <= len(parts) <= len(frames)
    for part in parts:
        decoded = cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (size, size, 3)


def test_still_camera_sends_about_one_frame_in_max_skip_plus_one(frontend_server, triton_server):
    size = triton_server.settings.pipeline.width
    max_skip = triton_server.settings.realtime.performance.similar_image_filter_max_skip_frame
    count = 3 * (max_skip + 1)
    still = jpeg(moving_scene(0, size))
    model = realtime_model(triton_server)

    async def scenario() -> tuple[int, int]:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "realtime", "still-life")
            await client.connect()
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            await answer_send_frames(client, [still] * count, prompt=PROMPT)
            await finish(client, size)
            # before the END is sent; Triton counts the refused sentinel as an answered request too
            calls = triton_counts(triton_server.grpc_url, model)[0] - before_triton - 1
            after = metrics(frontend_server.base_url)
            skipped = metric(after, "frontend_frames_skipped_total", mode="realtime") - metric(
                before, "frontend_frames_skipped_total", mode="realtime"
            )
            await client.close()
            await stream.stop()
            return calls, int(skipped)

    wait_until_no_sessions(frontend_server.base_url, "realtime")
    before_triton = triton_counts(triton_server.grpc_url, model)[0]
    before = metrics(frontend_server.base_url)
    calls, skipped = asyncio.run(scenario())
    assert 1 <= calls <= count // (max_skip + 1) + 1
    assert calls + skipped == count


def test_a_flood_keeps_only_the_newest_frame(frontend_server, triton_server):
    """A client that ignores send_frame: superseded frames are dropped, never queued.

    The flood's last frame carries a prompt the model refuses, so its error message proves that
    the newest frame was the one taken, and that nothing was left to process after it.
    """
    size = triton_server.settings.pipeline.width
    flood = [jpeg(moving_scene(t, size)) for t in range(60)]
    model = realtime_model(triton_server)

    async def scenario() -> list[str]:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "realtime", "flooder")
            await client.connect()
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            for frame in flood[:-1]:
                await client.send_frame(frame, prompt=PROMPT)
            await client.send_frame(flood[-1], prompt=SENTINEL_PROMPT)
            errors = []
            while not errors or "tokens" not in errors[-1]:
                message = await client.expect("error")
                errors.append(message["message"])
            await client.close()
            await stream.stop()
            return errors

    wait_until_no_sessions(frontend_server.base_url, "realtime")
    before_triton = triton_counts(triton_server.grpc_url, model)[0]
    before = metrics(frontend_server.base_url)
    errors = asyncio.run(scenario())
    after = metrics(frontend_server.base_url)

    def delta(name: str, **labels: str) -> int:
        labels = labels or {"mode": "realtime"}
        return int(metric(after, name, **labels) - metric(before, name, **labels))

    assert errors[-1].startswith(f"frame {len(flood)}:")  # the newest frame was taken
    dropped, processed = delta("frontend_frames_dropped_total"), delta("frontend_frames_processed_total")
    assert delta("frontend_frames_received_total") == len(flood)
    assert dropped + processed + delta("frontend_frames_skipped_total") + 1 == len(flood)
    assert dropped >= len(flood) // 2  # far more frames arrived than were worth processing
    # Triton answered the processed frames, the refused last one and maybe already the sequence's END;
    # nothing was queued behind them
    assert triton_counts(triton_server.grpc_url, model)[0] - before_triton <= processed + 2


def test_the_sequence_is_ended_on_disconnect(frontend_server, triton_server):
    size = triton_server.settings.pipeline.width
    model = realtime_model(triton_server)
    metrics_url = triton_server.metrics_url

    async def scenario() -> float:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "realtime", "leaver")
            await client.connect()
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            await answer_send_frames(client, [jpeg(moving_scene(t, size)) for t in range(3)], prompt=PROMPT)
            assert await stream.next_part(wait_s=120) is not None
            during = live_sequences(metrics_url, model)
            await client.close()
            assert await _stream_end(stream) is None  # the viewer's stream ends with the session
            return during

    during = asyncio.run(scenario())
    deadline = time.monotonic() + 30  # the END request goes out as the session cleans up
    while (after := live_sequences(metrics_url, model)) >= during and time.monotonic() < deadline:
        time.sleep(0.2)
    assert during >= 1
    assert after <= during - 1


async def _stream_end(stream: StreamReader) -> bytes | None:
    while (part := await stream.next_part(wait_s=60)) is not None:
        del part
    return None


def test_two_users_at_once_see_only_their_own_frames(frontend_server, triton_server):
    size = triton_server.settings.pipeline.width

    async def user(user_id: str, frames: list[bytes]) -> int:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "realtime", user_id)
            await client.connect()
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            for frame in frames:  # one frame at a time, each result seen before the next frame
                await client.expect("send_frame")
                await client.send_frame(frame, prompt=PROMPT)
                assert await stream.next_part(wait_s=120) is not None
            await client.close()
            extra = 0
            while await stream.next_part(wait_s=60) is not None:
                extra += 1
            return len(frames) + extra

    async def both() -> list[int]:
        return await asyncio.gather(
            user("rt-alice", [jpeg(moving_scene(t, size)) for t in range(5)]),
            user("rt-bob", [jpeg(255 - moving_scene(t, size)) for t in range(3)]),
        )

    assert asyncio.run(both()) == [5, 3]


def test_ping_and_update_params(frontend_server, triton_server):
    async def scenario() -> list[dict]:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "realtime", "controller")
            await client.connect()
            await client.send_json({"status": "ping"})
            pong = await client.expect("pong", "error")
            await client.send_json({"status": "update_params", "prompt": "a cat", "guidance_scale": 2.5})
            updated = await client.expect("params_updated", "error")
            await client.send_json({"status": "update_params", "seed": "seven"})
            refused = await client.expect("params_updated", "error")
            await client.close()
            return [pong, updated, refused]

    pong, updated, refused = asyncio.run(scenario())
    assert pong == {"status": "pong"}
    assert updated == {"status": "params_updated", "params": {"prompt": "a cat", "guidance_scale": 2.5}}
    assert refused["status"] == "error" and "seed" in refused["message"]


def test_a_long_pause_starts_a_fresh_sequence_without_an_error(frontend_server, triton_server):
    """Silent longer than the model keeps a sequence: the next frame opens a new one (START)."""
    size = triton_server.settings.pipeline.width
    pause_s = triton_server.settings.realtime.pipeline.sequence_idle_timeout_s + 1
    assert pause_s < triton_server.settings.server.idle_timeout_s  # the session itself stays open

    async def scenario() -> list[dict]:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "realtime", "pauser")
            await client.connect()
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            await answer_send_frames(client, [jpeg(moving_scene(0, size))], prompt=PROMPT)
            assert await stream.next_part(wait_s=120) is not None
            await asyncio.sleep(pause_s)
            others = await answer_send_frames(client, [jpeg(moving_scene(5, size))], prompt=PROMPT)
            assert await stream.next_part(wait_s=120) is not None
            others += client.drain()
            await client.close()
            await stream.stop()
            return others

    others = asyncio.run(scenario())
    assert [m for m in others if m["status"] == "error"] == []
