"""The frontends' defences, each against the real app on a real loopback port: security headers,
the WebSocket Origin check, the access token, per-address limits, the message-size limit before
buffering, static files without traversal, and a token-free access log.

None of this needs a model, so the app is pointed at a Triton port where nothing listens: these
tests stay fast and run without the `triton` marker.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import struct
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from frontend_helpers import serve_app, serve_in_process, with_overrides

from frontends.app import create_app
from frontends.client import ProtocolClient
from frontends.pages import add_pages
from frontends.security import RedactingAccessLogger
from sdconfig import Settings, load_settings
from tests.servers import TEST_CONFIG, free_port

TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def settings() -> Settings:
    """tests/config.test.yaml with Triton on a port where nothing listens."""
    return with_overrides(load_settings(TEST_CONFIG, env={}), "triton", urls=[f"127.0.0.1:{free_port()}"])


def secured(settings: Settings, **security: object) -> Settings:
    return with_overrides(settings, "server", security={**settings.server.security.model_dump(), **security})


async def raw_request(base: str, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send a request line and headers exactly as written (no client normalizes the path)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"{head}\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ")[1]), headers, body


# --------------------------------------------------------------------------- headers


def test_pages_and_api_answers_carry_security_headers(settings):
    async def scenario() -> dict[str, dict[str, str]]:
        seen = {}
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            for path in ("/", "/realtime", "/canvas", "/static/api.js", "/healthz", "/api/canvas/settings"):
                async with http.get(base + path) as response:
                    seen[path] = dict(response.headers)
        return seen

    seen = asyncio.run(scenario())
    for path, headers in seen.items():
        assert headers["Server"] == "streamdiffusion", path  # no versions
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        assert "camera=(self)" in headers["Permissions-Policy"], path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
    for page in ("/", "/realtime", "/canvas"):
        csp = seen[page]["Content-Security-Policy"]
        assert "img-src 'self' blob:" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert seen["/api/canvas/settings"]["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


# --------------------------------------------------------------------------- origin


async def upgrade_status(http: aiohttp.ClientSession, url: str, **options: object) -> int:
    """101 when the upgrade went through (the session then closed), else the refusal's status."""
    try:
        async with http.ws_connect(url, **options) as ws:
            assert (await ws.receive_json())["status"] == "connected"
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


def test_websocket_origin_must_be_the_own_host_or_allowed(settings):
    allowed = "https://studio.example.com"
    strict = secured(settings, allowed_origins=[allowed], allow_missing_origin=False)

    async def scenario() -> dict[str, int]:
        async with serve_in_process(strict) as base, aiohttp.ClientSession() as http:
            port = base.rsplit(":", 1)[1]
            url = f"{base}/api/canvas/ws/origin"
            origins = {
                "own host": base,
                "allowed": allowed,
                "allowed with its default port": "https://studio.example.com:443",
                "another site": "https://evil.example",
                "another port": f"http://127.0.0.1:{int(port) + 1}",
                "same address, other name": f"http://localhost:{port}",
                "opaque": "null",
                "garbage": "http://[::1",
            }
            seen = {name: await upgrade_status(http, url, origin=origin) for name, origin in origins.items()}
            seen["none"] = await upgrade_status(http, url)
            async with http.get(url, headers={"Origin": "https://evil.example", "Upgrade": "websocket"}) as answer:
                seen["refusal body"] = answer.status
                body = await answer.json()
                assert body["status"] == "error" and "allowed_origins" in body["message"]
            return seen

    seen = asyncio.run(scenario())
    assert seen == {
        "own host": 101,
        "allowed": 101,
        "allowed with its default port": 101,
        "another site": 403,
        "another port": 403,
        "same address, other name": 403,
        "opaque": 403,
        "garbage": 403,
        "none": 403,
        "refusal body": 403,
    }


def test_clients_without_origin_are_let_in_by_default(settings):
    async def scenario() -> tuple[int, int]:
        async with serve_in_process(settings) as base, aiohttp.ClientSession() as http:
            url = f"{base}/api/realtime/ws/script"
            return await upgrade_status(http, url), await upgrade_status(http, url, origin="https://evil.example")

    assert asyncio.run(scenario()) == (101, 403)


