"""The Host check (DNS rebinding) and the header read deadline (slowloris), on a real app and port.

Raw sockets send exactly the bytes a hostile client would: a chosen Host, headers a few bytes at
a time, a request with no Host at all.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from frontend_helpers import serve_in_process, with_overrides

from sdconfig import Settings

pytestmark = pytest.mark.triton


def with_security(settings: Settings, **values: object) -> Settings:
    security = {**settings.server.security.model_dump(mode="json"), **values}
    return with_overrides(settings, "server", security=security)


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def raw_request(port: int, head: bytes) -> tuple[int, bytes]:
    """Send one request head as it is; the status and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def get(path: str, host: str | None, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", *([f"Host: {host}"] if host is not None else []), *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
)


def test_a_host_not_served_gets_421_naming_the_key_even_with_a_matching_origin(triton_server) -> None:
    async def scenario() -> dict[str, tuple[int, bytes]]:
        async with serve_in_process(triton_server.settings) as base:
            port = port_of(base)
            return {
                "rebinding upgrade": await raw_request(
                    port,
                    get(
                        "/api/realtime/ws/victim", "evil.example:8000", "Origin: http://evil.example:8000", *UPGRADE
                    ).replace(b"Connection: close\r\n", b""),
                ),
                "page": await raw_request(port, get("/realtime", "evil.example")),
                "settings": await raw_request(port, get("/api/canvas/settings", "192.0.2.9:8000")),
                "no host": await raw_request(port, b"GET /api/canvas/settings HTTP/1.0\r\n\r\n"),
            }

    answers = asyncio.run(scenario())
    for name, (status, body) in answers.items():
        assert status == 421, (name, status, body)
        message = json.loads(body)["message"]
        assert "server.security.allowed_hosts" in message, (name, message)
    assert "evil.example:8000" in json.loads(answers["rebinding upgrade"][1])["message"]
    assert "no Host header" in json.loads(answers["no host"][1])["message"]


def test_loopback_names_configured_names_and_probes_are_served(triton_server) -> None:
    settings = with_security(triton_server.settings, allowed_hosts=["sd.example.com", ".lan.example"])

    async def scenario() -> dict[str, int]:
        async with serve_in_process(settings) as base:
            port = port_of(base)
            hosts = {
                "localhost": f"localhost:{port}",
                "127.0.0.1": f"127.0.0.1:{port}",
                "127.0.0.2": "127.0.0.2",
                "::1": f"[::1]:{port}",
                "app.localhost": "app.localhost",
                "configured": "SD.example.com.",
                "domain": "lan.example:8443",
                "subdomain": "box.lan.example",
            }
            statuses = {
                name: (await raw_request(port, get("/api/canvas/queue", host)))[0] for name, host in hosts.items()
            }
            statuses["other subdomain"] = (await raw_request(port, get("/api/canvas/queue", "x.sd.example.com")))[0]
            statuses["suffix trick"] = (await raw_request(port, get("/api/canvas/queue", "evillan.example")))[0]
            for probe in ("/healthz", "/metrics"):  # kubelets and Prometheus address pods by IP
                statuses[probe] = (await raw_request(port, get(probe, "10.1.2.3:8000")))[0]
            return statuses

    statuses = asyncio.run(scenario())
    assert statuses == {
        "localhost": 200,
        "127.0.0.1": 200,
        "127.0.0.2": 200,
        "::1": 200,
        "app.localhost": 200,
        "configured": 200,
        "domain": 200,
        "subdomain": 200,
        "other subdomain": 421,
        "suffix trick": 421,
        "/healthz": 200,
        "/metrics": 200,
    }


def test_a_star_serves_any_host(triton_server) -> None:
    async def scenario() -> int:
        async with serve_in_process(with_security(triton_server.settings, allowed_hosts=["*"])) as base:
            return (await raw_request(port_of(base), get("/api/canvas/queue", "anything.example")))[0]

    assert asyncio.run(scenario()) == 200


async def trickle(port: int, after_one_request: bool, limit_s: float) -> float:
    """Seconds until the server closes a connection that sends a header line every 0.2 s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if after_one_request:
            writer.write(get("/healthz", "localhost").replace(b"Connection: close\r\n", b""))
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)  # "ok"... any short body; the head is what counts
        started = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        while time.monotonic() - started < limit_s:
            try:
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
            except ConnectionError:
                break
            try:
                if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                break
        return time.monotonic() - started
    finally:
        writer.close()


def test_slowly_sent_headers_are_cut_off_after_the_header_timeout(triton_server) -> None:
    settings = with_overrides(triton_server.settings, "server", header_timeout_s=1.5)

    async def scenario() -> tuple[float, float, list[float]]:
        async with serve_in_process(settings) as base:
            port = port_of(base)
            first = await trickle(port, after_one_request=False, limit_s=20)
            later = await trickle(port, after_one_request=True, limit_s=20)
            many = await asyncio.gather(*(trickle(port, False, 20) for _ in range(50)))
            return first, later, list(many)

    first, later, many = asyncio.run(scenario())
    assert first < 4, first  # without the deadline these stay open for aiohttp's 75 s keep-alive
    assert later < 4, later
    assert max(many) < 6, max(many)


def test_sessions_and_streams_outlive_the_header_timeout(triton_server) -> None:
    """The deadline is for request heads; a WebSocket or MJPEG answer in progress is not cut."""
    settings = with_overrides(triton_server.settings, "server", header_timeout_s=1.0)

    async def scenario() -> tuple[str, int]:
        async with (
            serve_in_process(settings) as base,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{base}/api/canvas/ws/long-lived") as ws,
        ):
            key = (await ws.receive_json())["session_key"]
            async with http.get(f"{base}/api/canvas/stream/long-lived?session_key={key}") as stream:
                await asyncio.sleep(3.5)
                await ws.send_str(json.dumps({"status": "ping"}))
                while (message := await ws.receive_json(timeout=30))["status"] != "pong":
                    pass
                return message["status"], stream.status

    assert asyncio.run(scenario()) == ("pong", 200)


def test_a_slow_but_timely_request_is_answered(triton_server) -> None:
    settings = with_overrides(triton_server.settings, "server", header_timeout_s=3.0)

    async def scenario() -> bytes:
        async with serve_in_process(settings) as base:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(base))
            for line in (b"GET /healthz HTTP/1.1\r\n", b"Host: localhost\r\n", b"Connection: close\r\n", b"\r\n"):
                writer.write(line)
                await writer.drain()
                await asyncio.sleep(0.4)
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return answer

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 200")
