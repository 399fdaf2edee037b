"""The binary frame: `[4-byte big-endian unsigned JSON length][UTF-8 JSON][image bytes]`.

Parsing only splits and checks the envelope; what the parameters mean is `params.py`'s job and
whether the image is one is `images.py`'s.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from frontends.protocol import STATUS_NEXT_FRAME, BadMessage

_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Frame:
    params: dict[str, Any]
    """The JSON object without its "status"."""
    image: bytes


def parse_frame(data: bytes) -> Frame:
    """Split one binary message; raise BadMessage naming what is malformed."""
    if len(data) < _LENGTH.size:
        raise BadMessage(
            f"binary frame of {len(data)} bytes is shorter than its 4-byte JSON length header; "
            "send [4-byte big-endian JSON length][JSON][image]"
        )
    (json_length,) = _LENGTH.unpack_from(data)
    if json_length == 0:
        raise BadMessage('binary frame has a JSON length of 0; it must carry {"status": "next_frame", ...}')
    body = len(data) - _LENGTH.size
    if json_length > body:
        raise BadMessage(f"binary frame's JSON length is {json_length} bytes but only {body} bytes follow the header")
    view = memoryview(data)
    params = _parse_json(view[_LENGTH.size : _LENGTH.size + json_length])
    image = bytes(view[_LENGTH.size + json_length :])
    if not image:
        raise BadMessage("binary frame carries no image after its JSON; append the JPEG, PNG or WebP bytes")
    return Frame(params=params, image=image)


def _parse_json(raw: memoryview) -> dict[str, Any]:
    try:
        text = str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage(f"binary frame's JSON is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    obj = parse_json(text, "binary frame's JSON header")
    if not isinstance(obj, dict):
        raise BadMessage(f"binary frame's JSON must be an object, got {type(obj).__name__}")
    status = obj.pop("status", None)
    if status != STATUS_NEXT_FRAME:
        raise BadMessage(f'binary frame\'s JSON needs "status": "{STATUS_NEXT_FRAME}", got {status!r}')
    return obj


def parse_json(text: str, what: str) -> Any:
    """json.loads with every way it can fail named, nesting and huge integers included."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadMessage(f"{what} is not JSON: it does not parse ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise BadMessage(f"{what} is nested too deeply to read") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise BadMessage(f"{what} holds a number too long to read: {str(exc)[:80]}") from None


def encode_frame(params: dict[str, Any], image: bytes) -> bytes:
    """The client's side of the envelope (used by the load benchmark and the tests)."""
    payload = json.dumps({"status": STATUS_NEXT_FRAME, **params}, separators=(",", ":")).encode()
    return _LENGTH.pack(len(payload)) + payload + image
