"""SIGTERM with drawings queued: a real frontends process and Triton, a canvas client with a backlog.

What must hold: every drawing the server took gets its MJPEG part or an error naming it ("frame N: not
processed, the server is shutting down; reconnect ...") before the session's 1001 close, in order;
with server.shutdown_drain_s long enough, every one gets its part. Realtime sessions close at once.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import aiohttp
import pytest
from frontend_helpers import moving_scene
from triton_calls import jpeg

from frontends.client import ProtocolClient, StreamReader
from tests.servers import TritonServer, launch_frontends

pytestmark = pytest.mark.triton
DRAWINGS = 4
"""tests/config.test.yaml's canvas.performance.max_pending_drawings: all of them are queued at once."""


async def queue_drawings(client: ProtocolClient, size: int) -> None:
    """Send DRAWINGS drawings without waiting, then wait until the server has taken each (send_frame)."""
    assert (await client.expect("send_frame"))["status"] == "send_frame"  # the greeting's
    for t in range(1, DRAWINGS + 1):
        await client.send_frame(jpeg(moving_scene(t * 5, size)), seed=t)
    for _ in range(DRAWINGS):
        assert (await client.expect("send_frame", "error"))["status"] == "send_frame"


async def answers_until_closed(client: ProtocolClient, stream: StreamReader) -> dict[str, Any]:
    """The errors up to the close, its code, and the parts up to the stream's end."""
    errors, parts = [], 0
    while (message := await client.expect("error", wait_s=60))["status"] != "closed":
        errors.append(message["message"])
    while await stream.next_part(wait_s=60) is not None:
        parts += 1
    return {"errors": errors, "code": message["code"], "parts": parts}


def sigterm_with_drawings_queued(triton: TritonServer, drain_s: float) -> dict[str, Any]:
    frontend = launch_frontends(triton, {"SD__SERVER__SHUTDOWN_DRAIN_S": str(drain_s)})
    size = triton.settings.pipeline.width
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            canvas = ProtocolClient(http, frontend.base_url, "canvas", "drain-canvas")
            realtime = ProtocolClient(http, frontend.base_url, "realtime", "drain-realtime")
            for client in (canvas, realtime):
                assert (await client.connect())["status"] == "connected"
            stream = StreamReader(http, canvas.stream_url)
            assert (await stream.start()).status == 200
            await queue_drawings(canvas, size)
            frontend.server.process.send_signal(signal.SIGTERM)
            closes: list[str] = []

            async def closed(name: str, client: ProtocolClient) -> int:
                code = (await client.expect("closed", wait_s=60))["code"]
                closes.append(name)
                return code

            realtime_close = asyncio.create_task(closed("realtime", realtime))
            seen.update(await answers_until_closed(canvas, stream))
            closes.append("canvas")
            seen["realtime code"] = await realtime_close
            seen["close order"] = closes
            await stream.stop()
            for client in (canvas, realtime):
                await client.close()

    try:
        asyncio.run(scenario())
        seen["exit"] = frontend.server.process.wait(60)
    finally:
        frontend.server.stop()
    return seen


def test_sigterm_lets_queued_drawings_finish_within_the_drain_budget(triton_server: TritonServer):
    seen = sigterm_with_drawings_queued(triton_server, drain_s=60)
    assert seen["errors"] == []
    assert seen["parts"] == DRAWINGS
    assert seen["code"] == 1001
    assert seen["realtime code"] == 1001
    assert seen["close order"] == ["realtime", "canvas"]  # realtime did not wait for the drawings
    assert seen["exit"] == 0


def test_sigterm_past_the_drain_budget_refuses_each_unanswered_drawing_by_number(triton_server: TritonServer):
    seen = sigterm_with_drawings_queued(triton_server, drain_s=0)
    answered = seen["parts"]
    assert answered < DRAWINGS, "the budget of 0 s left drawings to refuse"
    assert seen["errors"] == [
        f"frame {n}: not processed, the server is shutting down; reconnect and send it again"
        for n in range(answered + 1, DRAWINGS + 1)
    ]
    assert seen["code"] == 1001
    assert seen["realtime code"] == 1001
    assert seen["exit"] == 0
