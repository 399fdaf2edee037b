"""Parameters are checked against the very schema the model publishes (sdcontract.facts)."""

import pytest

from frontends.params import validate_params
from frontends.protocol import BadMessage
from sdconfig import Settings
from sdcontract.facts import input_schema

SETTINGS = Settings()
SCHEMA = input_schema(SETTINGS, "realtime", 77)
MAX_CHARS = 50


def check(params):
    return validate_params(params, SCHEMA, MAX_CHARS)


def test_valid_parameters_pass_unchanged():
    params = {
        "prompt": "a cat",
        "negative_prompt": "",
        "seed": 0,
        "guidance_scale": 1,
        "delta": 0.5,
        "t_index_list": [10, 20],
    }
    assert check(params) == params


def test_empty_is_fine_defaults_apply_model_side():
    assert check({}) == {}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"promt": "typo"}, "unknown parameter 'promt'"),
        ({"prompt": 3}, "'prompt' must be a string"),
        ({"prompt": None}, "'prompt' must be a string"),
        ({"prompt": "x" * (MAX_CHARS + 1)}, "at most 50"),
        ({"seed": "seven"}, "'seed' must be an integer"),
        ({"seed": "7.5"}, "'seed' must be an integer"),
        ({"seed": 1.5}, "'seed' must be an integer"),
        ({"seed": True}, "'seed' must be an integer"),
        ({"seed": -1}, "between 0 and"),
        ({"seed": 2**31}, "between 0 and"),
        ({"seed": 10**400}, "between 0 and"),
        ({"guidance_scale": "high"}, "must be a number"),
        ({"guidance_scale": float("nan")}, "finite"),
        ({"guidance_scale": float("inf")}, "finite"),
        ({"guidance_scale": SETTINGS.pipeline.guidance_scale_max + 1}, "between"),
        ({"delta": -0.1}, "between"),
        ({"t_index_list": 5}, "must be a list"),
        ({"t_index_list": []}, "at least 1"),
        ({"t_index_list": list(range(9))}, "at most 8"),
        ({"t_index_list": [1, "2"]}, r"'t_index_list\[1\]' must be an integer"),
        ({"t_index_list": [1, SETTINGS.pipeline.num_inference_steps]}, r"t_index_list\[1\]' must be between"),
    ],
)
def test_bad_parameters_are_named(params, expected):
    with pytest.raises(BadMessage, match=expected):
        check(params)


def test_schema_maxlength_and_enum_are_honoured():
    schema = {"properties": {"style": {"type": "string", "enum": ["a", "b"], "maxLength": 1}}}
    assert validate_params({"style": "a"}, schema, 100) == {"style": "a"}
    with pytest.raises(BadMessage, match="one of"):
        validate_params({"style": "c"}, schema, 100)


def test_unknown_keys_allowed_when_schema_allows_them():
    assert validate_params({"extra": 1}, {"properties": {}}, 10) == {"extra": 1}


def test_strictly_increasing_lists_when_the_schema_asks():
    schema = {"properties": {"steps": {"type": "array", "items": {"type": "integer"}, "x-strictly-increasing": True}}}
    assert validate_params({"steps": [1, 5, 9]}, schema, 10) == {"steps": [1, 5, 9]}
    for bad in ([5, 1], [3, 3]):
        with pytest.raises(BadMessage, match="strictly increasing"):
            validate_params({"steps": bad}, schema, 10)


def test_numbers_given_as_text_are_taken_as_numbers() -> None:
    checked = validate_params({"seed": "7", "guidance_scale": " 1.5 ", "prompt": "12"}, SCHEMA, 1000)
    assert checked == {"seed": 7, "guidance_scale": 1.5, "prompt": "12"}


def test_nested_params_are_read_and_top_level_keys_win() -> None:
    from frontends.params import merged_params

    assert merged_params({"params": {"seed": 1, "delta": 0.5}, "seed": 2}) == {"seed": 2, "delta": 0.5}
    with pytest.raises(BadMessage, match="'params' must be an object"):
        merged_params({"params": [1, 2]})


def test_blends_pass_as_lists_of_pairs() -> None:
    params = {
        "prompt_list": [["a red circle", 0.5], ["a blue square", 0.5]],
        "seed_list": [[1, 0.7], [2, 0.3]],
        "prompt_interpolation_method": "slerp",
        "prompt_transition_frames": 8,
        "prompt": "a red circle",
    }
    assert check(params) == params
    assert check({"prompt_list": [], "seed_list": []}) == {"prompt_list": [], "seed_list": []}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"prompt_list": "a red circle"}, "'prompt_list' must be a list"),
        ({"prompt_list": [["a", 1.0]] * 5}, "'prompt_list' takes at most 4 items"),
        ({"prompt_list": [["a", 1.0, 2.0]]}, r"'prompt_list\[0\]' takes at most 2 items"),
        ({"prompt_list": [["a"]]}, r"'prompt_list\[0\]' needs at least 2 items"),
        ({"prompt_list": [[1, 1.0]]}, r"'prompt_list\[0\]\[0\]' must be a string"),
        ({"prompt_list": [["a", "heavy"]]}, r"'prompt_list\[0\]\[1\]' must be a number"),
        ({"prompt_list": [["a", 1.5]]}, r"'prompt_list\[0\]\[1\]' must be between 0.0 and 1.0"),
        ({"prompt_list": [["a", -0.1]]}, r"between 0.0 and 1.0"),
        ({"prompt_list": [["a", 0], ["b", 0.0]]}, "'prompt_list' has weights that are all 0"),
        ({"prompt_list": [["x" * (MAX_CHARS + 1), 1.0]]}, "at most 50"),
        ({"seed_list": [[-1, 1.0]]}, r"'seed_list\[0\]\[0\]' must be between 0"),
        ({"seed_list": [[1.5, 1.0]]}, r"'seed_list\[0\]\[0\]' must be an integer"),
        ({"prompt_interpolation_method": "cubic"}, "must be one of"),
        ({"prompt_transition_frames": 1000}, "'prompt_transition_frames' must be between 0 and 120"),
    ],
)
def test_bad_blends_are_named(params, expected):
    with pytest.raises(BadMessage, match=expected):
        check(params)


def test_the_transition_is_offered_where_a_stream_lives_on_only() -> None:
    canvas = input_schema(SETTINGS, "canvas", 77)["properties"]
    assert "prompt_list" in canvas and "seed_list" in canvas and "prompt_transition_frames" not in canvas
    with pytest.raises(BadMessage, match="unknown parameter 'prompt_transition_frames'"):
        validate_params({"prompt_transition_frames": 4}, {"properties": canvas, "additionalProperties": False}, 50)


def test_a_blend_travels_as_its_values_and_weights() -> None:
    from frontends.triton_inputs import build_inputs

    params = {"prompt_list": [["a red circle", 0.5], ["a blue circle", 0.5]], "seed_list": [], "seed": 3}
    tensors = {t.name(): t for t in build_inputs(b"jpeg", params, SCHEMA, 90)}
    assert set(tensors) == {"IMAGE", "JPEG_QUALITY", "PROMPT_LIST", "PROMPT_WEIGHTS", "SEED"}
    assert (tensors["PROMPT_LIST"].shape(), tensors["PROMPT_LIST"].datatype()) == ([1, 2], "BYTES")
    assert (tensors["PROMPT_WEIGHTS"].shape(), tensors["PROMPT_WEIGHTS"].datatype()) == ([1, 2], "FP32")
