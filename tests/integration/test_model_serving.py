"""Both model variants on a real tritonserver, over gRPC."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from tests.triton_calls import inputs, jpeg, output_image, png, scene

pytestmark = pytest.mark.triton
REALTIME = "streamdiffusion_realtime"
CANVAS = "streamdiffusion_canvas"
SIZE = 128


@pytest.fixture(scope="module")
def client(triton_server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(triton_server.grpc_url)


_next_id = iter(range(1000, 10**6))


def sequence_id() -> int:
    return next(_next_id)


def run_sequence(client, sid: int, frames: list[bytes], **params) -> list[bytes]:
    outputs = []
    for i, frame in enumerate(frames):
        result = client.infer(REALTIME, inputs(frame, **params), sequence_id=sid, sequence_start=i == 0)
        outputs.append(output_image(result))
    end(client, sid)
    return outputs


def end(client, sid: int) -> bytes:
    result = client.infer(REALTIME, inputs(b""), sequence_id=sid, sequence_end=True)
    return output_image(result)


def live_sequences(triton_server) -> float:
    with urllib.request.urlopen(f"http://{triton_server.metrics_url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(r'streamdiffusion_live_sequences\{[^}]*model="streamdiffusion_realtime"[^}]*\} (\S+)', text)
    assert match, "the realtime model publishes streamdiffusion_live_sequences"
    return float(match.group(1))


def settled_live_sequences(triton_server) -> float:
    """The live count once sequences other tests left behind have ended or expired."""
    deadline = time.monotonic() + triton_server.settings.realtime.pipeline.sequence_idle_timeout_s + 10
    while live_sequences(triton_server) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return live_sequences(triton_server)


def decoded(data: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_both_models_ready_with_their_facts(client) -> None:
    assert client.is_server_ready()
    for name, mode in ((REALTIME, "realtime"), (CANVAS, "canvas")):
        assert client.is_model_ready(name)
        config = client.get_model_config(name, as_json=True)["config"]
        facts = json.loads(config["parameters"]["model_facts"]["string_value"])
        assert facts["info"]["mode"] == mode
        assert (facts["info"]["width"], facts["info"]["height"]) == (SIZE, SIZE)
        props = facts["input_params"]["properties"]
        assert {"prompt", "negative_prompt", "seed", "guidance_scale", "delta", "t_index_list"} <= set(props)
        assert props["seed"]["type"] == "integer"
        metadata = client.get_model_metadata(name, as_json=True)
        assert {i["name"] for i in metadata["inputs"]} >= {"IMAGE", "PROMPT", "SEED", "T_INDEX_LIST"}
    assert "sequence_batching" in client.get_model_config(REALTIME, as_json=True)["config"]
    assert "dynamic_batching" in client.get_model_config(CANVAS, as_json=True)["config"]


def test_realtime_sequence_lifecycle(client, triton_server) -> None:
    sid = sequence_id()
    before = settled_live_sequences(triton_server)
    frames = [jpeg(scene(SIZE, i)) for i in range(3)]
    for i, frame in enumerate(frames):
        result = client.infer(REALTIME, inputs(frame, PROMPT="a cat"), sequence_id=sid, sequence_start=i == 0)
        assert decoded(output_image(result)).shape == (SIZE, SIZE, 3)
    assert live_sequences(triton_server) == before + 1
    assert end(client, sid) == b""
    assert live_sequences(triton_server) == before
    with pytest.raises(InferenceServerException):  # ended: a frame without START is refused
        client.infer(REALTIME, inputs(frames[0]), sequence_id=sid)


def test_realtime_without_start_is_refused(client) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer(REALTIME, inputs(jpeg(scene(SIZE, 0))), sequence_id=sequence_id())
    assert "START" in str(info.value) or "start" in str(info.value)


def test_interleaved_sequences_equal_each_alone(client) -> None:
    frames_a = [jpeg(scene(SIZE, i)) for i in range(4)]
    frames_b = [jpeg(scene(SIZE, 100 + i)) for i in range(4)]
    alone_a = run_sequence(client, sequence_id(), frames_a, PROMPT="a cat", SEED=1)
    alone_b = run_sequence(client, sequence_id(), frames_b, PROMPT="a dog", SEED=9)
    sid_a, sid_b = sequence_id(), sequence_id()
    mixed_a, mixed_b = [], []
    for i in range(4):
        for sid, frames, out, prompt, seed in (
            (sid_a, frames_a, mixed_a, "a cat", 1),
            (sid_b, frames_b, mixed_b, "a dog", 9),
        ):
            result = client.infer(
                REALTIME, inputs(frames[i], PROMPT=prompt, SEED=seed), sequence_id=sid, sequence_start=i == 0
            )
            out.append(output_image(result))
    end(client, sid_a)
    end(client, sid_b)
    assert mixed_a == alone_a
    assert mixed_b == alone_b
    assert alone_a != alone_b


def test_concurrent_sequences_batched_equal_each_alone(client) -> None:
    """Sequences sent at once may share an execute() batch; each still gets its own output."""
    frames = {k: [jpeg(scene(SIZE, 10 * k + i)) for i in range(3)] for k in range(4)}
    alone = {k: run_sequence(client, sequence_id(), frames[k], SEED=k) for k in frames}
    ids = {k: sequence_id() for k in frames}

    def step(k: int, i: int) -> bytes:
        result = client.infer(REALTIME, inputs(frames[k][i], SEED=k), sequence_id=ids[k], sequence_start=i == 0)
        return output_image(result)

    together: dict[int, list[bytes]] = {k: [] for k in frames}
    executions, inferences = batch_counts(client)
    with ThreadPoolExecutor(4) as pool:
        for i in range(3):
            for k, out in zip(frames, pool.map(lambda k, i=i: step(k, i), frames), strict=True):
                together[k].append(out)
    executions_after, inferences_after = batch_counts(client)
    for k in frames:
        end(client, ids[k])
    assert inferences_after - inferences == 12, (executions, inferences, executions_after, inferences_after)
    assert executions_after - executions < 12, "some frames were batched together"
    # Batched float sums differ from single ones in the last bits; after JPEG that can move a few
    # levels here and there. Another sequence's frame would differ everywhere (tens of levels).
    for k in frames:
        for i, (mine, reference) in enumerate(zip(together[k], alone[k], strict=True)):
            difference = np.abs(decoded(mine).astype(int) - decoded(reference).astype(int))
            assert difference.mean() < 1.0, f"sequence {k} frame {i}: mean difference {difference.mean():.2f} levels"
    assert together[0] != together[1]


def batch_counts(client, model: str = REALTIME) -> tuple[int, int]:
    """(executions, inferences) once settled: Triton updates its statistics after answering."""
    previous = None
    for _ in range(40):
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
        counts = int(stats.get("execution_count", 0)), int(stats.get("inference_count", 0))
        if counts == previous:
            return counts
        previous = counts
        time.sleep(0.25)
    return counts


def test_idle_sequence_state_is_freed(client, triton_server) -> None:
    before = settled_live_sequences(triton_server)
    client.infer(REALTIME, inputs(jpeg(scene(SIZE, 1))), sequence_id=sequence_id(), sequence_start=True)
    assert live_sequences(triton_server) == before + 1
    idle = triton_server.settings.realtime.pipeline.sequence_idle_timeout_s
    deadline = time.monotonic() + idle + 10
    while live_sequences(triton_server) > before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert live_sequences(triton_server) == before


def canvas(client, image: bytes, **params) -> bytes:
    return output_image(client.infer(CANVAS, inputs(image, **params)))


def test_canvas_is_deterministic_per_seed(client) -> None:
    drawing = png(scene(SIZE, 3))
    first = canvas(client, drawing, PROMPT="a house", SEED=4)
    canvas(client, jpeg(scene(SIZE, 5)), PROMPT="a house", SEED=4)  # another drawing in between changes nothing
    assert canvas(client, drawing, PROMPT="a house", SEED=4) == first
    assert canvas(client, drawing, PROMPT="a house", SEED=5) != first
    assert decoded(first).shape == (SIZE, SIZE, 3)


def test_canvas_without_guidance(client) -> None:
    drawing = png(scene(SIZE, 8))
    for scale in (0.0, 1.0, 2.0):
        assert decoded(canvas(client, drawing, SEED=1, GUIDANCE_SCALE=scale)).shape == (SIZE, SIZE, 3)
    assert canvas(client, drawing, SEED=1, GUIDANCE_SCALE=1.0) != canvas(client, drawing, SEED=1, GUIDANCE_SCALE=2.0)


def test_canvas_output_is_of_this_drawing(client) -> None:
    """No stream-batch lag: each answer is the fully denoised result of its own drawing."""
    a, b = png(scene(SIZE, 20)), png(scene(SIZE, 21))
    alone_b = canvas(client, b, SEED=1)
    canvas(client, a, SEED=1)
    assert canvas(client, b, SEED=1) == alone_b
    assert canvas(client, a, SEED=1) != alone_b
    # more steps run on the input: a different step list gives a different picture
    assert canvas(client, b, SEED=1, T_INDEX_LIST=[10, 30]) != alone_b


def test_canvas_batch_answers_each_request_alone(client) -> None:
    """Drawings sent at once share the UNet calls of one batch; each still gets its own result."""
    drawings = [png(scene(SIZE, 40 + i)) for i in range(4)]
    prompts = ["a house", "a boat", "a tree", "a cat"]
    alone = [canvas(client, d, SEED=i, PROMPT=prompts[i], GUIDANCE_SCALE=1.0 + i) for i, d in enumerate(drawings)]
    executions, inferences = batch_counts(client, CANVAS)
    with ThreadPoolExecutor(4) as pool:
        together = list(
            pool.map(lambda i: canvas(client, drawings[i], SEED=i, PROMPT=prompts[i], GUIDANCE_SCALE=1.0 + i), range(4))
        )
    executions_after, inferences_after = batch_counts(client, CANVAS)
    assert inferences_after - inferences == 4
    assert executions_after - executions < 4, "some drawings were batched together"
    for i, (mine, reference) in enumerate(zip(together, alone, strict=True)):
        difference = np.abs(decoded(mine).astype(int) - decoded(reference).astype(int))
        assert difference.mean() < 1.0, f"drawing {i}: mean difference {difference.mean():.2f} levels from alone"
    assert len(set(together)) == 4


def test_canvas_batch_with_two_step_lists_answers_each_alone(client) -> None:
    """Drawings with different step lists in one batch run as separate groups; none takes another's steps."""
    drawings = [png(scene(SIZE, 60 + i)) for i in range(4)]
    steps = [None, [10, 30], None, [10, 30]]

    def draw(i: int) -> bytes:
        extra = {"T_INDEX_LIST": steps[i]} if steps[i] else {}
        return canvas(client, drawings[i], SEED=7, **extra)

    alone = [draw(i) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(draw, range(4)))
    for i, (mine, reference) in enumerate(zip(together, alone, strict=True)):
        difference = np.abs(decoded(mine).astype(int) - decoded(reference).astype(int))
        assert difference.mean() < 1.0, f"drawing {i}: mean difference {difference.mean():.2f} levels from alone"
    two_steps = canvas(client, drawings[0], SEED=7, T_INDEX_LIST=[10, 30])
    assert np.abs(decoded(two_steps).astype(int) - decoded(alone[0]).astype(int)).mean() > 1.0


