"""Image checks: sniffing, header-only size limits, truncation, decoding, fitting to the model's size."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from frontends.image_intake import decode_small, fit_image, read_header, sniff_format
from frontends.protocol import BadMessage

MAX_BYTES = 1 << 20
MAX_PIXELS = 1024 * 1024


def encoded(fmt: str, width: int = 96, height: int = 64) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width x height` (its pixel data is a few bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("fmt", "name"), [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp")])
def test_supported_formats_are_sniffed_and_sized(fmt, name):
    data = encoded(fmt)
    assert sniff_format(data) == name
    header = read_header(data, MAX_BYTES, MAX_PIXELS)
    assert (header.format, header.width, header.height) == (name, 96, 64)
    assert decode_small(data, header).shape == (64, 96)


@pytest.mark.parametrize("data", [b"GIF89a....", b"BM\x00\x00", b"<svg/>", b"\x00" * 16, b"RIFF\0\0\0\0AVI "])
def test_other_formats_are_refused(data):
    with pytest.raises(BadMessage, match="not JPEG, PNG or WebP"):
        read_header(data, MAX_BYTES, MAX_PIXELS)


def test_too_many_bytes_refused():
    with pytest.raises(BadMessage, match="max_image_bytes"):
        read_header(encoded("PNG"), 100, MAX_PIXELS)


def test_huge_dimensions_refused_from_the_header_alone():
    bomb = png_claiming(60_000, 60_000)
    assert len(bomb) < 200
    with pytest.raises(BadMessage, match="max_image_pixels"):
        read_header(bomb, MAX_BYTES, MAX_PIXELS)
    with pytest.raises(BadMessage, match="max_image_pixels"):
        read_header(png_claiming(2048, 2048), MAX_BYTES, MAX_PIXELS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_images_refused(fmt):
    data = encoded(fmt)
    with pytest.raises(BadMessage, match=r"truncated|does not parse"):
        read_header(data[: len(data) // 2], MAX_BYTES, MAX_PIXELS)


def test_corrupt_header_refused():
    data = bytearray(encoded("PNG"))
    data[16:24] = b"\xff" * 8  # width and height of IHDR, crc now wrong
    with pytest.raises(BadMessage):
        read_header(bytes(data), MAX_BYTES, MAX_PIXELS)


def test_garbage_body_does_not_decode():
    data = b"\xff\xd8\xff\xe0" + b"\x00" * 200 + b"\xff\xd9"
    with pytest.raises(BadMessage):
        header = read_header(data, MAX_BYTES, MAX_PIXELS)
        decode_small(data, header)


def test_small_decode_is_reduced_for_big_frames():
    data = encoded("JPEG", 512, 512)
    header = read_header(data, MAX_BYTES, MAX_PIXELS)
    assert decode_small(data, header).shape == (64, 64)


def test_fit_center_crops_and_resizes_to_exact_size():
    # a 200x100 picture: left quarter black, middle half white, right quarter black
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 50:150] = 255
    _, png = cv2.imencode(".png", img)
    out = fit_image(png.tobytes(), 64, 64, 95)
    assert sniff_format(out) == "jpeg"
    decoded = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert decoded.shape == (64, 64)
    assert decoded.mean() > 240  # the center square kept, the black sides cropped away


def test_fit_upscales_a_small_tall_image():
    out = fit_image(encoded("PNG", 20, 40), 64, 32, 90)
    assert cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR).shape == (32, 64, 3)


def jpeg_of(pixels: np.ndarray, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", **options)
    return buf.getvalue()


def camera_like(size: int = 512) -> np.ndarray:
    """Smooth gradients with a little noise, like a webcam frame (a truncation lands in real data)."""
    y, x = np.mgrid[0:size, 0:size]
    noise = np.random.default_rng(1).integers(0, 24, (size, size, 3))
    return (np.stack([x / 2, y / 2, (x + y) / 4], -1) + noise).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("options", [{}, {"optimize": True}, {"progressive": True}, {"subsampling": 0}])
@pytest.mark.parametrize("kept", [0.3, 0.5, 0.9])
def test_a_truncated_jpeg_with_an_end_marker_appended_is_refused(options, kept):
    data = jpeg_of(camera_like(), **options)
    cut = data[: int(len(data) * kept)] + b"\xff\xd9"
    with pytest.raises(BadMessage, match="truncated"):
        read_header(cut, MAX_BYTES, MAX_PIXELS)


@pytest.mark.parametrize(
    "options",
    [{}, {"optimize": True}, {"progressive": True}, {"subsampling": 0}, {"restart_marker_blocks": 4}, {"quality": 100}],
)
@pytest.mark.parametrize("size", [8, 128, 333])
def test_whole_jpegs_pass_the_completeness_check(options, size):
    pixels = camera_like(512)[:size, : size + 7]
    read_header(jpeg_of(pixels, **options), MAX_BYTES, MAX_PIXELS)
    _, by_opencv = cv2.imencode(".jpg", pixels)
    read_header(by_opencv.tobytes(), MAX_BYTES, MAX_PIXELS)


def test_a_flat_white_drawing_and_a_grayscale_jpeg_pass():
    white = np.full((128, 128, 3), 255, np.uint8)
    cv2.circle(white, (40, 40), 20, (255, 0, 0), -1)
    read_header(jpeg_of(white), MAX_BYTES, MAX_PIXELS)
    read_header(jpeg_of(camera_like(128)[:, :, 0]), MAX_BYTES, MAX_PIXELS)


def test_a_header_that_does_not_parse_is_named_without_python_object_text():
    for data in (b"\xff\xd8\xff" + b"\x00" * 100 + b"\xff\xd9", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 + b"IEND"):
        with pytest.raises(BadMessage) as refused:
            read_header(data, MAX_BYTES, MAX_PIXELS)
        assert "object at 0x" not in str(refused.value) and "BytesIO" not in str(refused.value)
        assert "header does not parse" in str(refused.value)
