"""Realtime's temporal options with the committed demo model, in process: off is today's pipeline,
input smoothing lowers the still scene's flicker and still follows a pan, output feedback changes
the picture from the second frame on, and batched streams filter as solo streams do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sdbackend.generation import ImageGenerator
from sdbackend.loading import load_pipeline
from sdbackend.requests import GenerationParams
from sdbackend.temporal_filter import TemporalFilter
from sdconfig import load_settings
from sdmodels.evaluation import best_lag_error, centroid_x
from sdmodels.flicker import SCENE_PROMPT, flicker, slow_pan, still_scene
from sdmodels.scenes import COLOURS

CONFIG = Path(__file__).parents[1] / "config.test.yaml"
SIZE = 128
FRAMES = 16
WARMUP = 4


@pytest.fixture(scope="module")
def generator() -> ImageGenerator:
    settings = load_settings(CONFIG)
    pipe = load_pipeline(settings, CONFIG, True, torch.device("cpu"), torch.float32)
    return ImageGenerator(pipe, settings, settings.realtime.pipeline)


def params(generator: ImageGenerator, seed: int = 2) -> GenerationParams:
    settings = load_settings(CONFIG)
    variant = settings.realtime.pipeline
    return GenerationParams(
        ((SCENE_PROMPT, 1.0),),
        "low quality, blurry",
        ((seed, 1.0),),
        variant.guidance_scale,
        variant.delta,
        variant.t_index_list,
    )


def outputs(generator: ImageGenerator, temporal: TemporalFilter, frames: list[np.ndarray]) -> list[np.ndarray]:
    generator.temporal = temporal
    stream = generator.new_stream(params(generator), denoising_batch=True)
    return [generator.run(stream, frame) for frame in frames]


def test_options_off_are_the_plain_streamdiffusion_pipeline(generator: ImageGenerator) -> None:
    frames = still_scene(6, SIZE)
    stream = generator.new_stream(params(generator), denoising_batch=True)
    with torch.inference_mode():
        plain = []
        for frame in frames:
            pixels = generator._to_tensor(frame)
            plain.append(generator._to_image(stream.decode_image(stream.predict_x0_batch(stream.encode_image(pixels)))))
    filtered = outputs(generator, TemporalFilter(0.0, 0.0), frames)
    assert all(np.array_equal(a, b) for a, b in zip(plain, filtered, strict=True))


def test_input_smoothing_lowers_still_scene_flicker_and_still_follows_a_pan(generator: ImageGenerator) -> None:
    still = still_scene(FRAMES, SIZE)
    plain = flicker(outputs(generator, TemporalFilter(), still)[WARMUP:])
    smoothed = flicker(outputs(generator, TemporalFilter(input_smoothing=0.7), still)[WARMUP:])
    print(f"still-scene flicker: off {plain:.4f}, input_smoothing 0.7 {smoothed:.4f}")
    assert smoothed < 0.6 * plain

    pan = slow_pan(FRAMES, SIZE, pixels_per_frame=2.0)
    white = COLOURS["white"]
    shown = outputs(generator, TemporalFilter(input_smoothing=0.7), pan)
    lag, error = best_lag_error([centroid_x(f, white) for f in pan], [centroid_x(f, white) for f in shown], 8)
    print(f"pan with input_smoothing 0.7: lag {lag} frames, centroid error {error:.4f}")
    assert error < 0.03
    travelled = centroid_x(shown[-1], white) - centroid_x(shown[WARMUP + lag], white)
    assert travelled > 0.5 * (FRAMES - WARMUP - lag - 1) * 2.0 / SIZE  # the picture moves with the camera


@pytest.mark.parametrize("temporal", [TemporalFilter(input_smoothing=0.5), TemporalFilter(output_feedback=0.5)])
def test_an_option_starts_from_the_plain_first_frame_and_then_changes_the_picture(
    generator: ImageGenerator, temporal: TemporalFilter
) -> None:
    frames = slow_pan(4, SIZE, pixels_per_frame=3.0)
    plain, filtered = outputs(generator, TemporalFilter(), frames), outputs(generator, temporal, frames)
    assert np.array_equal(plain[0], filtered[0])  # nothing to mix in yet
    assert any(not np.array_equal(a, b) for a, b in zip(plain[1:], filtered[1:], strict=True))


def test_a_new_stream_forgets_the_previous_one(generator: ImageGenerator) -> None:
    temporal = TemporalFilter(input_smoothing=0.5, output_feedback=0.3)
    first = outputs(generator, temporal, still_scene(3, SIZE, seed=5))
    again = outputs(generator, temporal, still_scene(3, SIZE, seed=5))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


@torch.inference_mode()
def test_batched_streams_filter_as_solo_streams(generator: ImageGenerator) -> None:
    generator.temporal = TemporalFilter(input_smoothing=0.5, output_feedback=0.3)
    seeds = [2, 7, 11]
    solo = [generator.new_stream(params(generator, seed), denoising_batch=True) for seed in seeds]
    together = [generator.new_stream(params(generator, seed), denoising_batch=True) for seed in seeds]
    worst = 0
    for t in range(5):
        images = [still_scene(1, SIZE, seed=10 * t + i)[0] for i in range(len(seeds))]
        alone = [generator.run(stream, image) for stream, image in zip(solo, images, strict=True)]
        batched = generator.run_group(together, images)
        worst = max(
            worst, max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(alone, batched, strict=True))
        )
    assert worst <= 1  # float summation order, rounded to 8 bits