# --------------------------------------------------------------------------- access token


def test_access_token_guards_the_api_and_metrics_but_not_pages_or_probes(settings):
    guarded = secured(settings, access_token=TOKEN)

    async def scenario() -> dict[str, int]:
        seen: dict[str, int] = {}
        async with serve_in_process(guarded) as base, aiohttp.ClientSession() as http:

            async def status(name: str, path: str, **options: object) -> None:
                async with http.get(base + path, **options) as response:
                    seen[name] = response.status
                    if response.status == 401:
                        assert "token" in (await response.json())["message"]

            await status("settings, no token", "/api/canvas/settings")
            await status("settings, wrong token", "/api/canvas/settings?token=" + "x" * len(TOKEN))
            await status("settings, query", f"/api/canvas/settings?token={TOKEN}")
            await status("settings, bearer", "/api/canvas/settings", headers={"Authorization": f"Bearer {TOKEN}"})
            await status("legacy settings, no token", "/api/settings")
            await status("stream, no token", "/api/canvas/stream/someone")
            await status("metrics, no token", "/metrics")
            await status("metrics, bearer", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            for page in ("/", "/realtime", "/canvas", "/static/api.js", "/healthz"):
                await status(page, page)

            ws = f"{base}/api/canvas/ws/tokened"
            seen["ws, no token"] = await upgrade_status(http, ws)
            seen["ws, wrong subprotocol token"] = await upgrade_status(
                http, ws, protocols=("streamdiffusion", "token.nope")
            )
            seen["ws, query"] = await upgrade_status(http, f"{ws}?token={TOKEN}")
            async with http.ws_connect(ws, protocols=("streamdiffusion", f"token.{TOKEN}")) as socket:
                assert (await socket.receive_json())["status"] == "connected"
                seen["ws, subprotocol"] = 101
                assert socket.protocol == "streamdiffusion"  # a browser needs one of its offers echoed
        return seen

    seen = asyncio.run(scenario())
    assert seen == {
        "settings, no token": 401,
        "settings, wrong token": 401,
        "settings, query": 503,  # let through; Triton is not there
        "settings, bearer": 503,
        "legacy settings, no token": 401,
        "stream, no token": 401,
        "metrics, no token": 401,
        "metrics, bearer": 200,
        "/": 200,
        "/realtime": 200,
        "/canvas": 200,
        "/static/api.js": 200,
        "/healthz": 200,
        "ws, no token": 401,
        "ws, wrong subprotocol token": 401,
        "ws, query": 101,
        "ws, subprotocol": 101,
    }


def test_the_access_log_never_shows_the_token(settings, caplog):
    guarded = secured(settings, access_token=TOKEN)

    async def scenario() -> None:
        runner = web.AppRunner(create_app(guarded), access_log_class=RedactingAccessLogger)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/metrics?token={TOKEN}&x=1") as response:
                    assert response.status == 200
                async with http.ws_connect(f"http://127.0.0.1:{port}/api/canvas/ws/logged?token={TOKEN}") as ws:
                    await ws.receive_json()
        finally:
            await runner.cleanup()

    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        asyncio.run(scenario())
    lines = [record.getMessage() for record in caplog.records if record.name == "aiohttp.access"]
    assert any("/metrics?token=REDACTED&x=1" in line for line in lines), lines
    assert any("/api/canvas/ws/logged?token=REDACTED" in line for line in lines), lines
    assert not any(TOKEN in line for line in lines)


# --------------------------------------------------------------------------- per-address limits


def test_sessions_and_streams_per_address_are_limited(settings):
    limited = secured(settings, max_sessions_per_client=2)

    async def scenario() -> None:
        async with serve_in_process(limited) as base, aiohttp.ClientSession() as http:
            first = ProtocolClient(http, base, "canvas", "first")
            second = ProtocolClient(http, base, "realtime", "second")  # both modes count together
            third = ProtocolClient(http, base, "canvas", "third")
            assert (await first.connect())["status"] == "connected"
            assert (await second.connect())["status"] == "connected"
            refusal = await third.connect()
            assert refusal["status"] == "error" and "max_sessions_per_client" in refusal["message"]
            assert (await third.expect("closed"))["code"] == 1013

            streams = [await http.get(first.stream_url) for _ in range(3)]
            assert [s.status for s in streams] == [200, 200, 429]
            assert "max_sessions_per_client" in (await streams[2].json())["message"]
            for stream in streams:
                stream.close()

            await first.close()
            for _ in range(100):  # the place is free once the first session is cleaned up
                retry = ProtocolClient(http, base, "canvas", "third")
                if (await retry.connect())["status"] == "connected":
                    break
                await retry.close()
                await asyncio.sleep(0.05)
            await retry.send_json({"status": "ping"})
            assert (await retry.expect("pong"))["status"] == "pong"
            await retry.close()
            await second.close()

    asyncio.run(scenario())


def test_a_stream_whose_client_left_stops_counting(settings):
    """A page reopening its MJPEG stream on an idle canvas (no part would reveal the gone client)."""
    limited = secured(settings, max_sessions_per_client=1)

    async def scenario() -> list[int]:
        async with serve_in_process(limited) as base, aiohttp.ClientSession() as http:
            client = ProtocolClient(http, base, "canvas", "reopener")
            assert (await client.connect())["status"] == "connected"
            statuses = []
            for _ in range(3):
                for _ in range(100):
                    stream = await http.get(client.stream_url)
                    if stream.status == 200:
                        break
                    stream.close()
                    await asyncio.sleep(0.1)
                statuses.append(stream.status)
                stream.close()  # the client leaves; the session stays
            await client.close()
            return statuses

    assert asyncio.run(scenario()) == [200, 200, 200]


def test_messages_per_address_are_limited_over_all_its_sessions(settings):
    limited = with_overrides(
        secured(settings, max_messages_per_second_per_client=10), "server", max_messages_per_second=1000
    )

    async def scenario() -> list[dict]:
        async with serve_in_process(limited) as base, aiohttp.ClientSession() as http:
            clients = [ProtocolClient(http, base, "canvas", f"talker{i}") for i in range(2)]
            for client in clients:
                assert (await client.connect())["status"] == "connected"
            for _ in range(40):
                for client in clients:
                    if client.ws is not None and not client.ws.closed:
                        await client.send_json({"status": "ping"})
            messages = []
            for client in clients:
                await client.close()
                messages.extend(client.drain())
            return messages

    messages = asyncio.run(scenario())
    pongs = sum(m["status"] == "pong" for m in messages)
    refusals = [m for m in messages if m["status"] == "error"]
    assert pongs < 40, "two sessions together got past the per-address rate"
    assert any("max_messages_per_second_per_client" in m["message"] for m in refusals)
    assert any(m == {"status": "closed", "code": 1008} for m in messages), "a flood closes the session"


def test_forwarded_for_counts_only_behind_a_trusted_proxy(settings):
    async def admitted(config: Settings) -> list[str]:
        outcomes = []
        async with serve_in_process(config) as base, aiohttp.ClientSession() as http:
            clients = []
            for n, address in enumerate(("203.0.113.5", "203.0.113.6", "203.0.113.5")):
                client = ProtocolClient(http, base, "canvas", f"forwarded{n}")
                first = await client.connect(headers={"X-Forwarded-For": f"198.51.100.1, {address}"})
                outcomes.append(first["status"])
                clients.append(client)
            for client in clients:
                await client.close()
        return outcomes

    proxied = secured(settings, max_sessions_per_client=1, trusted_proxies=["127.0.0.0/8"])
    direct = secured(settings, max_sessions_per_client=1)
    assert asyncio.run(admitted(proxied)) == ["connected", "connected", "error"]
    assert asyncio.run(admitted(direct)) == ["connected", "error", "error"]  # the header is not believed


# --------------------------------------------------------------------------- message size


def test_an_oversized_message_is_refused_from_its_header_before_any_payload(settings):
    """Only a frame header announcing 1 GB is sent: the close 1009 proves nothing was buffered."""

    async def scenario() -> list[tuple[int, bytes]]:
        async with serve_in_process(settings) as base:
            host, port = base.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                (
                    f"GET /api/canvas/ws/bigmouth HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            writer.write(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", 1 << 30) + os.urandom(4))
            await writer.drain()
            frames = []
            async with asyncio.timeout(30):
                while True:
                    first, second = await reader.readexactly(2)
                    length = second & 0x7F
                    if length == 126:
                        (length,) = struct.unpack(">H", await reader.readexactly(2))
                    payload = await reader.readexactly(length)
                    frames.append((first & 0x0F, payload))
                    if first & 0x0F == 0x8:
                        break
            writer.close()
            return frames

    frames = asyncio.run(scenario())
    assert frames[0][0] == 0x1 and json.loads(frames[0][1])["status"] == "connected"
    opcode, payload = frames[-1]
    assert opcode == 0x8 and struct.unpack(">H", payload[:2])[0] == 1009


