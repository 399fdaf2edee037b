"""A user_id is not a key: who may watch a session's MJPEG stream and who may replace the session.

A real app on a real loopback port and a real Triton. "Another address" is a client bound to
127.0.0.2 (Linux routes all of 127.0.0.0/8 to loopback), so the server sees a different peer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from frontend_helpers import serve_in_process, with_overrides
from triton_calls import jpeg, scene

from frontends.client import ProtocolClient, StreamReader
from sdconfig import Settings

pytestmark = pytest.mark.triton

SIZE = 128  # tests/config.test.yaml
OTHER_ADDRESS = "127.0.0.2"


def with_security(settings: Settings, **values: object) -> Settings:
    security = {**settings.server.security.model_dump(mode="json"), **values}
    return with_overrides(settings, "server", security=security)


@asynccontextmanager
async def clients() -> AsyncIterator[tuple[aiohttp.ClientSession, aiohttp.ClientSession]]:
    """The owner's HTTP client (127.0.0.1) and a stranger's (127.0.0.2)."""
    stranger = aiohttp.TCPConnector(local_addr=(OTHER_ADDRESS, 0))
    async with aiohttp.ClientSession() as owner, aiohttp.ClientSession(connector=stranger) as other:
        yield owner, other


async def opened(http: aiohttp.ClientSession, base: str, mode: str, user_id: str, **kwargs: str) -> ProtocolClient:
    client = ProtocolClient(http, base, mode, user_id, **kwargs)
    first = await client.connect()
    assert first["status"] == "connected", first
    return client


async def answer(http: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with http.get(url) as response:
        return response.status, json.loads(await response.text())


async def alive(client: ProtocolClient) -> bool:
    await client.send_json({"status": "ping"})
    return (await client.expect("pong", wait_s=30))["status"] == "pong"


def test_the_connected_message_carries_a_fresh_random_session_key(triton_server) -> None:
    async def scenario() -> list[str]:
        async with serve_in_process(triton_server.settings) as base, aiohttp.ClientSession() as http:
            keys = []
            for user in ("key-a", "key-b"):
                client = await opened(http, base, "canvas", user)
                keys.append(client.session_key)
                await client.close()
            return keys

    first, second = asyncio.run(scenario())
    assert first != second
    assert all(len(key) >= 32 and key.replace("-", "").replace("_", "").isalnum() for key in (first, second))


@pytest.mark.parametrize("mode", ["realtime", "canvas"])
def test_another_address_sees_a_stream_only_with_the_session_key(triton_server, mode: str) -> None:
    async def scenario() -> None:
        async with serve_in_process(triton_server.settings) as base, clients() as (owner_http, other_http):
            owner = await opened(owner_http, base, mode, f"watched-{mode}")
            bare = f"{base}/api/{mode}/stream/{owner.user_id}"
            refused = await answer(other_http, bare)
            wrong = await answer(other_http, f"{bare}?session_key={'x' * 32}")
            unknown = await answer(other_http, f"{base}/api/{mode}/stream/nobody-{mode}")
            assert refused[0] == wrong[0] == unknown[0] == 404
            # the same answer as for an id nobody uses: live ids cannot be probed
            same = unknown[1]["message"].replace(f"nobody-{mode}", owner.user_id)
            assert refused[1]["message"] == wrong[1]["message"] == same
            assert "session_key" in same
            watcher = StreamReader(other_http, owner.stream_url)  # with the key, from anywhere
            assert (await watcher.start()).status == 200
            await owner.expect("send_frame")
            await owner.send_frame(jpeg(scene(SIZE, 4)))
            assert await watcher.next_part(wait_s=300) is not None
            await watcher.stop()
            await owner.close()

    asyncio.run(scenario())


def test_a_wrong_key_is_refused_even_from_the_sessions_own_address(triton_server) -> None:
    async def scenario() -> None:
        async with serve_in_process(triton_server.settings) as base, aiohttp.ClientSession() as http:
            owner = await opened(http, base, "canvas", "own-address")
            bare = f"{base}/api/canvas/stream/{owner.user_id}"
            assert (await answer(http, f"{bare}?session_key={'y' * 32}"))[0] == 404
            legacy = StreamReader(http, bare)  # no key at all: the address stands in (the default)
            assert (await legacy.start()).status == 200
            await legacy.stop()
            await owner.close()

    asyncio.run(scenario())


def test_without_the_address_fallback_only_the_key_opens_a_stream(triton_server) -> None:
    settings = with_security(triton_server.settings, session_address_fallback=False)

    async def scenario() -> None:
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            owner = await opened(http, base, "canvas", "strict")
            assert (await answer(http, f"{base}/api/canvas/stream/{owner.user_id}"))[0] == 404
            keyed = StreamReader(http, owner.stream_url)
            assert (await keyed.start()).status == 200
            await keyed.stop()
            await owner.close()

    asyncio.run(scenario())


def test_another_address_cannot_replace_a_session_without_its_key(triton_server) -> None:
    settings = with_overrides(triton_server.settings, "server", duplicate_user="replace")

    async def scenario() -> None:
        async with serve_in_process(settings) as base, clients() as (owner_http, other_http):
            owner = await opened(owner_http, base, "canvas", "taken")
            stream = StreamReader(owner_http, owner.stream_url)
            assert (await stream.start()).status == 200
            intruder = ProtocolClient(other_http, base, "canvas", "taken")
            refusal = await intruder.connect()
            assert refusal["status"] == "error" and "session_key" in refusal["message"], refusal
            assert (await intruder.expect("closed"))["code"] == 4002
            assert await alive(owner)  # the owner goes on, and its stream still shows its own drawings
            await owner.send_frame(jpeg(scene(SIZE, 5)))
            assert await stream.next_part(wait_s=300) is not None
            # with the key, a reconnect from anywhere (a phone changing networks) takes over
            successor = await opened(other_http, base, "canvas", "taken", session_key=owner.session_key)
            assert (await owner.expect("closed"))["code"] == 4001
            assert successor.session_key != owner.session_key
            old_key_stream = f"{base}/api/canvas/stream/taken?session_key={owner.session_key}"
            assert (await answer(owner_http, old_key_stream))[0] == 404
            await successor.close()
            await stream.stop()

    asyncio.run(scenario())


def test_the_same_address_may_replace_without_the_key_unless_the_fallback_is_off(triton_server) -> None:
    async def replaced(settings: Settings) -> int | None:
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            owner = await opened(http, base, "realtime", "reload")
            again = ProtocolClient(http, base, "realtime", "reload")
            first = await again.connect()
            code = (await owner.expect("closed"))["code"] if first["status"] == "connected" else None
            await again.close()
            await owner.close()
            return code

    base_settings = with_overrides(triton_server.settings, "server", duplicate_user="replace")
    assert asyncio.run(replaced(base_settings)) == 4001  # a page reload, from the same browser
    assert asyncio.run(replaced(with_security(base_settings, session_address_fallback=False))) is None


def test_a_demo_protocol_client_keeps_its_stream_by_address_and_a_stranger_does_not_get_it(triton_server) -> None:
    """StreamDiffusion's demo pages open /api/stream/{id} without any key."""

    async def scenario() -> tuple[dict, int, int]:
        async with serve_in_process(triton_server.settings) as base, clients() as (owner_http, other_http):
            async with owner_http.ws_connect(f"{base}/api/ws/demo-user") as ws:
                greeting = await ws.receive_json()
                own = StreamReader(owner_http, f"{base}/api/stream/demo-user")
                own_status = (await own.start()).status
                stranger = (await answer(other_http, f"{base}/api/stream/demo-user"))[0]
                await own.stop()
            return greeting, own_status, stranger

    greeting, own_status, stranger = asyncio.run(scenario())
    assert greeting["status"] == "connected" and greeting["message"] == "Connected" and greeting["session_key"]
    assert (own_status, stranger) == (200, 404)


def test_the_access_log_never_shows_a_session_key(triton_server, caplog) -> None:
    async def scenario() -> str:
        async with serve_in_process(triton_server.settings) as base, aiohttp.ClientSession() as http:
            owner = await opened(http, base, "canvas", "logged-key")
            async with http.get(owner.stream_url) as stream:
                assert stream.status == 200
            again = await opened(http, base, "canvas", "logged-key", session_key=owner.session_key)
            await again.close()
            await owner.close()
            return owner.session_key or ""

    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        key = asyncio.run(scenario())
    lines = [record.getMessage() for record in caplog.records if record.name == "aiohttp.access"]
    assert any("/api/canvas/stream/logged-key?session_key=REDACTED" in line for line in lines), lines
    assert any("/api/canvas/ws/logged-key?session_key=REDACTED" in line for line in lines), lines
    assert key and not any(key in line for line in lines)
