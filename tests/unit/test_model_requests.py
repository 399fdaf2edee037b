"""The model's request checks, without Triton: each bad input is named."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sdbackend.errors import RequestError
from sdbackend.requests import RequestLimits, parse_request
from sdconfig import Settings


def limits() -> RequestLimits:
    settings = Settings.model_validate({"pipeline": {"width": 64, "height": 64}})
    return RequestLimits.from_settings(settings, "realtime", max_prompt_tokens=10)


def jpeg(size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


def getter(**tensors: object):
    arrays = {k: np.array(v) for k, v in tensors.items()}
    return arrays.get


def count_words(text: str) -> int:
    return len(text.split()) + 2


def parse(**tensors: object):
    tensors.setdefault("IMAGE", np.array([[jpeg()]], dtype=np.object_))
    return parse_request(getter(**tensors), limits(), count_words)


def test_defaults_fill_missing_inputs() -> None:
    request = parse()
    assert request.image.shape == (64, 64, 3)
    assert request.params == limits().defaults
    assert request.jpeg_quality == 85


def test_given_inputs_are_taken() -> None:
    request = parse(
        PROMPT=np.array([[b"a red fox"]], dtype=np.object_),
        SEED=np.array([[7]], dtype=np.int64),
        GUIDANCE_SCALE=np.array([[2.5]], dtype=np.float32),
        T_INDEX_LIST=np.array([[5, 20, 40]], dtype=np.int32),
        JPEG_QUALITY=np.array([[60]], dtype=np.int32),
    )
    assert request.params.prompt == "a red fox"
    assert request.params.seed == 7
    assert request.params.guidance_scale == 2.5
    assert request.params.t_index_list == (5, 20, 40)
    assert request.jpeg_quality == 60


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"SEED": np.array([[-1]])}, "SEED must be between"),
        ({"SEED": np.array([[1, 2]])}, "SEED must hold one value"),
        ({"GUIDANCE_SCALE": np.array([[np.nan]], dtype=np.float32)}, "GUIDANCE_SCALE"),
        ({"DELTA": np.array([[9.0]], dtype=np.float32)}, "DELTA must be between"),
        ({"T_INDEX_LIST": np.array([[10, 10]])}, "strictly increasing"),
        ({"T_INDEX_LIST": np.array([[50]])}, "between 0 and 49"),
        ({"T_INDEX_LIST": np.array([list(range(9))])}, "1 to 8 steps"),
        (
            {"PROMPT": np.array([[b"one two three four five six seven eight nine"]], dtype=np.object_)},
            "PROMPT is 11 tokens",
        ),
        ({"PROMPT": np.array([[b"\xff\xfe"]], dtype=np.object_)}, "not valid UTF-8"),
        ({"JPEG_QUALITY": np.array([[101]])}, "JPEG_QUALITY"),
        ({"IMAGE": np.array([[b""]], dtype=np.object_)}, "IMAGE is empty"),
        ({"IMAGE": np.array([[b"GIF89a...."]], dtype=np.object_)}, "not a JPEG, PNG or WebP"),
        ({"IMAGE": np.array([[jpeg((32, 64))]], dtype=np.object_)}, "IMAGE is 32x64; this model takes 64x64"),
    ],
)
def test_bad_inputs_are_named(tensors: dict, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse(**tensors)


def test_gif_is_refused_by_format() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="GIF")
    with pytest.raises(RequestError, match="IMAGE is GIF"):
        parse(IMAGE=np.array([[buffer.getvalue()]], dtype=np.object_))


def test_empty_image_only_ends_a_sequence() -> None:
    request = parse_request(getter(IMAGE=np.array([[b""]], dtype=np.object_)), limits(), count_words, ending=True)
    assert request.image is None


def texts(*values: str) -> np.ndarray:
    return np.array([[v.encode() for v in values]], dtype=np.object_)


def floats(*values: float) -> np.ndarray:
    return np.array([list(values)], dtype=np.float32)


def test_a_prompt_blend_replaces_the_prompt_with_normalised_weights() -> None:
    request = parse(
        PROMPT=texts("ignored"),
        PROMPT_LIST=texts("a red circle", "a blue circle"),
        PROMPT_WEIGHTS=floats(1.0, 0.25),
        PROMPT_INTERPOLATION=texts("slerp"),
    )
    assert request.params.prompts == (("a red circle", 0.8), ("a blue circle", 0.2))
    assert request.params.prompt == "a red circle"
    assert request.params.interpolation == "slerp"


def test_zero_weights_drop_out_so_weight_one_is_the_prompt_alone() -> None:
    alone = parse(PROMPT=texts("a red circle")).params
    blended = parse(PROMPT_LIST=texts("a red circle", "a blue circle"), PROMPT_WEIGHTS=floats(1.0, 0.0)).params
    assert blended == alone


def test_a_seed_blend_replaces_the_seed_and_an_empty_list_blends_nothing() -> None:
    request = parse(SEED=np.array([[9]]), SEED_LIST=np.array([[3, 4]]), SEED_WEIGHTS=floats(0.5, 0.5))
    assert request.params.seeds == ((3, 0.5), (4, 0.5)) and request.params.seed == 3
    empty = parse(SEED=np.array([[9]]), PROMPT_LIST=np.array([[]], dtype=np.object_)).params
    assert empty.seeds == ((9, 1.0),) and empty.prompts == limits().defaults.prompts


def test_the_transition_defaults_to_the_configuration_and_is_bounded() -> None:
    settings = Settings.model_validate(
        {"pipeline": {"width": 64, "height": 64}, "realtime": {"pipeline": {"prompt_transition_frames": 6}}}
    )
    realtime = RequestLimits.from_settings(settings, "realtime", max_prompt_tokens=10)
    image = {"IMAGE": np.array([[jpeg()]], dtype=np.object_)}
    assert parse_request(getter(**image), realtime, count_words).transition_frames == 6
    given = getter(**image, PROMPT_TRANSITION_FRAMES=np.array([[3]], dtype=np.int32))
    assert parse_request(given, realtime, count_words).transition_frames == 3
    canvas = RequestLimits.from_settings(settings, "canvas", max_prompt_tokens=10)
    assert parse_request(getter(**image), canvas, count_words).transition_frames == 0
    with pytest.raises(RequestError, match="PROMPT_TRANSITION_FRAMES must be between 0 and 0"):
        parse_request(given, canvas, count_words)


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"PROMPT_LIST": texts("a", "b")}, "PROMPT_WEIGHTS is missing"),
        ({"PROMPT_WEIGHTS": floats(1.0)}, "PROMPT_WEIGHTS was given without PROMPT_LIST"),
        ({"PROMPT_LIST": texts("a", "b"), "PROMPT_WEIGHTS": floats(1.0)}, "1 weights for 2 PROMPT_LIST"),
        ({"PROMPT_LIST": texts(*"abcde"), "PROMPT_WEIGHTS": floats(*[1.0] * 5)}, "at most 4 may be blended"),
        ({"PROMPT_LIST": texts("a", "b"), "PROMPT_WEIGHTS": floats(0.0, 0.0)}, "must not all be 0"),
        ({"PROMPT_LIST": texts("a", "b"), "PROMPT_WEIGHTS": floats(1.0, -0.5)}, "between 0 and 1.0, got -0.5"),
        ({"PROMPT_LIST": texts("a", "b"), "PROMPT_WEIGHTS": floats(1.0, 1.5)}, "between 0 and 1.0, got 1.5"),
        ({"PROMPT_LIST": texts("a", "b"), "PROMPT_WEIGHTS": floats(1.0, np.nan)}, "PROMPT_WEIGHTS values"),
        (
            {"PROMPT_LIST": texts("a", "one two three four five six seven eight nine"), "PROMPT_WEIGHTS": floats(1, 1)},
            r"PROMPT_LIST\[1\] is 11 tokens",
        ),
        ({"SEED_LIST": np.array([[1, -2]]), "SEED_WEIGHTS": floats(1, 1)}, "SEED_LIST values must be between"),
        ({"SEED_LIST": np.array([[1, 2]]), "SEED_WEIGHTS": floats(0, 0)}, "SEED_WEIGHTS must not all be 0"),
        ({"SEED_LIST": np.array([[1, 2, 3, 4, 5]]), "SEED_WEIGHTS": floats(1, 1, 1, 1, 1)}, "at most 4"),
        ({"PROMPT_INTERPOLATION": texts("cubic")}, "PROMPT_INTERPOLATION must be one of linear, slerp"),
        ({"PROMPT_TRANSITION_FRAMES": np.array([[121]], dtype=np.int32)}, "between 0 and 120"),
    ],
)
def test_bad_blends_are_named(tensors: dict, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse(**tensors)
