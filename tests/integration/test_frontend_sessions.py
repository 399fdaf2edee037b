"""Session rules with a real app on a real port (in this process) and a real Triton: the per-mode
limit, duplicate users, idle timeout, flooding, shutdown, and riding out a Triton outage."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from frontend_helpers import TcpRelay, free_port, metric, parse_metrics, serve_in_process, with_overrides
from triton_calls import jpeg, scene

from frontends.client import ProtocolClient, StreamReader

pytestmark = pytest.mark.triton

SIZE = 128  # tests/config.test.yaml


async def connected(http: aiohttp.ClientSession, base_url: str, mode: str, user_id: str) -> ProtocolClient:
    client = ProtocolClient(http, base_url, mode, user_id)
    assert (await client.connect())["status"] == "connected"
    return client


async def alive(client: ProtocolClient) -> bool:
    await client.send_json({"status": "ping"})
    return (await client.expect("pong"))["status"] == "pong"


def test_a_full_mode_refuses_with_1013_and_the_other_mode_is_unaffected(triton_server):
    settings = with_overrides(triton_server.settings, "server", max_sessions_per_mode=2)

    async def scenario() -> None:
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            first = await connected(http, base, "realtime", "one")
            second = await connected(http, base, "realtime", "two")
            third = ProtocolClient(http, base, "realtime", "three")
            refusal = await third.connect()
            assert refusal["status"] == "error" and "full" in refusal["message"]
            assert (await third.expect("closed"))["code"] == 1013
            canvas = await connected(http, base, "canvas", "three")  # the canvas mode has its own limit
            assert await alive(first) and await alive(second) and await alive(canvas)
            await first.close()
            for _ in range(100):  # the freed place is usable once the first session is cleaned up
                retry = ProtocolClient(http, base, "realtime", "three")
                if (await retry.connect())["status"] == "connected":
                    break
                await retry.close()
                await asyncio.sleep(0.05)
            assert await alive(retry)
            for client in (second, canvas, retry):
                await client.close()

    asyncio.run(scenario())


def test_duplicate_user_replace_closes_the_old_connection_with_4001(triton_server):
    settings = with_overrides(triton_server.settings, "server", duplicate_user="replace")

    async def scenario() -> None:
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            old = await connected(http, base, "canvas", "twin")
            old_stream = StreamReader(http, old.stream_url)
            assert (await old_stream.start()).status == 200
            new = await connected(http, base, "canvas", "twin")
            assert (await old.expect("closed"))["code"] == 4001
            assert await old_stream.next_part() is None  # the old session's viewers are ended
            new_stream = StreamReader(http, new.stream_url)
            assert (await new_stream.start()).status == 200
            await new.send_frame(jpeg(scene(SIZE, 3)))
            assert await new_stream.next_part(wait_s=300) is not None
            await new.close()
            await new_stream.stop()

    asyncio.run(scenario())


def test_duplicate_user_reject_refuses_the_new_connection_with_4002(triton_server):
    settings = with_overrides(triton_server.settings, "server", duplicate_user="reject")

    async def scenario() -> None:
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            first = await connected(http, base, "realtime", "twin")
            second = ProtocolClient(http, base, "realtime", "twin")
            refusal = await second.connect()
            assert refusal["status"] == "error" and "already connected" in refusal["message"]
            assert (await second.expect("closed"))["code"] == 4002
            assert await alive(first)
            await first.close()

    asyncio.run(scenario())


def test_idle_session_gets_timeout_then_4003(triton_server):
    settings = with_overrides(triton_server.settings, "server", idle_timeout_s=1.0)

    async def scenario() -> list[dict]:
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            client = await connected(http, base, "canvas", "sleepy")
            messages = [await client.next_message(wait_s=30) for _ in range(3)]
            await client.close()
            return messages

    send_frame, timeout, closed = asyncio.run(scenario())
    assert send_frame == {"status": "send_frame"}
    assert timeout["status"] == "timeout" and "idle_timeout_s" in timeout["message"]
    assert closed == {"status": "closed", "code": 4003}


def test_a_session_waiting_for_its_results_is_not_idle(triton_server):
    """Canvas drawings queued longer than the idle timeout: the client is waiting, not idle."""
    settings = with_overrides(triton_server.settings, "server", idle_timeout_s=1.0)
    drawings = [jpeg(scene(SIZE, 70 + i)) for i in range(4)]

    async def scenario() -> int:
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            client = await connected(http, base, "canvas", "patient")
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            for drawing in drawings:
                await client.send_frame(drawing)
            parts = [await stream.next_part(wait_s=300) for _ in drawings]
            await client.close()
            await stream.stop()
            return sum(part is not None for part in parts)

    assert asyncio.run(scenario()) == len(drawings)


def test_flooding_is_refused_then_closed_with_1008(triton_server):
    settings = with_overrides(triton_server.settings, "server", max_messages_per_second=10)

    async def scenario() -> list[dict]:
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            client = await connected(http, base, "realtime", "flood")
            for _ in range(100):
                if client.ws.closed:
                    break
                await client.ws.send_str(json.dumps({"status": "ping"}))
            messages = []
            while (message := await client.next_message())["status"] != "closed":
                messages.append(message)
            return [*messages, message]

    messages = asyncio.run(scenario())
    statuses = [m["status"] for m in messages]
    assert statuses.count("pong") >= 10  # a second's worth was answered
    assert any(m["status"] == "error" and "max_messages_per_second" in m["message"] for m in messages)
    assert messages[-1] == {"status": "closed", "code": 1008}


def test_shutdown_closes_sessions_with_1001_and_ends_streams(triton_server):
    async def scenario() -> tuple[dict, dict, bytes | None]:
        async with aiohttp.ClientSession() as http:
            async with serve_in_process(triton_server.settings) as base:
                realtime = await connected(http, base, "realtime", "stayer")
                canvas = await connected(http, base, "canvas", "stayer")
                stream = StreamReader(http, canvas.stream_url)
                await stream.start()
            # leaving the block shut the server down
            return await realtime.expect("closed"), await canvas.expect("closed"), await stream.next_part()

    realtime_closed, canvas_closed, end = asyncio.run(scenario())
    assert realtime_closed["code"] == canvas_closed["code"] == 1001
    assert end is None


@pytest.mark.parametrize("mode", ["canvas", "realtime"])
def test_triton_outage_is_reported_and_the_session_recovers(triton_server, mode):
    """Triton unreachable: an error per frame, the session stays, and frames work again afterwards.

    The frontends reach Triton through a relay that is cut and restored; a realtime session
    must open a fresh sequence (START) once Triton is back.
    """
    relay_port = free_port()
    grpc_port = int(triton_server.grpc_url.rsplit(":", 1)[1])
    settings = with_overrides(triton_server.settings, "triton", urls=[f"127.0.0.1:{relay_port}"])
    frames = [jpeg(scene(SIZE, 300 + i)) for i in range(200)]

    async def scenario() -> None:
        relay = TcpRelay(grpc_port)
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            # started before Triton is reachable: settings and readiness say so, and recover later
            async with http.get(f"{base}/api/{mode}/settings") as response:
                assert response.status == 503
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503 and (await response.json())["ready"] is False
            await relay.start(relay_port)
            client = await connected(http, base, mode, "survivor")
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            sent = iter(frames)
            assert await produces_a_part(client, stream, sent)

            await relay.cut()
            await client.send_frame(next(sent))
            error = await client.expect("error")
            assert "unreachable" in error["message"] or "did not answer" in error["message"]
            assert await alive(client)

            await relay.start(relay_port)
            assert await produces_a_part(client, stream, sent)
            async with http.get(f"{base}/api/{mode}/settings") as response:
                assert response.status == 200
            await client.close()
            await stream.stop()
            await relay.cut()

    asyncio.run(scenario())


async def produces_a_part(client: ProtocolClient, stream: StreamReader, frames) -> bool:
    """Send frames one at a time until one yields a result; errors while Triton reconnects are fine.

    Each frame waits for its outcome (a part or an error) before the next is sent, so a realtime
    frame is never superseded here and send_frame messages need no answer.
    """
    for frame in frames:
        await client.send_frame(frame)
        part = asyncio.ensure_future(stream.next_part(wait_s=300))
        error = asyncio.ensure_future(client.expect("error"))
        done, pending = await asyncio.wait([part, error], return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if part in done and part.result() is not None:
            return True
        await asyncio.sleep(0.5)  # Triton still unreachable: try again shortly
    return False


def test_metrics_count_sessions(triton_server):
    async def scenario() -> tuple[float, float]:
        async with serve_in_process(triton_server.settings) as base, aiohttp.ClientSession() as http:
            client = await connected(http, base, "canvas", "counted")
            async with http.get(f"{base}/metrics") as response:
                during = metric(parse_metrics(await response.text()), "frontend_sessions", mode="canvas")
            await client.close()
            for _ in range(100):
                async with http.get(f"{base}/metrics") as response:
                    after = metric(parse_metrics(await response.text()), "frontend_sessions", mode="canvas")
                if after == 0:
                    break
                await asyncio.sleep(0.05)
            return during, after

    assert asyncio.run(scenario()) == (1.0, 0.0)