BAD_REQUESTS = [
    ("undecodable", lambda: inputs(b"certainly not an image"), "not a JPEG, PNG or WebP"),
    ("wrong resolution", lambda: inputs(jpeg(scene(64, 0))), "64x64"),
    ("empty image", lambda: inputs(b""), "IMAGE is empty"),
    ("seed out of range", lambda: inputs(jpeg(scene(SIZE, 0)), SEED=-1), "SEED"),
    ("guidance out of range", lambda: inputs(jpeg(scene(SIZE, 0)), GUIDANCE_SCALE=1e6), "GUIDANCE_SCALE"),
    ("steps not increasing", lambda: inputs(jpeg(scene(SIZE, 0)), T_INDEX_LIST=[30, 10]), "T_INDEX_LIST"),
    ("step past the schedule", lambda: inputs(jpeg(scene(SIZE, 0)), T_INDEX_LIST=[10, 99]), "T_INDEX_LIST"),
    ("prompt too long", lambda: inputs(jpeg(scene(SIZE, 0)), PROMPT="word " * 200), "PROMPT"),
    ("quality out of range", lambda: inputs(jpeg(scene(SIZE, 0)), JPEG_QUALITY=0), "JPEG_QUALITY"),
    ("huge declared size", lambda: inputs(_huge_png_header()), "declares"),
]


