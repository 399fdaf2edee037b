"""Temporal stability of realtime output: the flicker figure and the two camera inputs it is measured on.

Flicker is the mean absolute difference between consecutive output frames, in 0-255 units per
channel: 0 for a frozen picture. A still camera only adds sensor noise, so any flicker beyond the
input's own is the model's; a slow pan must still show up as movement (sdmodels.evaluation's
centroid figure), or a stable picture was bought by ignoring the camera.
"""

from __future__ import annotations

import itertools

import numpy as np

from sdmodels.scenes import Shape, render

CAMERA_NOISE_SIGMA = 3.0
"""Sensor noise of the synthetic camera, 0-255 units: a webcam in good light."""

SCENE_PROMPT = "a blue circle and a red square on a white background"
SCENE_SHAPES = (Shape("circle", "blue", (0.36, 0.5), 0.16), Shape("square", "red", (0.62, 0.42), 0.1))


def flicker(frames: list[np.ndarray]) -> float:
    """Mean absolute difference of consecutive frames (uint8 RGB), 0-255 units; needs two frames."""
    if len(frames) < 2:
        raise ValueError(f"flicker needs at least two frames, got {len(frames)}")
    return float(
        np.mean([np.mean(np.abs(b.astype(np.int16) - a.astype(np.int16))) for a, b in itertools.pairwise(frames)])
    )


def with_camera_noise(image: np.ndarray, rng: np.random.Generator, sigma: float = CAMERA_NOISE_SIGMA) -> np.ndarray:
    noise = rng.normal(0.0, sigma, image.shape)
    return np.clip(image.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)


def _drawing(size: int, shift: float) -> np.ndarray:
    shapes = tuple(Shape(s.kind, s.colour, (s.centre[0] + shift, s.centre[1]), s.size) for s in SCENE_SHAPES)
    return np.asarray(render(size, ("white",), shapes, seed=0).image)


def still_scene(frames: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """One demo-style drawing seen by a camera that does not move: per-frame sensor noise only."""
    rng = np.random.default_rng(seed)
    drawing = _drawing(size, 0.0)
    return [with_camera_noise(drawing, rng) for _ in range(frames)]


def slow_pan(frames: int, size: int, pixels_per_frame: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """The same drawing drifting right by `pixels_per_frame` a frame (a slow pan), with sensor noise."""
    rng = np.random.default_rng(seed)
    return [with_camera_noise(_drawing(size, t * pixels_per_frame / size), rng) for t in range(frames)]
