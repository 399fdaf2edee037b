"""What the protocol fuzzer sends: hypothesis strategies for whole cases of wire messages.

Each case opens a session in a random mode and sends a few messages drawn from:
- binary frames: random bytes; valid envelopes around valid, odd or broken images (JPEG, PNG,
  WebP, 1x1, extreme aspect ratios, a header claiming 60000x60000, truncated, random); parameters
  of every JSON type, out of range, NaN and Infinity, unknown names, huge prompts; and valid frames
  mutated (bytes flipped, cut short, the length prefix rewritten, bytes inserted);
- text messages: random text, JSON that is no object, objects of known and unknown statuses with
  the same parameters.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from frontends.frame_codec import encode_frame

# --------------------------------------------------------------------------- pictures


def _encoded(width: int, height: int, fmt: str, value: int = 0) -> bytes:
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([(xx * 7 + value) % 256, (yy * 5) % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def _claims_huge(jpeg: bytes) -> bytes:
    """The JPEG with its frame header claiming 60000x60000 pixels (the data stays tiny)."""
    data = bytearray(jpeg)
    at = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, 60000, 60000)
    return bytes(data)


def images(size: int) -> list[bytes]:
    jpeg = _encoded(size, size, "JPEG")
    return [
        jpeg,
        _encoded(size, size, "PNG", 40),
        _encoded(size, size, "WEBP", 80),
        _encoded(size // 2, size * 2, "JPEG"),
        _encoded(1, 1, "PNG"),
        _encoded(3, 500, "JPEG"),
        _encoded(size, size, "GIF"),
        _encoded(8, 8, "BMP"),
        _claims_huge(jpeg),
        jpeg[: len(jpeg) // 2],
        jpeg[:2],
        b"",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    ]


# --------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def param_values(name: str) -> st.SearchStrategy[Any]:
    typical: dict[str, st.SearchStrategy[Any]] = {
        "prompt": st.text(max_size=80) | st.text(min_size=900, max_size=1200),
        "negative_prompt": st.text(max_size=80),
        "seed": st.integers(min_value=-5, max_value=2**31 + 5) | st.integers(min_value=-(2**70), max_value=2**70),
        "guidance_scale": st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=0, max_value=25),
        "delta": st.floats(min_value=-1, max_value=6),
        "t_index_list": st.lists(st.integers(min_value=-3, max_value=1100), max_size=6),
        "jpeg_quality": st.integers(min_value=-5, max_value=105),
        "prompt_list": _pairs(st.text(max_size=40)),
        "seed_list": _pairs(st.integers(min_value=-5, max_value=2**31 + 5)),
        "prompt_interpolation_method": st.sampled_from(["linear", "slerp", "cubic", ""]),
        "prompt_transition_frames": st.integers(min_value=-3, max_value=200),
    }
    return typical.get(name, json_values) | json_values


def _pairs(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Blends: lists of [value, weight], with odd weights, odd pair lengths and odd values among them."""
    weights = st.floats(min_value=-0.5, max_value=1.5) | st.floats(allow_nan=True, allow_infinity=True) | json_values
    pair = st.tuples(values | json_values, weights).map(list)
    return st.lists(pair | st.lists(json_values, max_size=3), max_size=6)


PARAM_NAMES = (
    "prompt",
    "negative_prompt",
    "seed",
    "guidance_scale",
    "delta",
    "t_index_list",
    "jpeg_quality",
    "prompt_list",
    "seed_list",
    "prompt_interpolation_method",
    "prompt_transition_frames",
)


@st.composite
def params(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(PARAM_NAMES), max_size=4, unique=True))
    values = {name: draw(param_values(name)) for name in chosen}
    values.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2)))
    return values


sane_params = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.text(max_size=60),
        "negative_prompt": st.text(max_size=30),
        "seed": st.integers(min_value=0, max_value=2**31 - 1),
        "guidance_scale": st.floats(min_value=0, max_value=5),
        "delta": st.floats(min_value=0, max_value=5),
        "prompt_list": st.lists(
            st.tuples(st.text(max_size=40), st.floats(min_value=0.05, max_value=1)).map(list), max_size=3
        ),
        "seed_list": st.lists(
            st.tuples(st.integers(min_value=0, max_value=2**31 - 1), st.floats(min_value=0.05, max_value=1)).map(list),
            max_size=3,
        ),
    },
)
"""Parameters a real client sends: such frames go all the way through Triton."""


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


@st.composite
def valid_frames(draw: st.DrawFn, pictures: list[bytes]) -> bytes:
    return encode_frame(draw(params()), draw(st.sampled_from(pictures) | st.binary(max_size=200)))


@st.composite
def sane_frames(draw: st.DrawFn, pictures: list[bytes]) -> bytes:
    return encode_frame(draw(sane_params), draw(st.sampled_from(pictures[:6])))


@st.composite
def odd_envelopes(draw: st.DrawFn, pictures: list[bytes]) -> bytes:
    header = draw(
        st.builds(
            lambda status, rest: {**rest, "status": status} if status is not ... else rest,
            st.sampled_from(["next_frame", "ping", "update_params", "", "NEXT_FRAME", None, 5, ...]),
            params(),
        )
        | json_values
    )
    payload = draw(st.sampled_from([_dump(header), _dump(header)[:-1], b"\xff\xfe" + _dump(header), b"{}"]))
    picture = draw(st.sampled_from(pictures) | st.binary(max_size=100))
    return struct.pack(">I", len(payload)) + payload + picture


@st.composite
def mutated(draw: st.DrawFn, pictures: list[bytes]) -> bytes:
    data = bytearray(draw(valid_frames(pictures)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "cut", "length", "insert"]))
        if kind == "flip" and data:
            at = draw(st.integers(min_value=0, max_value=len(data) - 1))
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "cut":
            del data[draw(st.integers(min_value=0, max_value=len(data))) :]
        elif kind == "length" and len(data) >= 4:
            data[:4] = struct.pack(">I", draw(st.integers(min_value=0, max_value=2**32 - 1)))
        elif kind == "insert":
            at = draw(st.integers(min_value=0, max_value=len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def binary_messages(pictures: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        sane_frames(pictures),
        valid_frames(pictures),
        odd_envelopes(pictures),
        mutated(pictures),
    )


text_messages = st.one_of(
    st.text(max_size=200),
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.builds(
        lambda status, rest: json.dumps({**rest, "status": status}, allow_nan=True),
        st.sampled_from(["ping", "update_params", "next_frame", "", "PING", "bogus", None, 1]),
        params(),
    ),
    sane_params.map(lambda values: json.dumps({"status": "update_params", **values})),
)


@dataclass(frozen=True)
class Case:
    mode: str
    messages: list[bytes | str]


def cases(pictures: list[bytes]) -> st.SearchStrategy[Case]:
    return st.builds(
        Case,
        st.sampled_from(["realtime", "canvas"]),
        st.lists(binary_messages(pictures) | text_messages, min_size=1, max_size=6),
    )
