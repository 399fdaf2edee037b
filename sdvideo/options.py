"""Parameters from the command line: `--param key=value` and a JSON file, as the live modes take them.

Values stay text where the schema wants numbers; validation (frontends/params.py) turns them into
numbers exactly as it does for the pages' form fields. A value that looks like JSON (a list of
steps) is read as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class OptionError(ValueError):
    """A malformed parameter option; the message says which and how to write it."""


def parse_param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise OptionError(f"--param {text!r}: write key=value, e.g. --param seed=7")
    value = value.strip()
    if value[:1] in "[{":
        try:
            return key.strip(), json.loads(value)
        except json.JSONDecodeError as exc:
            raise OptionError(f"--param {key}: {value!r} is not valid JSON ({exc})") from None
    return key.strip(), value


def params_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OptionError(f"{path}: cannot read the parameters as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise OptionError(f"{path}: the parameters must be a JSON object, got {type(data).__name__}")
    return data


def gather_params(file: Path | None, pairs: Sequence[str], prompt: str | None) -> dict[str, Any]:
    """The file's parameters, then each --param, then --prompt: later ones win."""
    params = params_file(file) if file else {}
    params.update(parse_param(pair) for pair in pairs)
    if prompt is not None:
        params["prompt"] = prompt
    return params
