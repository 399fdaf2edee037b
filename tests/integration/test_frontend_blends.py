"""Blends through the frontends: per frame and through update_params, in both modes, and bad blends
refused by name while the session goes on; real frontends and tritonserver."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import tritonclient.grpc as grpcclient
from triton_calls import inputs, jpeg, output_image, scene

from frontends.client import ProtocolClient, StreamReader

pytestmark = pytest.mark.triton
RED = "a red circle on a white background"
BLUE = "a blue circle on a white background"
BLEND = [[RED, 0.3], [BLUE, 0.7]]
SEEDS = [[3, 0.5], [11, 0.5]]


def direct(triton_server, image: bytes, **params: object) -> bytes:
    quality = triton_server.settings.canvas.performance.jpeg_quality
    with grpcclient.InferenceServerClient(triton_server.grpc_url) as client:
        result = client.infer(triton_server.settings.triton.canvas_model, inputs(image, JPEG_QUALITY=quality, **params))
    return output_image(result)


def as_tensors(**params: object) -> dict[str, object]:
    return {
        "PROMPT_LIST": [p for p, _ in BLEND],
        "PROMPT_WEIGHTS": [w for _, w in BLEND],
        "SEED_LIST": [s for s, _ in SEEDS],
        "SEED_WEIGHTS": [w for _, w in SEEDS],
        **params,
    }


def test_canvas_blends_per_drawing_and_through_update_params_equal_the_model(frontend_server, triton_server) -> None:
    drawing = jpeg(scene(triton_server.settings.pipeline.width, 42))

    async def scenario() -> tuple[list[bytes], list[dict]]:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "canvas", "blender")
            await client.connect()
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            await client.send_frame(drawing, prompt_list=BLEND, seed_list=SEEDS, prompt_interpolation_method="slerp")
            per_frame = await stream.next_part(wait_s=300)
            await client.send_json({"status": "update_params", "prompt_list": BLEND, "seed_list": SEEDS})
            answer = await client.expect("params_updated", "error")
            assert answer["params"] == {"prompt_list": BLEND, "seed_list": SEEDS}
            await client.send_frame(drawing)
            updated = await stream.next_part(wait_s=300)
            await client.send_frame(drawing, prompt_list=[])  # an empty blend: the prompt again
            cleared = await stream.next_part(wait_s=300)
            await client.close()
            await stream.stop()
            return [per_frame, updated, cleared], client.drain()

    (per_frame, updated, cleared), messages = asyncio.run(scenario())
    assert per_frame == direct(triton_server, drawing, **as_tensors(PROMPT_INTERPOLATION="slerp"))
    assert updated == direct(triton_server, drawing, **as_tensors())
    assert per_frame != updated  # slerp and linear blends differ
    assert cleared == direct(triton_server, drawing, SEED_LIST=[3, 11], SEED_WEIGHTS=[0.5, 0.5])
    assert not [m for m in messages if m["status"] == "error"], messages


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"prompt_list": [[RED, 0.0], [BLUE, 0.0]]}, "'prompt_list' has weights that are all 0"),
        ({"prompt_list": [[RED, 2.0]]}, r"'prompt_list[0][1]' must be between 0.0 and 1.0"),
        ({"prompt_list": [[RED, 0.5]] * 4}, "'prompt_list' takes at most 3 items"),
        ({"prompt_list": [RED, BLUE]}, "'prompt_list[0]' must be a list"),
        ({"seed_list": [[1, 0.5], [-2, 0.5]]}, "'seed_list[1][0]' must be between 0"),
        ({"prompt_interpolation_method": "cubic"}, "'prompt_interpolation_method' must be one of"),
        ({"prompt_transition_frames": 17}, "'prompt_transition_frames' must be between 0 and 16"),
    ],
)
def test_realtime_bad_blends_are_named_and_the_session_goes_on(frontend_server, triton_server, bad, fragment) -> None:
    frame = jpeg(scene(triton_server.settings.pipeline.width, 5))

    async def scenario() -> tuple[dict, dict, dict]:
        async with aiohttp.ClientSession() as http:
            client = ProtocolClient(http, frontend_server.base_url, "realtime", "bad-blender")
            await client.connect()
            await client.send_json({"status": "update_params", **bad})
            refused = await client.expect("params_updated", "error")
            await client.send_json({"status": "update_params", "prompt_list": BLEND, "prompt_transition_frames": 4})
            accepted = await client.expect("params_updated", "error")
            stream = StreamReader(http, client.stream_url)
            await stream.start()
            await client.send_frame(frame)  # the session's first send_frame came with connected
            part = await stream.next_part(wait_s=300)
            await client.close()
            await stream.stop()
            errors = [m for m in client.drain() if m["status"] == "error"]
            return refused, accepted, {"part": part, "errors": errors}

    refused, accepted, rest = asyncio.run(scenario())
    assert refused["status"] == "error" and fragment in refused["message"], refused
    assert accepted == {"status": "params_updated", "params": {"prompt_list": BLEND, "prompt_transition_frames": 4}}
    assert rest["part"] and not rest["errors"], rest["errors"]
