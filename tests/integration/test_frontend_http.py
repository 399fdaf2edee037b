"""The frontends' HTTP side against a real Triton: probes, metrics, settings, legacy aliases, pages,
and the refusals that happen before any WebSocket upgrade."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from frontend_helpers import http_get, metrics, wait_for_line

pytestmark = pytest.mark.triton

MODES = ("realtime", "canvas")


def test_healthz_and_readyz(frontend_server):
    status, _, body = http_get(f"{frontend_server.base_url}/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = http_get(f"{frontend_server.base_url}/readyz")
    report = json.loads(body)
    assert status == 200 and report["ready"] is True
    (endpoint,) = report["triton"].values()
    assert endpoint == {
        "reachable": True,
        "models": {"streamdiffusion_realtime": True, "streamdiffusion_canvas": True},
    }


def test_metrics_export_every_series_per_mode(frontend_server):
    values = metrics(frontend_server.base_url)
    names = {name for name, _ in values}
    for series in (
        "frontend_frames_received_total",
        "frontend_frames_skipped_total",
        "frontend_frames_dropped_total",
        "frontend_frames_processed_total",
        "frontend_sessions",
        "frontend_frame_latency_seconds_count",
        "frontend_errors_total",
    ):
        assert series in names
        assert {dict(labels).get("mode") for name, labels in values if name == series} == set(MODES)


@pytest.mark.parametrize("mode", MODES)
def test_settings_come_from_triton_and_the_mode(frontend_server, mode):
    status, _, body = http_get(f"{frontend_server.base_url}/api/{mode}/settings")
    assert status == 200
    answer = json.loads(body)
    settings = frontend_server.triton.settings
    assert answer["performance"] == settings.performance(mode).model_dump(mode="json")
    assert answer["info"]["mode"] == mode
    assert (answer["info"]["width"], answer["info"]["height"]) == (settings.pipeline.width, settings.pipeline.height)
    props = answer["input_params"]["properties"]
    assert {"prompt", "negative_prompt", "seed"} <= set(props)
    assert props["seed"]["type"] == "integer" and "default" in props["seed"]


def test_performance_differs_between_modes(frontend_server):
    realtime = json.loads(http_get(f"{frontend_server.base_url}/api/realtime/settings")[2])["performance"]
    canvas = json.loads(http_get(f"{frontend_server.base_url}/api/canvas/settings")[2])["performance"]
    assert realtime["enable_similar_image_filter"] is True and realtime["max_fps"] == 30
    assert canvas["enable_similar_image_filter"] is False and canvas["max_fps"] == 0
    assert (realtime["jpeg_quality"], canvas["jpeg_quality"]) == (85, 95)


def test_legacy_settings_alias_is_realtime_and_deprecated(frontend_server):
    status, headers, body = http_get(f"{frontend_server.base_url}/api/settings")
    assert status == 200
    assert headers.get("Deprecation") == "true"
    assert "/api/realtime/settings" in headers.get("Link", "")
    assert json.loads(body) == json.loads(http_get(f"{frontend_server.base_url}/api/realtime/settings")[2])


@pytest.mark.parametrize("path", ["/api/realtime/stream/nobody", "/api/canvas/stream/nobody", "/api/stream/nobody"])
def test_stream_of_an_unknown_user_is_404_json(frontend_server, path):
    status, headers, body = http_get(frontend_server.base_url + path)
    assert status == 404
    assert json.loads(body)["status"] == "error"
    assert "nobody" in json.loads(body)["message"]
    assert (headers.get("Deprecation") == "true") == path.startswith("/api/stream/")


BAD_USER_IDS = ["has%20space", "x" * 65, "semi;colon", "dot.dot", "%C3%A9t%C3%A9", ""]


@pytest.mark.parametrize("user_id", BAD_USER_IDS)
@pytest.mark.parametrize("kind", ["ws", "stream"])
def test_bad_user_id_is_400_json(frontend_server, user_id, kind):
    status, _, body = http_get(f"{frontend_server.base_url}/api/realtime/{kind}/{user_id}")
    assert status == 400
    answer = json.loads(body)
    assert answer["status"] == "error" and "user_id" in answer["message"]


def test_bad_user_id_is_refused_before_the_websocket_upgrade(frontend_server):
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{frontend_server.base_url}/api/canvas/ws/not%20valid")
            assert refused.value.status == 400

    asyncio.run(scenario())


def test_plain_get_on_a_websocket_route_is_400_json(frontend_server):
    status, _, body = http_get(f"{frontend_server.base_url}/api/canvas/ws/alice")
    assert status == 400 and "WebSocket" in json.loads(body)["message"]


def test_legacy_websocket_alias_speaks_realtime_and_is_logged(frontend_server):
    async def scenario() -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{frontend_server.base_url}/api/ws/legacy-user") as ws,
        ):
            # the greeting of StreamDiffusion's demo server, which this route's clients expect
            assert (await ws.receive_json())["status"] == "connected"
            assert (await ws.receive_json())["status"] == "wait"
            assert (await ws.receive_json())["status"] == "send_frame"
            # the alias session is the realtime session of that user
            status, headers = await _stream_headers(http, f"{frontend_server.base_url}/api/realtime/stream/legacy-user")
            assert status == 200
            assert headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
            status, headers = await _stream_headers(http, f"{frontend_server.base_url}/api/stream/legacy-user")
            assert status == 200 and headers.get("Deprecation") == "true"

    asyncio.run(scenario())
    assert wait_for_line(frontend_server.server, "deprecated route /api/ws/legacy-user")


async def _stream_headers(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str]]:
    async with http.get(url) as response:
        return response.status, dict(response.headers)


@pytest.mark.parametrize(("path", "marker"), [("/", b"<html"), ("/realtime", b"<html"), ("/canvas", b"<html")])
def test_pages_are_served(frontend_server, path, marker):
    status, headers, body = http_get(frontend_server.base_url + path)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert marker in body.lower()


def test_static_files_are_served_without_traversal(frontend_server):
    status, _, body = http_get(f"{frontend_server.base_url}/static/app.css")
    assert status == 200 and body
    for path in ("/static/../../config.yaml", "/static/%2e%2e/%2e%2e/config.yaml", "/static/..%2f..%2fconfig.yaml"):
        status, _, body = http_get(frontend_server.base_url + path)
        assert status in (403, 404), path
        assert b"realtime:" not in body


def test_websocket_compression_is_declined(frontend_server):
    """Frames are JPEG already: permessage-deflate (which browsers offer) would only cost CPU."""

    async def scenario() -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{frontend_server.base_url}/api/realtime/ws/deflater", compress=15) as ws,
        ):
            return ws.compress

    assert asyncio.run(scenario()) == 0
