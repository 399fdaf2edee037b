"""Check a frame's parameters against the model's `input_params` JSON schema.

The schema comes from Triton (the `model_facts` model parameter), so the ranges a client sees in
`/settings` are exactly the ones enforced here. Only the schema keywords the model facts use are
understood: type, minimum, maximum, minItems, maxItems, maxLength, enum, items, prefixItems,
additionalProperties and the extensions `x-strictly-increasing` (for lists of steps) and
`x-weights-positive` (for blends: lists of [value, weight] pairs whose weights may not all be 0). Checking
here instead of in the model turns a bad value into an error message before any Triton call.
What the schema cannot say (a prompt's length in tokens) the model checks, and its refusal is
relayed to the client.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from typing import Any

from frontends.protocol import BadMessage

_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
}


_INTEGER_TEXT = re.compile(r"[+-]?\d{1,18}")
_NUMBER_TEXT = re.compile(r"[+-]?(\d{1,18}(\.\d{0,18})?|\.\d{1,18})([eE][+-]?\d{1,3})?")


def merged_params(message: Mapping[str, Any]) -> dict[str, Any]:
    """A `params` object inside a message is read like top-level keys; a top-level key wins over it."""
    fields = dict(message)
    nested = fields.pop("params", None)
    if nested is None:
        return fields
    if not isinstance(nested, dict):
        raise BadMessage(f"'params' must be an object of parameters, got {_describe(nested)}")
    return {**nested, **fields}


def validate_params(params: Mapping[str, Any], schema: Mapping[str, Any], max_prompt_chars: int) -> dict[str, Any]:
    """The parameters, numbers given as text made numbers; raise BadMessage naming the first bad one.

    `max_prompt_chars` bounds every string parameter (prompts) before it reaches the tokenizer.
    """
    properties: Mapping[str, Any] = schema.get("properties", {})
    unknown = sorted(set(params) - set(properties))
    if unknown and schema.get("additionalProperties", True) is False:
        raise BadMessage(f"unknown parameter {unknown[0]!r}; accepted parameters are {', '.join(sorted(properties))}")
    checked = {}
    for name, value in params.items():
        spec = properties.get(name)
        if spec is not None:
            value = _from_text(value, spec.get("type"))
            _check(name, value, spec, max_prompt_chars)
        checked[name] = value
    return checked


def _from_text(value: Any, kind: str | None) -> Any:
    """A string that is exactly an integer (or a number) counts as one: HTML inputs send text."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if kind == "integer" and _INTEGER_TEXT.fullmatch(text):
        return int(text)
    if kind == "number" and _NUMBER_TEXT.fullmatch(text):
        return float(text)
    return value


def _check(name: str, value: Any, spec: Mapping[str, Any], max_prompt_chars: int) -> None:
    kind = spec.get("type")
    if kind is not None and not _has_type(value, kind):
        raise BadMessage(f"parameter {name!r} must be {_JSON_TYPES.get(kind, kind)}, got {_describe(value)}")
    if "enum" in spec and value not in spec["enum"]:
        raise BadMessage(f"parameter {name!r} must be one of {spec['enum']}, got {value!r}")
    if isinstance(value, str):
        _check_string(name, value, spec, max_prompt_chars)
    elif isinstance(value, list):
        _check_list(name, value, spec, max_prompt_chars)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_range(name, value, spec)


def _check_string(name: str, value: str, spec: Mapping[str, Any], max_prompt_chars: int) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.start + 1]
        raise BadMessage(f"parameter {name!r} holds {bad!r} at {exc.start}, a lone surrogate: not valid text") from None
    limit = min(max_prompt_chars, spec.get("maxLength", max_prompt_chars))
    if len(value) > limit:
        raise BadMessage(f"parameter {name!r} is {len(value)} characters long; at most {limit} are accepted")


def _check_list(name: str, value: list[Any], spec: Mapping[str, Any], max_prompt_chars: int) -> None:
    low, high = spec.get("minItems"), spec.get("maxItems")
    if low is not None and len(value) < low:
        raise BadMessage(f"parameter {name!r} needs at least {low} items, got {len(value)}")
    if high is not None and len(value) > high:
        raise BadMessage(f"parameter {name!r} takes at most {high} items, got {len(value)}")
    items = spec.get("items")
    if items:
        for index, item in enumerate(value):
            _check(f"{name}[{index}]", item, items, max_prompt_chars)
    for index, (item, item_spec) in enumerate(zip(value, spec.get("prefixItems", []), strict=False)):
        _check(f"{name}[{index}]", item, item_spec, max_prompt_chars)
    if spec.get("x-weights-positive") and value and not any(pair[1] > 0 for pair in value):
        raise BadMessage(f"parameter {name!r} has weights that are all 0: give at least one entry a weight")
    if spec.get("x-strictly-increasing") and any(b <= a for a, b in itertools.pairwise(value)):
        raise BadMessage(f"parameter {name!r} must be strictly increasing, got {value}")


def _check_range(name: str, value: float, spec: Mapping[str, Any]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise BadMessage(f"parameter {name!r} must be a finite number, got {value!r}")
    low, high = spec.get("minimum"), spec.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadMessage(f"parameter {name!r} must be between {low} and {high}, got {value!r}")


def _has_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    match kind:
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int)
        case "number":
            return isinstance(value, int | float)
        case "array":
            return isinstance(value, list)
        case "boolean":
            return False
    return True


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"
