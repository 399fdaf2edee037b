"""What the trained demo model makes visible through a real tritonserver: colours, places, prompts, sequences.

A random-weight model turns a swapped colour order, a flipped image or a mixed-up batch into noise
like any other noise; these tests fail on each of them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sdmodels.evaluation import (
    OverTriton,
    centroid_x,
    mad,
    mean_colour,
    moving_shape,
    nearest_colour,
    shape_mask,
)
from sdmodels.scenes import COLOURS, Shape, render

pytestmark = pytest.mark.triton
SIZE = 128
WHITE = COLOURS["white"]


@pytest.fixture(scope="module")
def models(triton_server) -> OverTriton:
    settings = triton_server.settings
    return OverTriton(triton_server.grpc_url, settings.triton.realtime_model, settings.triton.canvas_model)


def drawing(kind: str, colour: str, x: float, y: float, size: float = 0.22) -> np.ndarray:
    return np.asarray(render(SIZE, ("white",), (Shape(kind, colour, (x, y), size),)).image)


def centre(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(shape_mask(image, WHITE))
    return float(xs.mean() / SIZE), float(ys.mean() / SIZE)


def test_red_stays_red(models) -> None:
    red = drawing("circle", "red", 0.5, 0.5)
    result = models.canvas(red, "a red circle on a white background", 7)
    colour = mean_colour(result, shape_mask(red, WHITE))
    assert nearest_colour(colour) == "red", colour
    assert colour[0] > colour[2] + 80, f"red channel must stay first (RGB), got {colour}"


def test_a_shape_drawn_top_left_comes_back_top_left(models) -> None:
    square = drawing("square", "blue", 0.3, 0.28, 0.16)
    result = models.canvas(square, "a blue square on a white background", 7)
    x, y = centre(result)
    assert x < 0.45 and y < 0.45, f"the square's centre came back at ({x:.2f}, {y:.2f})"
    assert abs(x - 0.3) < 0.1 and abs(y - 0.28) < 0.1


def test_different_drawings_differ_and_the_same_drawing_repeats(models) -> None:
    prompt = "a green star on a white background"
    first = models.canvas(drawing("star", "green", 0.3, 0.3), prompt, 7)
    again = models.canvas(drawing("star", "green", 0.3, 0.3), prompt, 7)
    other = models.canvas(drawing("star", "green", 0.7, 0.7), prompt, 7)
    assert mad(first, again) < 1.0, "same drawing, prompt and seed must give the same picture"
    assert mad(first, other) > 8.0, "a drawing elsewhere must give another picture"


def test_the_prompt_colour_word_moves_the_colour(models) -> None:
    grey = drawing("circle", "gray", 0.5, 0.5, 0.26)
    mask = shape_mask(grey, WHITE)
    for named in ("blue", "yellow", "red"):
        result = models.canvas(grey, f"a {named} circle on a white background", 7)
        before, after = mean_colour(grey, mask), mean_colour(result, mask)
        target = np.array(COLOURS[named], np.float64)
        assert np.linalg.norm(after - target) < np.linalg.norm(before - target) - 30, (named, before, after)


def test_two_interleaved_realtime_sequences_each_follow_their_own_input(models) -> None:
    frames = 16
    rightwards = moving_shape(frames, SIZE)
    leftwards = list(reversed(moving_shape(frames, SIZE, colour="red")))
    a, b = models.open_sequence(), models.open_sequence()
    outputs_a, outputs_b = [], []
    for i in range(frames):
        last = i == frames - 1
        outputs_a.append(models.sequence_frame(a, rightwards[i], "a blue circle on a white background", i == 0, last))
        outputs_b.append(models.sequence_frame(b, leftwards[i], "a red circle on a white background", i == 0, last))
    tail = slice(frames // 2, frames)  # past the stream batch's lag
    xs_a = [centroid_x(f, WHITE) for f in outputs_a[tail]]
    xs_b = [centroid_x(f, WHITE) for f in outputs_b[tail]]
    assert None not in xs_a and None not in xs_b
    assert xs_a[-1] > xs_a[0] + 0.1, f"sequence A moves right: {xs_a}"
    assert xs_b[-1] < xs_b[0] - 0.1, f"sequence B moves left: {xs_b}"
    assert nearest_colour(mean_colour(outputs_a[-1], shape_mask(outputs_a[-1], WHITE))) == "blue"
    assert nearest_colour(mean_colour(outputs_b[-1], shape_mask(outputs_b[-1], WHITE))) == "red"


def test_a_batched_canvas_group_gives_each_drawing_its_own_picture(models) -> None:
    cases = [
        (drawing("circle", "red", 0.3, 0.3), "a red circle on a white background"),
        (drawing("square", "blue", 0.7, 0.3), "a blue square on a white background"),
        (drawing("triangle", "green", 0.3, 0.7), "a green triangle on a white background"),
        (drawing("star", "yellow", 0.7, 0.7), "a yellow star on a white background"),
    ]
    with ThreadPoolExecutor(len(cases)) as pool:  # together, so Triton's batcher groups them
        results = list(pool.map(lambda case: models.canvas(case[0], case[1], 7), cases))
    for i, (picture, _) in enumerate(cases):
        own = mad(results[i], picture)
        others = [mad(results[j], picture) for j in range(len(cases)) if j != i]
        assert own * 1.5 < min(others), f"drawing {i}: own {own:.1f}, others {others}"
