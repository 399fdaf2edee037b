"""StreamDiffusion's similar-image filter, run in the frontend so a skipped frame costs no Triton call.

The formula is StreamDiffusion's: cosine similarity between the new frame and the last frame that
was processed (pixels scaled to [-1, 1], as the pipeline sees them), then skip with probability
`max(0, 1 - (1 - sim) / (1 - threshold))`. Two deliberate differences from its code: the frame is
a small grayscale decode (a still camera stays a still camera at 64 pixels, and it is much
cheaper than a full-size tensor), and the skip run is capped exactly at `max_skip_frame` (the
original lets one more through and never resets the count after a processed frame).
"""

from __future__ import annotations

import random

import numpy as np

_EPS = 1e-6


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two images' pixels scaled to [-1, 1]; 0.0 if their shapes differ."""
    if a.shape != b.shape:
        return 0.0
    x = a.reshape(-1).astype(np.float32) / 127.5 - 1.0
    y = b.reshape(-1).astype(np.float32) / 127.5 - 1.0
    norms = max(float(np.linalg.norm(x)), _EPS) * max(float(np.linalg.norm(y)), _EPS)
    return float(np.dot(x, y)) / norms


def skip_probability(similarity: float, threshold: float) -> float:
    """StreamDiffusion's rule: 0 at or below the threshold's distance, 1 for an identical frame."""
    if threshold >= 1.0:
        return 0.0
    return max(0.0, 1.0 - (1.0 - similarity) / (1.0 - threshold))


class SimilarityFilter:
    """Decides, frame by frame, whether a frame is close enough to the last processed one to skip."""

    def __init__(self, threshold: float, max_skip_frame: int, rng: random.Random | None = None) -> None:
        self.threshold = threshold
        self.max_skip_frame = max_skip_frame
        self._rng = rng or random.Random()
        self._last_processed: np.ndarray | None = None
        self._skips_in_a_row = 0

    def should_skip(self, small: np.ndarray) -> bool:
        """True to skip this frame; False means it will be processed and becomes the reference."""
        if self._last_processed is not None and self._skips_in_a_row < self.max_skip_frame:
            sim = cosine_similarity(self._last_processed, small)
            if self._rng.random() < skip_probability(sim, self.threshold):
                self._skips_in_a_row += 1
                return True
        self._last_processed = small
        self._skips_in_a_row = 0
        return False

    def reset(self) -> None:
        """Forget the reference, e.g. when the model's sequence restarts and has no state to reuse."""
        self._last_processed = None
        self._skips_in_a_row = 0
