"""Measure the image wire format between frontends and Triton: raw RGB tensors or encoded JPEG bytes.

The browser sends JPEG and the MJPEG stream needs JPEG, so the question is where the codec runs and
how many bytes cross gRPC. Each path's cost per frame, measured side by side in one run:

  raw:     frontend decodes JPEG -> RGB, sends W*H*3 bytes, receives W*H*3 bytes, encodes JPEG
  encoded: frontend forwards the JPEG; the model decodes it and encodes its answer; JPEG bytes back

Transfer is timed as a round trip to the canvas model with a payload of each size that the model
refuses at its header check, so the time is gRPC, Triton and the request check, not the UNet.

    .venv/bin/python scripts/bench_wire_format.py --url 127.0.0.1:8001 [--size 512] [--runs 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException


def median_ms(action: Callable[[], object], runs: int) -> float:
    for _ in range(min(10, runs)):
        action()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def camera_like_frame(size: int) -> np.ndarray:
    """Smooth gradients plus sensor noise: compresses like a webcam frame, not like flat colour."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = np.stack([xx / size * 255, yy / size * 255, (xx + yy) / (2 * size) * 255], axis=-1)
    noise = np.random.default_rng(0).normal(0, 6, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def round_trip(client: grpcclient.InferenceServerClient, model: str, payload_bytes: int) -> Callable[[], None]:
    """A refused request carrying `payload_bytes` (starts with bytes no image format has)."""
    payload = b"\x00" * payload_bytes
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[payload]], dtype=np.object_))

    def send() -> None:
        with contextlib.suppress(InferenceServerException):
            client.infer(model, [tensor])

    return send


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="127.0.0.1:8001")
    parser.add_argument("--model", default="streamdiffusion_canvas")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    client = grpcclient.InferenceServerClient(args.url)
    if not client.is_model_ready(args.model):
        print(f"{args.model} is not ready at {args.url}: start scripts/launch_triton.py first", file=sys.stderr)
        return 1
    frame = camera_like_frame(args.size)
    jpeg = encode(frame, args.quality)
    raw_bytes = frame.nbytes

    decode_ms = median_ms(lambda: decode(jpeg), args.runs)
    encode_ms = median_ms(lambda: encode(frame, args.quality), args.runs)
    raw_trip_ms = median_ms(round_trip(client, args.model, raw_bytes), args.runs)
    jpeg_trip_ms = median_ms(round_trip(client, args.model, len(jpeg)), args.runs)
    # raw: the answer is as large as the request, so it costs the request's extra transfer time again
    raw_answer_ms = raw_trip_ms - jpeg_trip_ms
    raw_total = decode_ms + raw_trip_ms + raw_answer_ms + encode_ms
    encoded_total = jpeg_trip_ms + decode_ms + encode_ms

    print(
        f"frame {args.size}x{args.size}: raw {raw_bytes:,} B, JPEG q{args.quality} {len(jpeg):,} B "
        f"({raw_bytes / len(jpeg):.1f}x smaller)"
    )
    print(f"{'step (median ms)':<44}{'raw':>10}{'encoded':>10}")
    print(f"{'JPEG decode (frontend | model)':<44}{decode_ms:>10.2f}{decode_ms:>10.2f}")
    print(f"{'gRPC round trip, request payload':<44}{raw_trip_ms:>10.2f}{jpeg_trip_ms:>10.2f}")
    print(f"{'extra for the raw answer payload':<44}{raw_answer_ms:>10.2f}{0:>10.2f}")
    print(f"{'JPEG encode (frontend | model)':<44}{encode_ms:>10.2f}{encode_ms:>10.2f}")
    print(f"{'total per frame':<44}{raw_total:>10.2f}{encoded_total:>10.2f}")
    print(f"bytes on the network per frame: raw {2 * raw_bytes:,}, encoded about {2 * len(jpeg):,}")
    return 0
