"""The StreamDiffusion demo family's protocol on the legacy routes, and lenient parameters on the new ones.

The demo-protocol client here is written from the protocol (frontends/README.md, Compatibility):
text next_frame, text parameters, the image as its own binary message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from frontend_helpers import http_get, metric, metrics, moving_scene, wait_until_no_sessions
from triton_calls import jpeg

from frontends.client import ProtocolClient, StreamReader

pytestmark = pytest.mark.triton


class DemoClient(ProtocolClient):
    """A client of StreamDiffusion's demo server protocol, on the routes that server had."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        super().__init__(http, base_url, "realtime", str(uuid.uuid4()))

    @property
    def ws_url(self) -> str:
        return f"{self.base_url}/api/ws/{self.user_id}"

    @property
    def stream_url(self) -> str:
        return f"{self.base_url}/api/stream/{self.user_id}"

    async def send_demo_frame(self, params: dict[str, Any], image: bytes) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"status": "next_frame"}))
        await self.ws.send_str(json.dumps(params))
        await self.ws.send_bytes(image)


@contextlib.asynccontextmanager
async def demo_session(base_url: str) -> AsyncIterator[tuple[aiohttp.ClientSession, DemoClient]]:
    """A connected demo-protocol client past its greeting, asked for its first frame."""
    async with aiohttp.ClientSession() as http:
        client = DemoClient(http, base_url)
        await client.connect()
        await client.expect("send_frame")
        try:
            yield http, client
        finally:
            await client.close()


def demo_params(base_url: str) -> dict[str, Any]:
    """What a demo page sends back: every input_params property at its default, hidden ones included."""
    _, _, body = http_get(f"{base_url}/api/settings")
    properties = json.loads(body)["input_params"]["properties"]
    return {spec["id"]: spec["default"] for spec in properties.values()}


def test_settings_carry_the_demo_family_keys_on_every_route(frontend_server) -> None:
    for path in ("/api/settings", "/api/realtime/settings", "/api/canvas/settings"):
        status, _, body = http_get(frontend_server.base_url + path)
        assert status == 200, path
        settings = json.loads(body)
        assert settings["info"]["properties"]["input_mode"]["default"] == "image"
        assert settings["info"]["properties"]["name"]["default"]
        assert isinstance(settings["page_content"], str) and settings["page_content"]
        assert settings["max_queue_size"] == frontend_server.triton.settings.server.max_sessions_per_mode
        properties = settings["input_params"]["properties"]
        for name, spec in properties.items():
            assert {"field", "id", "hide", "title", "default"} <= set(spec), (path, name)
            if "minimum" in spec:
                assert (spec["min"], spec["max"]) == (spec["minimum"], spec["maximum"])
        assert properties["prompt"]["maxLength"] == frontend_server.triton.settings.server.max_prompt_chars
        assert properties["width"]["hide"] and properties["width"]["default"] == settings["info"]["width"]
        assert properties["seed"]["field"] == "seed" and properties["guidance_scale"]["field"] == "range"


def test_queue_answers_the_open_session_count(frontend_server) -> None:
    wait_until_no_sessions(frontend_server.base_url, "realtime")
    for path in ("/api/queue", "/api/realtime/queue", "/api/canvas/queue"):
        status, headers, body = http_get(frontend_server.base_url + path)
        assert status == 200 and json.loads(body) == {"queue_size": 0}, path
    assert headers.get("Deprecation") is None
    assert http_get(frontend_server.base_url + "/api/queue")[1]["Deprecation"] == "true"


def test_a_demo_protocol_client_gets_a_stream_of_results_with_no_errors(frontend_server) -> None:
    size = frontend_server.triton.settings.pipeline.width
    params = demo_params(frontend_server.base_url)
    assert (params["width"], params["height"]) == (size, size)

    async def scenario() -> tuple[list[dict], list[dict], int]:
        async with aiohttp.ClientSession() as http:
            client = DemoClient(http, frontend_server.base_url)
            greeting = [await client.connect()]
            greeting += [await client.next_message(), await client.next_message()]
            stream = StreamReader(http, client.stream_url)
            assert (await stream.start()).status == 200
            others: list[dict] = []
            for t in range(12):  # the greeting's send_frame asks for the first frame
                while t and (message := await client.next_message(wait_s=120))["status"] != "send_frame":
                    others.append(message)
                await client.send_demo_frame(params, jpeg(moving_scene(t, size)))
            parts = 0
            while parts < 6 and await stream.next_part(wait_s=120) is not None:
                parts += 1
            others += client.drain()
            await client.close()
            await stream.stop()
            return greeting, others, parts

    greeting, others, parts = asyncio.run(scenario())
    assert [m["status"] for m in greeting] == ["connected", "wait", "send_frame"]
    assert greeting[0]["message"]
    assert parts >= 6
    assert [m for m in others if m["status"] in ("error", "warning")] == []


