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
