"""Edits to config.pbtxt text, one field at a time.

The checked-in configs keep their comments and layout, so each fact the YAML decides is replaced
where it stands instead of the file being regenerated. Pure functions on strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_STRING = r'"(?:[^"\\\n]|\\.)*"'
_UNESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)")
_SIMPLE_UNESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b", b"f": b"\f", b"v": b"\v"}


def pbtxt_string(value: str) -> str:
    """`value` as a protobuf text-format string literal (UTF-8 kept, control characters escaped)."""
    parts = []
    for ch in value:
        if ch in _ESCAPES:
            parts.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            parts.append(f"\\{ord(ch):03o}")
        else:
            parts.append(ch)
    return '"' + "".join(parts) + '"'


def _unescape_match(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if code[:1] == b"x" and len(code) > 1:
        return bytes([int(code[1:], 16)])
    if code[:1].isdigit():
        return bytes([int(code, 8) & 0xFF])
    return _SIMPLE_UNESCAPES.get(code, code)


def pbtxt_unquote(literal: str) -> str:
    """The value of a double-quoted text-format string literal."""
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        raise ValueError(f"not a quoted string: {literal!r}")
    return _UNESCAPE.sub(_unescape_match, literal[1:-1].encode("utf-8")).decode("utf-8")


def _parameter_pattern(key: str) -> re.Pattern[str]:
    return re.compile(
        r"(parameters\s*(?::\s*)?\{\s*key\s*:\s*\""
        + re.escape(key)
        + r"\"\s*value\s*:?\s*\{\s*string_value\s*:\s*)"
        + "("
        + _STRING
        + ")"
    )


def string_parameter(text: str, key: str) -> str | None:
    """The string value of model parameter `key` in a config.pbtxt, or None."""
    match = _parameter_pattern(key).search(text)
    return pbtxt_unquote(match.group(2)) if match else None


def set_string_parameter(text: str, key: str, value: str) -> str:
    """Replace parameter `key`'s value, or append the parameter where the config has none."""
    pattern = _parameter_pattern(key)
    literal = pbtxt_string(value)
    if pattern.search(text):
        return pattern.sub(lambda m: m.group(1) + literal, text, count=1)
    tail = "" if text.endswith("\n") or not text else "\n"
    return f'{text}{tail}parameters {{ key: "{key}" value: {{ string_value: {literal} }} }}\n'


_IDLE = re.compile(r"max_sequence_idle_microseconds\s*:\s*\d+")
_SEQUENCE_BATCHING = re.compile(r"sequence_batching\s*\{")
_KIND = re.compile(r"kind\s*:\s*KIND_(?:CPU|GPU)\b")
_TOP_LEVEL_NAME = re.compile(r"^name\s*:\s*(" + _STRING + ")", re.MULTILINE)


def set_sequence_idle(text: str, microseconds: int) -> str:
    """Set the sequence batcher's idle time; a config without a sequence batcher is left alone."""
    field = f"max_sequence_idle_microseconds: {microseconds}"
    if _IDLE.search(text):
        return _IDLE.sub(field, text)
    match = _SEQUENCE_BATCHING.search(text)
    if match is None:
        return text
    return f"{text[: match.end()]}\n  {field}{text[match.end() :]}"


_MAX_BATCH = re.compile(r"^max_batch_size\s*:\s*\d+", re.MULTILINE)
_CANDIDATES = re.compile(r"max_candidate_sequences\s*:\s*\d+")


def set_max_batch(text: str, max_batch: int) -> str:
    """The top-level max_batch_size: how many requests Triton may hand one execute() call."""
    return _MAX_BATCH.sub(f"max_batch_size: {max_batch}", text, count=1)


_QUEUE_DELAY = re.compile(r"max_queue_delay_microseconds\s*:\s*\d+")
_PREFERRED = re.compile(r"preferred_batch_size\s*:\s*\[[^\]]*\]")


def set_batch_waiting(text: str, preferred: Sequence[int], queue_delay_ms: float) -> str:
    """The batcher's preferred batch sizes and queue delay (dynamic or sequence batcher, whichever is there)."""
    text = _QUEUE_DELAY.sub(f"max_queue_delay_microseconds: {round(queue_delay_ms * 1000)}", text)
    return _PREFERRED.sub(f"preferred_batch_size: [ {', '.join(str(size) for size in preferred)} ]", text)


def set_candidate_sequences(text: str, max_sequences: int) -> str:
    """The oldest strategy's candidate sequences follow the sequences one instance may hold."""
    return _CANDIDATES.sub(f"max_candidate_sequences: {max_sequences}", text)


def set_instance_kind(text: str, gpu: bool) -> str:
    """KIND_GPU where the model runs on CUDA, KIND_CPU where it does not (KIND_AUTO/MODEL untouched)."""
    return _KIND.sub("kind: KIND_GPU" if gpu else "kind: KIND_CPU", text)


def model_name(text: str) -> str:
    """The top-level `name:`, or "" where the config has none."""
    match = _TOP_LEVEL_NAME.search(text)
    return pbtxt_unquote(match.group(1)) if match else ""


def set_model_name(text: str, name: str) -> str:
    """The top-level `name:` (written at the start of a line) must equal the model's folder name."""
    literal = pbtxt_string(name)
    if _TOP_LEVEL_NAME.search(text):
        return _TOP_LEVEL_NAME.sub(lambda _m: f"name: {literal}", text, count=1)
    return f"name: {literal}\n{text}"