# --------------------------------------------------------------------------- static files


TRAVERSALS = (
    "/static/../config.yaml",
    "/static/../../config.yaml",
    "/static/%2e%2e/config.yaml",
    "/static/%2e%2e/%2e%2e/config.yaml",
    "/static/..%2fconfig.yaml",
    "/static/..%2f..%2fconfig.yaml",
    "/static/%2e%2e%2f%2e%2e%2fconfig.yaml",
    "/static/%252e%252e/%252e%252e/config.yaml",
    "/static/..%5c..%5cconfig.yaml",
    "/static/..\\..\\config.yaml",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/....//....//config.yaml",
    "/static/.%2e/.%2e/config.yaml",
    "/static/%c0%ae%c0%ae/config.yaml",
    "/static/api.js/../../../config.yaml",
)


@pytest.mark.parametrize("target", TRAVERSALS)
def test_static_paths_cannot_leave_the_web_folder(settings, target):
    async def scenario() -> tuple[int, bytes]:
        async with serve_in_process(settings) as base:
            status, _, body = await raw_request(base, f"GET {target} HTTP/1.1")
            return status, body

    status, body = asyncio.run(scenario())
    assert status in (400, 403, 404), (target, status)
    assert b"realtime:" not in body and b"root:" not in body


def test_a_symlink_out_of_the_web_folder_is_not_followed(tmp_path: Path):
    web_dir = tmp_path / "web"
    web_dir.mkdir()
    (web_dir / "index.html").write_text("<html>fine</html>")
    (web_dir / "ok.css").write_text("body {}")
    (tmp_path / "secret.txt").write_text("top secret")
    (web_dir / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (web_dir / "escape_dir").symlink_to(tmp_path, target_is_directory=True)

    async def scenario() -> dict[str, int]:
        app = web.Application()
        add_pages(app, ["canvas"], web_dir=web_dir)
        async with serve_app(app) as base:
            seen = {}
            for target in ("/static/ok.css", "/static/escape.txt", "/static/escape_dir/secret.txt"):
                status, _, body = await raw_request(base, f"GET {target} HTTP/1.1")
                assert b"top secret" not in body
                seen[target] = status
            return seen

    seen = asyncio.run(scenario())
    assert seen["/static/ok.css"] == 200
    assert seen["/static/escape.txt"] in (403, 404)
    assert seen["/static/escape_dir/secret.txt"] in (403, 404)


def test_websocket_pings_count_against_the_message_rate(settings):
    async def scenario() -> tuple[list[dict], int | None]:
        async with (
            serve_in_process(settings) as base,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{base}/api/realtime/ws/pinger") as ws,
        ):
            for _ in range(2000):
                await ws.ping()
            texts: list[dict] = []
            async with asyncio.timeout(20):
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        texts.append(msg.json())
            return texts, ws.close_code

    texts, close_code = asyncio.run(scenario())
    assert close_code == 1008, "a ping flood closes the session like any other message flood"
    assert any("flood" in m.get("message", "") for m in texts if m["status"] == "error")
