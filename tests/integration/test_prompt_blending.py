"""Prompt and seed blends and prompt transitions on a real tritonserver with the demo model, over gRPC."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from sdmodels.evaluation import decode_jpeg, mad, mean_colour, shape_mask
from sdmodels.scenes import COLOURS, Shape, render
from tests.triton_calls import inputs, output_image, png

pytestmark = pytest.mark.triton
REALTIME = "streamdiffusion_realtime"
CANVAS = "streamdiffusion_canvas"
SIZE = 128
RED = "a red circle on a white background"
BLUE = "a blue circle on a white background"
WHITE = COLOURS["white"]


@pytest.fixture(scope="module")
def client(triton_server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(triton_server.grpc_url)


def grey_circle() -> np.ndarray:
    return np.asarray(render(SIZE, ("white",), (Shape("circle", "gray", (0.5, 0.5), 0.26),)).image)


GREY = grey_circle()
MASK = shape_mask(GREY, WHITE)


def canvas(client, image: np.ndarray = GREY, **params) -> bytes:
    params.setdefault("SEED", 7)
    return output_image(client.infer(CANVAS, inputs(png(image), **params)))


def blend(*pairs: tuple[object, float]) -> tuple[list[object], list[float]]:
    return [value for value, _ in pairs], [weight for _, weight in pairs]


def prompt_blend(*pairs: tuple[str, float], method: str = "linear") -> dict[str, object]:
    prompts, weights = blend(*pairs)
    return {"PROMPT_LIST": prompts, "PROMPT_WEIGHTS": weights, "PROMPT_INTERPOLATION": method}


def colour(data: bytes) -> np.ndarray:
    return mean_colour(decode_jpeg(data), MASK)


_ids = iter(range(700_000, 10**6))


def frames(client, prompts: list[dict[str, object]], image: np.ndarray = GREY, **common) -> list[bytes]:
    """One realtime sequence: frame i carries prompts[i] (and `common`); END at the close."""
    sid, data, out = next(_ids), png(image), []
    for i, params in enumerate(prompts):
        result = client.infer(REALTIME, inputs(data, **common, **params), sequence_id=sid, sequence_start=i == 0)
        out.append(output_image(result))
    client.infer(REALTIME, inputs(b""), sequence_id=sid, sequence_end=True)
    return out


# ---- canvas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_a_weight_of_one_on_a_prompt_equals_that_prompt_alone(client, method: str) -> None:
    alone = canvas(client, PROMPT=RED)
    assert canvas(client, **prompt_blend((RED, 1.0), (BLUE, 0.0), method=method)) == alone
    assert canvas(client, **prompt_blend((BLUE, 0.0), (RED, 1.0), method=method)) == alone
    assert canvas(client, PROMPT=BLUE, **prompt_blend((RED, 1.0), method=method)) == alone


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_an_even_blend_lies_between_the_two_prompts(client, method: str) -> None:
    red, blue = colour(canvas(client, PROMPT=RED)), colour(canvas(client, PROMPT=BLUE))
    mixed = colour(canvas(client, **prompt_blend((RED, 0.5), (BLUE, 0.5), method=method)))
    span = np.linalg.norm(red - blue)
    assert span > 100, (red, blue)  # the demo model paints the words: the two ends are far apart
    assert np.linalg.norm(mixed - red) < span and np.linalg.norm(mixed - blue) < span, (red, mixed, blue)
    assert min(red[0], blue[0]) < mixed[0] < max(red[0], blue[0]), (red, mixed, blue)
    assert min(red[2], blue[2]) < mixed[2] < max(red[2], blue[2]), (red, mixed, blue)


def test_the_blend_moves_monotonically_with_its_weight(client) -> None:
    red = colour(canvas(client, PROMPT=RED))
    distances = [
        np.linalg.norm(colour(canvas(client, **prompt_blend((RED, 1.0 - w), (BLUE, w)))) - red)
        for w in (0.0, 0.3, 0.6, 1.0)
    ]
    assert distances == sorted(distances) and distances[0] < 1.0 < distances[-1] - 50, distances


def test_canvas_blends_are_deterministic_and_independent_of_their_batch(client) -> None:
    params = {**prompt_blend((RED, 0.4), (BLUE, 0.6), method="slerp"), "SEED_LIST": [3, 11], "SEED_WEIGHTS": [0.5, 0.5]}
    first = canvas(client, **params)
    assert canvas(client, **params) == first
    others = [{"PROMPT": BLUE, "SEED": 5}, {"PROMPT": RED, "SEED": 9}, {"SEED_LIST": [1, 2], "SEED_WEIGHTS": [1, 1]}]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: canvas(client, **p), [params, *others, params]))
    assert together[0] == first and together[-1] == first


def test_a_seed_blend_is_its_own_noise_and_a_weight_of_one_is_that_seed(client) -> None:
    three, eleven = canvas(client, PROMPT=RED, SEED=3), canvas(client, PROMPT=RED, SEED=11)
    assert canvas(client, PROMPT=RED, SEED_LIST=[3, 11], SEED_WEIGHTS=[1.0, 0.0]) == three
    mixed = canvas(client, PROMPT=RED, SEED_LIST=[3, 11], SEED_WEIGHTS=[0.5, 0.5])
    assert mixed not in (three, eleven)
    # slerp keeps the noise's variance: the blend looks like a picture of the prompt, not a washed-out one
    assert np.linalg.norm(colour(mixed) - colour(three)) < 60, (colour(mixed), colour(three))


# ---- realtime ----------------------------------------------------------------------------------


def test_realtime_blends_work_per_frame_and_a_weight_of_one_is_the_prompt(client) -> None:
    alone = frames(client, [{"PROMPT": RED}] * 3, SEED=4)
    weighted = frames(client, [prompt_blend((RED, 1.0), (BLUE, 0.0))] * 3, SEED=4)
    assert weighted == alone
    mixed = frames(
        client, [{"PROMPT": RED}, prompt_blend((RED, 0.5), (BLUE, 0.5)), prompt_blend((RED, 0.5), (BLUE, 0.5))]
    )
    assert mixed[-1] != alone[-1]


@pytest.mark.parametrize("steps", [4, 1])
def test_a_transition_reaches_the_new_prompt_in_exactly_its_frames(client, steps: int) -> None:
    """One denoising step and a still input make each frame depend on its embedding only, so frame k after
    the change equals the new prompt alone exactly when k reaches the transition's length."""
    single = {"T_INDEX_LIST": [32], "SEED": 4}
    target = frames(client, [{"PROMPT": BLUE}] * 2, **single)[-1]
    start = frames(client, [{"PROMPT": RED}], **single)[0]
    change = {"PROMPT": BLUE, "PROMPT_TRANSITION_FRAMES": steps}
    moving = frames(client, [{"PROMPT": RED}, *[change] * (steps + 2)], **single)
    assert moving[0] == start
    after = moving[1:]
    assert after[steps - 1] == target and after[steps] == target and after[steps + 1] == target
    assert all(frame != target for frame in after[: steps - 1])
    reds = [colour(frame)[0] for frame in moving[: steps + 1]]
    assert reds == sorted(reds, reverse=True), reds  # red fades frame by frame towards the blue prompt


