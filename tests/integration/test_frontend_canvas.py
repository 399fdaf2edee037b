"""Canvas end to end: every drawing, in order, exactly one MJPEG part each, byte-equal to what the
model returns for that drawing when called directly; back-pressure instead of dropping; users
kept apart."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import tritonclient.grpc as grpcclient
from frontend_helpers import metric, metrics
from triton_calls import inputs, jpeg, mean_level_difference, output_image, png, scene

from frontends.client import ProtocolClient, StreamReader
from frontends.image_intake import fit_image

pytestmark = pytest.mark.triton

PROMPT = "a lighthouse in a storm"


def direct(triton_server, image: bytes, **params: object) -> bytes:
    """The canvas model's answer to one drawing, asked without the frontends."""
    quality = triton_server.settings.canvas.performance.jpeg_quality
    with grpcclient.InferenceServerClient(triton_server.grpc_url) as client:
        result = client.infer(triton_server.settings.triton.canvas_model, inputs(image, JPEG_QUALITY=quality, **params))
    return output_image(result)


async def draw_all(base_url: str, user_id: str, drawings: list[bytes], **params: object) -> tuple[list[bytes], list]:
    """Send every drawing back to back; collect the stream's parts until the session closes."""
    async with aiohttp.ClientSession() as http:
        client = ProtocolClient(http, base_url, "canvas", user_id)
        assert (await client.connect())["status"] == "connected"
        stream = StreamReader(http, client.stream_url)
        assert (await stream.start()).status == 200
        for drawing in drawings:
            await client.send_frame(drawing, **params)
        parts = [await stream.next_part(wait_s=300) for _ in drawings]
        await client.close()
        tail = await stream.next_part(wait_s=60)  # None: the stream ended with the session
        await stream.stop()
        messages = client.drain()
        return parts + ([tail] if tail is not None else []), messages


def test_every_drawing_is_one_part_in_order_equal_to_the_model(frontend_server, triton_server):
    size = triton_server.settings.pipeline.width
    pending = triton_server.settings.canvas.performance.max_pending_drawings
    drawings = [jpeg(scene(size, seed)) for seed in range(pending + 3)]
    before = metrics(frontend_server.base_url)

    parts, messages = asyncio.run(draw_all(frontend_server.base_url, "painter", drawings, prompt=PROMPT, seed=7))

    expected = [direct(triton_server, d, PROMPT=PROMPT, SEED=7) for d in drawings]
    assert len(parts) == len(drawings)
    assert parts == expected
    assert len(set(parts)) == len(parts)
    statuses = [m["status"] for m in messages]
    assert "error" not in statuses
    assert "wait" in statuses  # more drawings than the queue holds: the server pushed back
    after = metrics(frontend_server.base_url)
    for name, delta in (
        ("frontend_frames_received_total", len(drawings)),
        ("frontend_frames_processed_total", len(drawings)),
        ("frontend_frames_dropped_total", 0),
        ("frontend_frames_skipped_total", 0),
    ):
        assert metric(after, name, mode="canvas") - metric(before, name, mode="canvas") == delta, name


def test_a_drawing_of_another_size_is_cropped_and_resized(frontend_server, triton_server):
    size = triton_server.settings.pipeline.width
    wide = png(scene(size * 2, 11)[:size, :])  # twice as wide as tall
    parts, _ = asyncio.run(draw_all(frontend_server.base_url, "wide-painter", [wide], prompt=PROMPT))
    fitted = fit_image(wide, size, size, triton_server.settings.canvas.performance.jpeg_quality)
    assert parts == [direct(triton_server, fitted, PROMPT=PROMPT)]


def test_two_users_at_once_see_only_their_own_drawings(frontend_server, triton_server):
    size = triton_server.settings.pipeline.width
    mine = [png(scene(size, 100 + i)) for i in range(3)]
    theirs = [png(scene(size, 200 + i)) for i in range(3)]

    async def both() -> list[tuple[list[bytes], list]]:
        return await asyncio.gather(
            draw_all(frontend_server.base_url, "alice", mine, prompt="a red barn", seed=1),
            draw_all(frontend_server.base_url, "bob", theirs, prompt="a blue sea", seed=2),
        )

    (alice, _), (bob, _) = asyncio.run(both())
    alice_alone = [direct(triton_server, d, PROMPT="a red barn", SEED=1) for d in mine]
    bob_alone = [direct(triton_server, d, PROMPT="a blue sea", SEED=2) for d in theirs]
    assert len(alice) == len(bob) == 3
    # the two users' drawings may share a Triton batch: equal to each alone up to summation order
    for got, alone, other in zip(alice + bob, alice_alone + bob_alone, bob_alone + alice_alone, strict=True):
        near, far = mean_level_difference(got, alone), mean_level_difference(got, other)
        print(f"difference to its own drawing alone {near:.2f} levels, to the other user's {far:.2f}")
        assert near < 1.0
        assert far > 5 * max(near, 1.0), "a user got the other user's picture"


def test_update_params_applies_to_later_drawings(frontend_server, triton_server):
    size = triton_server.settings.pipeline.width
    drawing = jpeg(scene(size, 42))

    async def scenario() -> bytes | None:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "canvas", "tuner")
            await client.connect()
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            await client.send_json({"status": "update_params", "prompt": "an owl", "seed": 5})
            answer = await client.expect("params_updated", "error")
            assert answer == {"status": "params_updated", "params": {"prompt": "an owl", "seed": 5}}
            await client.send_json({"status": "ping"})
            assert (await client.expect("pong", "error"))["status"] == "pong"
            await client.send_frame(drawing)  # no parameters of its own
            part = await stream.next_part(wait_s=300)
            await client.close()
            await stream.stop()
            return part

    assert asyncio.run(scenario()) == direct(triton_server, drawing, PROMPT="an owl", SEED=5)
