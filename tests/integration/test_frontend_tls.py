"""HTTPS and WSS from server.tls_cert / server.tls_key, with a self-signed certificate made here.

`python -m frontends` runs as an operator starts it; Triton is not needed to serve the pages,
the probes and a WebSocket session over TLS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.servers import TEST_CONFIG, ServerProcess, free_port, start_process


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command line."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make a test certificate (apt-get install openssl)")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def start_frontends(port: int, cert: Path, key: Path) -> ServerProcess:
    env = {
        **os.environ,
        "SD_CONFIG": str(TEST_CONFIG),
        "SD__SERVER__PORT": str(port),
        "SD__SERVER__TLS_CERT": str(cert),
        "SD__SERVER__TLS_KEY": str(key),
        "SD__TRITON__URLS": f"[127.0.0.1:{free_port()}]",
    }
    return start_process([sys.executable, "-m", "frontends", "--config", str(TEST_CONFIG)], env)


def test_pages_api_and_websocket_over_tls(tmp_path: Path):
    cert, key = self_signed(tmp_path, "server")
    trust = ssl.create_default_context(cafile=str(cert))
    port = free_port()
    server = start_frontends(port, cert, key)
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2, context=trust) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                if server.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"frontends did not start with TLS:\n{server.output()}")
                time.sleep(0.2)
        assert any("on https://" in line for line in server.lines)

        async def scenario() -> tuple[int, dict, bool]:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/canvas", ssl=trust) as page:
                    status = page.status
                async with http.ws_connect(f"wss://127.0.0.1:{port}/api/canvas/ws/secure", ssl=trust) as ws:
                    first = await ws.receive_json()
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as plain:
                        plain_ok = plain.status == 200
                except aiohttp.ClientError:
                    plain_ok = False
                return status, first, plain_ok

        status, first, plain_ok = asyncio.run(scenario())
        assert status == 200
        assert first["status"] == "connected" and first["session_key"]
        assert not plain_ok, "plain HTTP must not be answered on the TLS port"
    finally:
        server.stop()


def test_a_key_that_does_not_match_the_certificate_stops_the_start(tmp_path: Path):
    cert, _ = self_signed(tmp_path, "one")
    _, other_key = self_signed(tmp_path, "two")
    server = start_frontends(free_port(), cert, other_key)
    assert server.process.wait(60) == 2
    assert "server.tls_cert/server.tls_key: cannot load" in refusal(server)


def test_a_missing_certificate_file_is_named(tmp_path: Path):
    server = start_frontends(free_port(), tmp_path / "absent.crt", tmp_path / "absent.key")
    assert server.process.wait(60) == 2
    assert "server.tls_cert" in refusal(server) and "absent.crt" in refusal(server)


def refusal(server: ServerProcess) -> str:
    """The line the frontends exited with (the output pump may still be reading it)."""
    deadline = time.monotonic() + 10
    while not any(line.startswith("frontends: ") for line in server.lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.output()