def test_a_transition_keeps_the_stream_batch_and_a_jump_is_the_default(client) -> None:
    """With the stream batch (two steps) a jump shows the new prompt at once; a transition arrives later."""
    red, blue = frames(client, [{"PROMPT": RED}] * 6), frames(client, [{"PROMPT": BLUE}] * 6)
    jump = frames(client, [{"PROMPT": RED}] * 3 + [{"PROMPT": BLUE}] * 3)
    slow = frames(client, [{"PROMPT": RED}] * 3 + [{"PROMPT": BLUE, "PROMPT_TRANSITION_FRAMES": 8}] * 3)
    assert jump[:3] == red[:3] and slow[:3] == red[:3]
    # nothing restarted: the frame after the change still carries the red frame in flight, unlike a fresh blue stream
    assert jump[3] != blue[3] and slow[3] != blue[3]
    target = colour(blue[-1])
    assert np.linalg.norm(colour(jump[-1]) - target) < np.linalg.norm(colour(slow[-1]) - target)


# ---- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [REALTIME, CANVAS])
@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"PROMPT_LIST": [RED, BLUE]}, "PROMPT_WEIGHTS is missing"),
        ({"PROMPT_LIST": [RED, BLUE], "PROMPT_WEIGHTS": [1.0]}, "1 weights for 2 PROMPT_LIST entries"),
        ({"PROMPT_LIST": [RED, BLUE], "PROMPT_WEIGHTS": [0.0, 0.0]}, "must not all be 0"),
        ({"PROMPT_LIST": [RED, BLUE], "PROMPT_WEIGHTS": [2.0, 1.0]}, "between 0 and 1.0"),
        ({"PROMPT_LIST": [RED] * 4, "PROMPT_WEIGHTS": [1.0] * 4}, "at most 3 may be blended"),
        ({"SEED_LIST": [1, 2], "SEED_WEIGHTS": [0.5, -1.0]}, "SEED_WEIGHTS values must be between"),
        ({"PROMPT_INTERPOLATION": "cubic"}, "PROMPT_INTERPOLATION must be one of linear, slerp"),
    ],
)
def test_bad_blends_are_refused_by_name_and_the_model_goes_on(client, model: str, params: dict, fragment: str) -> None:
    sequence = {"sequence_id": next(_ids), "sequence_start": True} if model == REALTIME else {}
    with pytest.raises(InferenceServerException, match=fragment):
        client.infer(model, inputs(png(GREY), **params), **sequence)
    result = client.infer(model, inputs(png(GREY), PROMPT=RED), **sequence)
    assert decode_jpeg(output_image(result)).shape == (SIZE, SIZE, 3)
    if sequence:
        client.infer(REALTIME, inputs(b""), sequence_id=sequence["sequence_id"], sequence_end=True)


def test_a_transition_is_bounded_and_canvas_has_none(client) -> None:
    with pytest.raises(InferenceServerException, match="PROMPT_TRANSITION_FRAMES must be between 0 and 16"):
        client.infer(
            REALTIME, inputs(png(GREY), PROMPT_TRANSITION_FRAMES=17), sequence_id=next(_ids), sequence_start=True
        )
    with pytest.raises(InferenceServerException, match="PROMPT_TRANSITION_FRAMES must be between 0 and 0"):
        client.infer(CANVAS, inputs(png(GREY), PROMPT_TRANSITION_FRAMES=2))


def test_blend_pictures_differ_from_the_ends_by_a_visible_amount(client) -> None:
    red, blue = decode_jpeg(canvas(client, PROMPT=RED)), decode_jpeg(canvas(client, PROMPT=BLUE))
    mixed = decode_jpeg(canvas(client, **prompt_blend((RED, 0.5), (BLUE, 0.5), method="slerp")))
    assert mad(mixed, red) > 3 and mad(mixed, blue) > 3
