"""The latency objective in /metrics, with a real app and a real Triton: deadline misses counted
against performance.target_latency_ms, their rate, and the time to a session's first result."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from frontend_helpers import metric, moving_scene, parse_metrics, serve_in_process, with_overrides
from triton_calls import jpeg

from frontends.client import ProtocolClient, StreamReader
from sdconfig import Settings

pytestmark = pytest.mark.triton

SIZE = 128  # tests/config.test.yaml
FRAMES = 6


def with_target(settings: Settings, mode: str, target_ms: float) -> Settings:
    data = settings.model_dump(mode="json")
    data[mode]["performance"]["target_latency_ms"] = target_ms
    return Settings.model_validate(data)


async def read_metrics(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.get(f"{base}/metrics") as response:
        return parse_metrics(await response.text())


async def shown_results(settings: Settings, mode: str, sessions: int) -> tuple[dict, int]:
    """`sessions` sessions one after another, each answered FRAMES times; /metrics afterwards and the parts seen."""
    seen = 0
    async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
        for s in range(sessions):
            client = ProtocolClient(http, base, mode, f"deadline-{s}")
            assert (await client.connect())["status"] == "connected"
            stream = StreamReader(http, client.stream_url)
            assert (await stream.start()).status == 200
            for t in range(FRAMES):  # one frame at a time: each result is written before the next frame
                if mode == "realtime":
                    await client.expect("send_frame")
                await client.send_frame(jpeg(moving_scene(t, SIZE)), prompt="a red square", seed=3)
                assert await stream.next_part() is not None
                seen += 1
            await client.close()
            await stream.stop()
        for _ in range(100):  # a part counts once it is written; the last write may still be on its way
            values = await read_metrics(http, base)
            if metric(values, "frontend_frame_latency_seconds_count", mode=mode) >= seen:
                break
            await asyncio.sleep(0.05)
    return values, seen


@pytest.mark.parametrize("mode", ["realtime", "canvas"])
def test_a_target_of_one_millisecond_is_missed_by_every_result(triton_server, mode):
    settings = with_target(with_overrides(triton_server.settings, "server", max_sessions_per_mode=4), mode, 1.0)
    values, seen = asyncio.run(shown_results(settings, mode, sessions=2))
    shown = metric(values, "frontend_frame_latency_seconds_count", mode=mode)
    assert shown == seen == 2 * FRAMES
    assert metric(values, "frontend_deadline_misses_total", mode=mode) == shown
    assert metric(values, "frontend_deadline_miss_rate", mode=mode) == 1.0
    assert metric(values, "frontend_latency_target_seconds", mode=mode) == 0.001
    assert metric(values, "frontend_first_frame_seconds_count", mode=mode) == 2  # once per session
    assert metric(values, "frontend_first_frame_seconds_sum", mode=mode) > 0


@pytest.mark.parametrize("mode", ["realtime", "canvas"])
def test_a_generous_target_is_never_missed(triton_server, mode):
    settings = with_target(triton_server.settings, mode, 600_000.0)
    values, seen = asyncio.run(shown_results(settings, mode, sessions=1))
    assert metric(values, "frontend_frame_latency_seconds_count", mode=mode) == seen == FRAMES
    assert metric(values, "frontend_deadline_misses_total", mode=mode) == 0
    assert metric(values, "frontend_deadline_miss_rate", mode=mode) == 0.0
    assert metric(values, "frontend_first_frame_seconds_count", mode=mode) == 1
    # the first result is timed from the session's first frame, so it cannot beat that frame's own latency
    first = metric(values, "frontend_first_frame_seconds_sum", mode=mode)
    assert 0 < first <= metric(values, "frontend_frame_latency_seconds_sum", mode=mode)
