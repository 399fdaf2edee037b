"""Flicker of the realtime model against its speed and its following of a moving scene, per option, in one run.

    python scripts/bench_flicker.py [--config config.yaml] [--frames 48] [--rounds 3] [--threads 2]

Each configuration is the realtime service built from the config with a few keys changed
(realtime.pipeline.input_smoothing, output_feedback; the frontend's similar-image filter on or
off), in process (sdbackend.service, the code Triton runs, without gRPC). Frames travel as they
do in service: the camera frame is a JPEG (quality 90, as the pages send), the similar-image
filter sees the frontend's small grayscale decode of it (frontends.similarity, seeded), a frame it
skips shows the previous picture again (the MJPEG stream keeps its last part), and the model's
answer is the JPEG a viewer gets (realtime.performance.jpeg_quality).

Inputs (sdmodels.flicker): a still scene (one drawing, camera noise only) and a slow pan (the
drawing drifting a pixel a frame). Figures: flicker (mean absolute difference of consecutive
output frames, 0-255) on both, after the stream batch has filled; fps (camera frames handled a
second, skipped ones included, median over rounds; the configurations take turns each round so a
busy machine slows them alike); the pan's centroid lag and error (sdmodels.evaluation.best_lag_error).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from frontends.image_intake import decode_small, read_header
from frontends.similarity import SimilarityFilter
from sdbackend.requests import CheckedRequest, GenerationRequest, RequestLimits
from sdbackend.service import Service, build_service
from sdconfig import Settings, config_path, load_settings
from sdmodels.evaluation import best_lag_error, centroid_x, decode_jpeg
from sdmodels.flicker import SCENE_PROMPT, flicker, slow_pan, still_scene
from sdmodels.scenes import COLOURS

WARMUP_FRAMES = 4
"""Outputs left out of the flicker figure: the stream batch starts from its initial noise."""
CAMERA_JPEG_QUALITY = 90


@dataclass(frozen=True)
class Option:
    name: str
    input_smoothing: float = 0.0
    output_feedback: float = 0.0
    similarity_filter: bool = False


OPTIONS = (
    Option("model on every frame (filter off)"),
    Option("input_smoothing 0.5", input_smoothing=0.5),
    Option("input_smoothing 0.7", input_smoothing=0.7),
    Option("input_smoothing 0.75", input_smoothing=0.75),
    Option("input_smoothing 0.8", input_smoothing=0.8),
    Option("output_feedback 0.2", output_feedback=0.2),
    Option("output_feedback 0.5", output_feedback=0.5),
    Option("similar-image filter on (today's default)", similarity_filter=True),
    Option("filter + input_smoothing 0.5", input_smoothing=0.5, similarity_filter=True),
    Option("filter + input_smoothing 0.7", input_smoothing=0.7, similarity_filter=True),
    Option("filter + input_smoothing 0.75", input_smoothing=0.75, similarity_filter=True),
    Option("filter + input_smoothing 0.8", input_smoothing=0.8, similarity_filter=True),
)
"""Each row is compared with the first row of the same filter setting: the option alone, against today."""
MAX_LAG = 8
"""Frames of lag the centroid figure searches: heavy smoothing trails by more than the stream batch's own lag."""


@dataclass
class Row:
    option: str
    still_flicker: float
    pan_flicker: float
    fps: float
    still_model_share: float
    """Share of the still scene's frames the model ran on (the filter skipped the rest)."""
    pan_model_share: float
    pan_lag: int
    pan_error: float


def settings_for(settings: Settings, option: Option) -> Settings:
    realtime = settings.realtime
    pipeline = realtime.pipeline.model_copy(
        update={"input_smoothing": option.input_smoothing, "output_feedback": option.output_feedback}
    )
    performance = realtime.performance.model_copy(update={"enable_similar_image_filter": option.similarity_filter})
    return settings.model_copy(
        update={"realtime": realtime.model_copy(update={"pipeline": pipeline, "performance": performance})}
    )


