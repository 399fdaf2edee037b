"""A test clip the project makes itself: demo-model shapes moving on white, with a sine-tone audio track.

The shapes are the demo model's own (sdmodels/scenes.py), so a restyled clip can be checked by
figure: a shape's centroid in the output follows the input's (sdmodels/evaluation.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from sdmodels.scenes import Shape, render

WHITE = (245, 245, 245)
SAMPLE_RATE = 44100
TONE_HZ = 440.0


def centre_x(index: int, frames: int) -> float:
    """Where the moving circle is at `index`: left to right across the middle."""
    return 0.25 + 0.5 * index / max(1, frames - 1)


def scene_frame(index: int, frames: int, size: tuple[int, int]) -> np.ndarray:
    """Frame `index`: a blue circle crossing left to right, a red square still above it."""
    width, height = size
    side = max(width, height)
    shapes = (
        Shape("circle", "blue", (centre_x(index, frames), 0.55), 0.16),
        Shape("square", "red", (0.32, 0.27), 0.08),
    )
    image = render(side, ("white",), shapes, seed=0).image
    left, top = (side - width) // 2, (side - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)))


def write_clip(
    path: Path, frames: int = 48, fps: int = 12, size: tuple[int, int] = (192, 144), audio: bool = True
) -> Path:
    """An H.264 clip (mp4/mov/mkv) of `frames` frames, with an AAC tone when `audio`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "12"}
        tone = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(scene_frame(index, frames, size), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if tone is not None:
            _write_tone(container, tone, frames / fps)
    return path


def _write_tone(container: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    samples = int(seconds * SAMPLE_RATE)
    wave = (0.3 * np.sin(2 * np.pi * TONE_HZ * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
    for start in range(0, samples, 1024):
        chunk = wave[start : start + 1024][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the demo test clip (moving shapes, sine tone).")
    parser.add_argument("output", type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--size", default="192x144", help="WIDTHxHEIGHT")
    parser.add_argument("--no-audio", action="store_true")
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.size.lower().split("x"))
    write_clip(args.output, args.frames, args.fps, (width, height), audio=not args.no_audio)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
