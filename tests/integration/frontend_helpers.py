"""What the frontend tests share: scenes, metric readers, Triton's own counters, a TCP relay."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from aiohttp import web

from frontends.app import create_app, runner_options
from sdconfig import Settings
from tests.servers import free_port

METRIC_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def moving_scene(t: int, size: int) -> np.ndarray:
    """A camera-like frame: a fixed gradient with a white square that moves a few pixels each step."""
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = (xx * 255 // size).astype(np.uint8)
    image[..., 1] = (yy * 255 // size).astype(np.uint8)
    side = size // 4
    x, y = (t * 17) % (size - side), (t * 11) % (size - side)
    image[y : y + side, x : x + side] = 255
    return image


def wait_for_line(server: object, text: str, timeout: float = 30.0) -> bool:
    """Whether a line containing `text` shows up in a server process's output within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in list(server.lines)):  # type: ignore[attr-defined]
            return True
        time.sleep(0.1)
    return False


def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def metrics(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The frontend's /metrics as {(name, labels): value}."""
    _, _, body = http_get(f"{base_url}/metrics")
    return parse_metrics(body.decode())


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if not match or line.startswith("#"):
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        values[(match["name"], labels)] = float(match["value"])
    return values


def metric(values: dict, name: str, **labels: str) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)


def wait_until_no_sessions(base_url: str, mode: str, timeout: float = 60.0) -> None:
    """Earlier sessions fully cleaned up (their sequences ended): Triton's counters are ours alone now."""
    deadline = time.monotonic() + timeout
    while metric(metrics(base_url), "frontend_sessions", mode=mode) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{mode} sessions still open after {timeout} s")
        time.sleep(0.1)


def triton_counts(grpc_url: str, model: str) -> tuple[int, int]:
    """(requests answered, model executions) from Triton's statistics API."""
    with grpcclient.InferenceServerClient(grpc_url) as client:
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    success = int(stats["inference_stats"].get("success", {}).get("count", 0))
    return success, int(stats.get("execution_count", 0))


def live_sequences(metrics_url: str, model: str) -> float:
    with urllib.request.urlopen(f"http://{metrics_url}/metrics", timeout=10) as response:
        values = parse_metrics(response.read().decode())
    return metric(values, "streamdiffusion_live_sequences", model=model)


class TcpRelay:
    """A loopback TCP relay to Triton's gRPC port that can be cut and restored.

    Cutting it closes every connection and refuses new ones, which is what a Triton restart or a
    network outage looks like to the frontends; restoring it lets them reconnect.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._copy(reader, up_writer), self._copy(up_reader, writer))

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


def with_overrides(settings: Settings, section: str, **values: object) -> Settings:
    """A copy of `settings` with some keys of one section changed, validated like a config file."""
    data = settings.model_dump(mode="json")
    data[section].update(values)
    return Settings.model_validate(data)


@contextlib.asynccontextmanager
async def serve_in_process(settings: Settings) -> AsyncIterator[str]:
    """The real app on a real loopback port, in this event loop; yields its base URL.

    Leaving the block shuts it down the way a SIGTERM does (on_shutdown, then cleanup).
    """
    async with serve_app(create_app(settings), **runner_options(settings)) as base_url:
        yield base_url


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, **runner_kwargs: Any) -> AsyncIterator[str]:
    """Any aiohttp app on a loopback port, in this event loop; yields its base URL."""
    runner = web.AppRunner(app, **runner_kwargs)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
