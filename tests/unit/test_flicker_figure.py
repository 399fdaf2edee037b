"""The flicker figure and the camera inputs it is measured on."""

from __future__ import annotations

import numpy as np
import pytest

from sdmodels.evaluation import centroid_x
from sdmodels.flicker import CAMERA_NOISE_SIGMA, flicker, slow_pan, still_scene
from sdmodels.scenes import COLOURS


def test_flicker_is_the_mean_absolute_difference_of_consecutive_frames() -> None:
    black, grey = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 10, np.uint8)
    assert flicker([black, black, black]) == 0.0
    assert flicker([black, grey, black]) == 10.0
    assert flicker([black, grey, grey]) == 5.0  # one change of 10 over two steps


def test_flicker_needs_two_frames() -> None:
    with pytest.raises(ValueError, match="at least two frames"):
        flicker([np.zeros((2, 2, 3), np.uint8)])


def test_the_still_scene_differs_only_by_camera_noise() -> None:
    frames = still_scene(8, 64)
    # two independent Gaussian draws differ by sigma * sqrt(2) * sqrt(2 / pi) on average (before clipping)
    assert flicker(frames) == pytest.approx(CAMERA_NOISE_SIGMA * 2 / np.sqrt(np.pi), rel=0.25)
    assert still_scene(3, 64)[2].tobytes() == still_scene(3, 64)[2].tobytes()  # reproducible


def test_the_pan_moves_its_shapes_right_a_pixel_a_frame() -> None:
    frames = slow_pan(20, 128)
    xs = [centroid_x(f, COLOURS["white"]) for f in frames]
    assert xs[-1] - xs[0] == pytest.approx(19 / 128, abs=0.01)
