"""Inputs for the restyle tests: the project's clip, image folders, broken files; and reading outputs back."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from sdmodels.evaluation import centroid_x
from sdtools.video_clip import SAMPLE_RATE, scene_frame

WHITE = (245, 245, 245)
BELOW_SQUARE = 0.36
"""The clip's still square sits above this share of the height; the moving circle below it."""


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


def stream_facts(path: Path) -> tuple[Fraction, list[str]]:
    with av.open(str(path)) as container:
        return Fraction(container.streams.video[0].average_rate), [s.type for s in container.streams]


def circle_x(frame: np.ndarray) -> float | None:
    """The moving circle's centroid (share of the width), below the still square."""
    return centroid_x(frame[int(BELOW_SQUARE * frame.shape[0]) :], WHITE)


def image_folder(folder: Path, frames: int, size: tuple[int, int] = (160, 120)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        Image.fromarray(scene_frame(index, frames, size)).save(folder / f"shot_{index:03d}.png")
    return folder


def audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