def _huge_png_header() -> bytes:
    """A PNG whose header claims 30000x30000 pixels; decoding it would take gigabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("case", "build", "expected"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_is_named_and_server_stays_healthy(client, case, build, expected) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer(CANVAS, build())
    assert expected in str(info.value)
    assert "INVALID_ARG" in (info.value.status() or "") or "invalid" in str(info.value).lower()
    assert client.is_model_ready(CANVAS)
    assert decoded(canvas(client, jpeg(scene(SIZE, 1)))).shape == (SIZE, SIZE, 3)


def test_wrong_dtype_and_shape_are_refused(client) -> None:
    wrong_dtype = grpcclient.InferInput("SEED", [1, 1], "FP32")
    wrong_dtype.set_data_from_numpy(np.array([[1.5]], dtype=np.float32))
    with pytest.raises(InferenceServerException, match="SEED"):
        client.infer(CANVAS, [*inputs(jpeg(scene(SIZE, 0))), wrong_dtype])
    two_images = grpcclient.InferInput("IMAGE", [1, 2], "BYTES")
    two_images.set_data_from_numpy(np.array([[b"a", b"b"]], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="IMAGE"):
        client.infer(CANVAS, [two_images])
    assert client.is_model_ready(CANVAS)


def test_bad_request_in_a_batch_leaves_the_others_answered(client) -> None:
    good = [jpeg(scene(SIZE, i)) for i in range(3)]
    expected = [canvas(client, g, SEED=2) for g in good]

    def send(data: bytes) -> bytes | str:
        try:
            return canvas(client, data, SEED=2)
        except InferenceServerException as exc:
            return str(exc)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, [good[0], b"junk", good[1], good[2]]))
    assert "not a JPEG" in answers[1]
    for answer, alone in zip([answers[0], answers[2], answers[3]], expected, strict=True):
        assert isinstance(answer, bytes), answer
        difference = np.abs(decoded(answer).astype(int) - decoded(alone).astype(int))
        assert difference.mean() < 1.0, f"mean difference {difference.mean():.2f} levels from the drawing alone"


def test_realtime_bad_frame_keeps_the_sequence(client) -> None:
    sid = sequence_id()
    frame = jpeg(scene(SIZE, 2))
    client.infer(REALTIME, inputs(frame), sequence_id=sid, sequence_start=True)
    with pytest.raises(InferenceServerException, match="not a JPEG"):
        client.infer(REALTIME, inputs(b"junk"), sequence_id=sid)
    result = client.infer(REALTIME, inputs(frame), sequence_id=sid)
    assert decoded(output_image(result)).shape == (SIZE, SIZE, 3)
    end(client, sid)
