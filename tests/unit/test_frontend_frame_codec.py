"""The binary frame envelope: every malformed shape is refused with a message saying what is wrong."""

import json
import re
import struct

import pytest

from frontends.frame_codec import encode_frame, parse_frame
from frontends.protocol import BadMessage

IMAGE = b"\xff\xd8\xff\xe0fake-jpeg"


def test_round_trip_strips_status():
    frame = parse_frame(encode_frame({"prompt": "a cat", "seed": 3}, IMAGE))
    assert frame.params == {"prompt": "a cat", "seed": 3}
    assert frame.image == IMAGE


def test_unicode_prompt_survives():
    frame = parse_frame(encode_frame({"prompt": "猫 と 犬"}, IMAGE))
    assert frame.params["prompt"] == "猫 と 犬"


def raw(json_bytes: bytes, image: bytes = IMAGE, length: int | None = None) -> bytes:
    return struct.pack(">I", len(json_bytes) if length is None else length) + json_bytes + image


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "shorter than its 4-byte"),
        (b"\x00\x00\x01", "shorter than its 4-byte"),
        (raw(b"", length=0), "JSON length of 0"),
        (raw(b'{"status":"next_frame"}', length=10_000), "only"),
        (struct.pack(">I", 0xFFFFFFFF) + b"{}", "only"),
        (raw(b"\xff\xfe{}"), "not UTF-8"),
        (raw(b"{not json}"), "does not parse"),
        (raw(b'["next_frame"]'), "must be an object"),
        (raw(b'"next_frame"'), "must be an object"),
        (raw(b"{}"), '"status": "next_frame"'),
        (raw(b'{"status":"update_params"}'), "got 'update_params'"),
        (raw(b'{"status":"next_frame"}', image=b""), "no image"),
    ],
)
def test_malformed_frames_are_refused(data, expected):
    with pytest.raises(BadMessage, match=re.escape(expected)):
        parse_frame(data)


def test_length_counts_bytes_not_characters():
    payload = json.dumps({"status": "next_frame", "prompt": "é"}, ensure_ascii=False).encode()
    frame = parse_frame(struct.pack(">I", len(payload)) + payload + IMAGE)
    assert frame.params == {"prompt": "é"} and frame.image == IMAGE