class Camera:
    """One option's realtime service fed like the frontends feed it."""

    def __init__(self, settings: Settings, config_file: Path, option: Option) -> None:
        self.settings = settings_for(settings, option)
        self.service: Service = build_service(self.settings, config_file, "realtime")
        tokens = self.service.generator.pipe.tokenizer.model_max_length
        self.limits = RequestLimits.from_settings(self.settings, "realtime", tokens)
        self.option = option
        self._next_id = 1

    def _filter(self) -> SimilarityFilter | None:
        perf = self.settings.realtime.performance
        if not perf.enable_similar_image_filter:
            return None
        return SimilarityFilter(
            perf.similar_image_filter_threshold, perf.similar_image_filter_max_skip_frame, random.Random(0)
        )

    def run(self, frames: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
        """The pictures a viewer sees, one per camera frame, and how many frames the model ran on."""
        sequence, self._next_id = self._next_id, self._next_id + 1
        params = dataclasses.replace(self.limits.defaults, prompts=((SCENE_PROMPT, 1.0),))
        quality = self.settings.realtime.performance.jpeg_quality
        similar = self._filter()
        shown: list[np.ndarray] = []
        ran = 0
        for i, frame in enumerate(frames):
            data = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, CAMERA_JPEG_QUALITY])[1].tobytes()
            small = decode_small(data, read_header(data, len(data), frame.size))
            if similar is not None and shown and similar.should_skip(small):
                shown.append(shown[-1])
                continue
            image = np.array(decode_jpeg(data))
            request = CheckedRequest(
                sequence, ran == 0, i == len(frames) - 1, GenerationRequest(image, params, quality)
            )
            (outcome,) = self.service.handle([request])
            if isinstance(outcome, Exception):
                raise outcome
            shown.append(decode_jpeg(outcome))
            ran += 1
        self.service.handle([CheckedRequest(sequence, False, True, GenerationRequest(None, params, quality))])
        return shown, ran


def measure(cameras: list[Camera], still: list[np.ndarray], pan: list[np.ndarray], rounds: int) -> list[Row]:
    white = COLOURS["white"]
    seconds: dict[str, list[float]] = {c.option.name: [] for c in cameras}
    results: dict[str, tuple[list[np.ndarray], int, list[np.ndarray], int]] = {}
    for round_ in range(1 + rounds):  # round 0 warms every service up (first calls allocate)
        print(f"round {round_} of {rounds}" + (" (warm-up, not timed)" if not round_ else ""), flush=True)
        for camera in cameras:
            started = time.perf_counter()
            still_out, still_ran = camera.run(still)
            pan_out, pan_ran = camera.run(pan)
            if round_:
                seconds[camera.option.name].append(time.perf_counter() - started)
            results[camera.option.name] = (still_out, still_ran, pan_out, pan_ran)
    rows = []
    inputs = [centroid_x(f, white) for f in pan]
    for camera in cameras:
        name = camera.option.name
        still_out, still_ran, pan_out, pan_ran = results[name]
        lag, error = best_lag_error(inputs, [centroid_x(f, white) for f in pan_out], MAX_LAG)
        rows.append(
            Row(
                option=name,
                still_flicker=flicker(still_out[WARMUP_FRAMES:]),
                pan_flicker=flicker(pan_out[WARMUP_FRAMES:]),
                fps=(len(still) + len(pan)) / statistics.median(seconds[name]),
                still_model_share=still_ran / len(still),
                pan_model_share=pan_ran / len(pan),
                pan_lag=lag,
                pan_error=error,
            )
        )
    return rows


def print_table(
    rows: list[Row],
    options: tuple[Option, ...],
    still: list[np.ndarray],
    pan: list[np.ndarray],
    say: Callable[[str], None],
) -> None:
    say(f"camera input flicker: still {flicker(still):.2f}, pan {flicker(pan):.2f}")
    say(
        "| option | still flicker | vs its baseline | pan flicker | fps | fps vs its baseline "
        "| model ran on (still / pan) | pan lag (frames) | pan centroid error |"
    )
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    baselines: dict[bool, Row] = {}
    for option, r in zip(options, rows, strict=True):
        base = baselines.setdefault(option.similarity_filter, r)
        say(
            f"| {r.option} | {r.still_flicker:.3f} | {r.still_flicker / base.still_flicker:.2f}x | {r.pan_flicker:.2f} "
            f"| {r.fps:.1f} | {r.fps / base.fps:.2f}x | {r.still_model_share:.0%} / {r.pan_model_share:.0%} "
            f"| {r.pan_lag} | {r.pan_error:.4f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="the configuration (default: config.yaml)")
    parser.add_argument("--frames", type=int, default=48, help="camera frames per input (8-1000)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; fps is their median (1-20)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if not 8 <= args.frames <= 1000 or not 1 <= args.rounds <= 20:
        parser.error("--frames 8-1000, --rounds 1-20")
    torch.set_num_threads(args.threads)
    config_file = (args.config or config_path()).resolve()
    settings = load_settings(config_file)
    size = settings.pipeline.width
    if settings.pipeline.height != size:
        parser.error("the scenes are square: pipeline.width and height must match")
    print(f"{settings.model.model_id}, {size}x{size}, {args.frames} frames per input, {args.rounds} rounds")
    cameras = []
    for option in OPTIONS:
        print(f"loading: {option.name}", flush=True)
        cameras.append(Camera(settings, config_file, option))
    still, pan = still_scene(args.frames, size), slow_pan(args.frames, size)
    rows = measure(cameras, still, pan, args.rounds)
    print_table(rows, OPTIONS, still, pan, print)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    return 0