def test_an_empty_binary_frame_is_answered_with_send_frame(frontend_server) -> None:
    async def scenario() -> list[dict]:
        async with demo_session(frontend_server.base_url) as (_, client):
            await client.send_demo_frame({"prompt": "a red circle"}, b"")
            return [await client.next_message(wait_s=30)]

    assert asyncio.run(scenario()) == [{"status": "send_frame"}]


def test_width_and_height_are_accepted_and_checked_against_the_model(frontend_server) -> None:
    size = frontend_server.triton.settings.pipeline.width

    async def scenario() -> list[dict]:
        async with demo_session(frontend_server.base_url) as (_, client):
            await client.send_demo_frame({"width": size * 2, "height": size}, jpeg(moving_scene(1, size)))
            return [await client.expect("warning", "error", wait_s=60)]

    (refused,) = asyncio.run(scenario())
    assert refused["status"] == "warning" and "'width'" in refused["message"], refused


def test_the_filter_and_the_newest_frame_rule_still_apply(frontend_server) -> None:
    size = frontend_server.triton.settings.pipeline.width
    wait_until_no_sessions(frontend_server.base_url, "realtime")
    before = metrics(frontend_server.base_url)
    still = jpeg(moving_scene(3, size))

    async def scenario() -> None:
        async with demo_session(frontend_server.base_url) as (_, client):
            for _ in range(12):  # a still camera, one frame per send_frame: the filter skips some
                await client.send_demo_frame({}, still)
                await client.expect("send_frame", wait_s=120)
            for t in range(20):  # a burst without waiting: only the newest unread frame survives
                await client.send_demo_frame({}, jpeg(moving_scene(t, size)))
            await asyncio.sleep(2)

    asyncio.run(scenario())
    after = metrics(frontend_server.base_url)
    for name in ("frontend_frames_skipped_total", "frontend_frames_dropped_total"):
        gained = metric(after, name, mode="realtime") - metric(before, name, mode="realtime")
        assert gained > 0, name


def test_an_envelope_client_on_the_legacy_route_keeps_working(frontend_server) -> None:
    size = frontend_server.triton.settings.pipeline.width

    async def scenario() -> list[dict]:
        async with demo_session(frontend_server.base_url) as (http, client):
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            await client.send_frame(jpeg(moving_scene(5, size)), prompt="a blue star")
            assert await stream.next_part(wait_s=120)
            await client.send_frame(jpeg(moving_scene(6, size)), seed=-1)
            refused = await client.expect("error", "warning", wait_s=60)
            await stream.stop()
            return [refused]

    (refused,) = asyncio.run(scenario())
    assert refused["status"] == "error" and "'seed'" in refused["message"]


@pytest.mark.parametrize("mode", ["realtime", "canvas"])
def test_nested_params_and_numeric_strings_on_the_new_routes(frontend_server, mode: str) -> None:
    size = frontend_server.triton.settings.pipeline.width

    async def scenario() -> tuple[list[dict], dict, dict]:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, mode, f"nested-{mode}")
            await client.connect()
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            await client.expect("send_frame")
            await client.send_frame(jpeg(moving_scene(2, size)), params={"seed": "5", "guidance_scale": "1.5"})
            assert await stream.next_part(wait_s=120)
            errors = [m for m in client.drain() if m["status"] == "error"]
            await client.send_json({"status": "update_params", "params": {"seed": " 7 "}, "prompt": "a green line"})
            updated = await client.expect("params_updated")
            await client.send_json({"status": "update_params", "params": {"seed": "5x"}})
            refused = await client.expect("error")
            await client.close()
            await stream.stop()
            return errors, updated, refused

    errors, updated, refused = asyncio.run(scenario())
    assert errors == []
    assert updated["params"]["seed"] == 7 and updated["params"]["prompt"] == "a green line"
    assert "'seed'" in refused["message"] and "integer" in refused["message"]
