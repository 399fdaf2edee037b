"""Two real tritonservers behind one frontends process: users spread, sequences stick, a lost server is avoided."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from frontends.client import ProtocolClient
from frontends.routing import rendezvous
from tests.integration.frontend_helpers import live_sequences, moving_scene, triton_counts
from tests.servers import FrontendServer, TritonServer, launch_frontends, launch_triton
from tests.triton_calls import jpeg

pytestmark = pytest.mark.triton
REALTIME = "streamdiffusion_realtime"
CANVAS = "streamdiffusion_canvas"


@pytest.fixture(scope="module")
def second_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    server = launch_triton(tmp_path_factory.mktemp("triton-b"))
    yield server
    server.server.stop()


@pytest.fixture(scope="module")
def two_server_frontend(triton_server: TritonServer, second_triton: TritonServer) -> Iterator[FrontendServer]:
    urls = f"[{triton_server.grpc_url}, {second_triton.grpc_url}]"
    server = launch_frontends(
        triton_server,
        {"SD__TRITON__URLS": urls, "SD__TRITON__HEALTH_INTERVAL_S": "0.5", "SD__REALTIME__PERFORMANCE__MAX_FPS": "0"},
    )
    yield server
    server.server.stop()


def users_for(urls: list[str], per_server: int) -> dict[str, list[str]]:
    """User ids that rendezvous hashing puts on each server (the frontends use the same function)."""
    chosen: dict[str, list[str]] = {url: [] for url in urls}
    i = 0
    while any(len(users) < per_server for users in chosen.values()):
        user = f"spread-{i}"
        target = rendezvous(user, urls)
        if len(chosen[target]) < per_server:
            chosen[target].append(user)
        i += 1
    return chosen


async def realtime_frames(base_url: str, user: str, count: int, size: int) -> list[dict]:
    """Answer `count` send_frame requests with a changing scene; return the error messages seen."""
    errors = []
    async with aiohttp.ClientSession() as http, ProtocolClient(http, base_url, "realtime", user) as client:
        await client.connect()
        for t in range(count):
            message = await client.expect("send_frame", "error")
            if message["status"] == "error":
                errors.append(message)
                message = await client.expect("send_frame")
            await client.send_frame(jpeg(moving_scene(t, size)), prompt="a lake")
        await client.expect("send_frame", "error")
        await asyncio.sleep(0.5)
    return errors


def test_sessions_spread_and_stay_on_their_server(two_server_frontend, triton_server, second_triton) -> None:
    servers = {triton_server.grpc_url: triton_server, second_triton.grpc_url: second_triton}
    users = users_for(list(servers), 2)
    before = {url: triton_counts(url, REALTIME)[0] for url in servers}
    size = triton_server.settings.pipeline.width

    async def run_all() -> list[list[dict]]:
        everyone = [u for group in users.values() for u in group]
        return await asyncio.gather(*(realtime_frames(two_server_frontend.base_url, u, 6, size) for u in everyone))

    errors = asyncio.run(run_all())
    assert not any(errors), errors
    for url, server in servers.items():
        served = triton_counts(url, REALTIME)[0] - before[url]
        assert served >= 2 * 4, f"{url} served {served} realtime requests for its two users"
        assert wait_for(lambda server=server: live_sequences(server.metrics_url, REALTIME) == 0), "sequences ended"


def test_a_lost_server_gets_no_new_sessions(two_server_frontend, triton_server, second_triton) -> None:
    size = triton_server.settings.pipeline.width
    users = users_for([triton_server.grpc_url, second_triton.grpc_url], 1)
    lost_user = users[second_triton.grpc_url][0]
    second_triton.server.stop()
    before = triton_counts(triton_server.grpc_url, REALTIME)[0]
    errors = asyncio.run(realtime_frames(two_server_frontend.base_url, lost_user, 5, size))
    # at most the first frame fails before the health probe or the failed call marks the server down
    assert len(errors) <= 1
    assert triton_counts(triton_server.grpc_url, REALTIME)[0] - before >= 3

    async def drawing() -> bytes:
        async with (
            aiohttp.ClientSession() as http,
            ProtocolClient(http, two_server_frontend.base_url, "canvas", lost_user) as client,
        ):
            await client.connect()
            await client.send_frame(jpeg(moving_scene(1, size)), seed=3)
            reply = await client.expect("send_frame", "error")
            return reply["status"]

    assert asyncio.run(drawing()) == "send_frame"
    status = asyncio.run(_readyz(two_server_frontend.base_url))
    assert status == 200, "one healthy server keeps the frontends ready"


def wait_for(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


async def _readyz(base_url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/readyz") as answer:
        return answer.status
