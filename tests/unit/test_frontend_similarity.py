"""StreamDiffusion's skip formula and the exact cap on skips in a row."""

import random

import numpy as np
import pytest

from frontends.similarity import SimilarityFilter, cosine_similarity, skip_probability


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)


def test_cosine_similarity_of_identical_and_opposite_frames():
    a = frame(1)
    assert cosine_similarity(a, a) == pytest.approx(1.0)
    assert cosine_similarity(a, 255 - a) == pytest.approx(-1.0, abs=1e-3)
    assert cosine_similarity(a, frame(2)) == pytest.approx(0.0, abs=0.05)
    assert cosine_similarity(a, a[:32]) == 0.0


@pytest.mark.parametrize(
    ("sim", "threshold", "expected"),
    [
        (1.0, 0.98, 1.0),
        (0.99, 0.98, 0.5),
        (0.98, 0.98, 0.0),
        (0.5, 0.98, 0.0),
        (0.995, 0.99, 0.5),
        (0.999, 1.0, 0.0),
    ],
)
def test_skip_probability_formula(sim, threshold, expected):
    assert skip_probability(sim, threshold) == pytest.approx(expected)


def test_first_frame_is_always_processed():
    assert SimilarityFilter(0.98, 10, random.Random(0)).should_skip(frame(1)) is False


@pytest.mark.parametrize("max_skip", [0, 1, 3, 10])
def test_static_scene_skips_exactly_max_skip_in_a_row(max_skip):
    filt = SimilarityFilter(0.98, max_skip, random.Random(0))
    still = frame(1)
    decisions = [filt.should_skip(still) for _ in range(1 + 4 * (max_skip + 1))]
    processed = [i for i, skipped in enumerate(decisions) if not skipped]
    assert processed == list(range(0, len(decisions), max_skip + 1))


def test_changing_scene_is_always_processed():
    filt = SimilarityFilter(0.98, 10, random.Random(0))
    assert not any(filt.should_skip(frame(i)) for i in range(50))


def test_comparison_is_against_the_last_processed_frame():
    """A slow drift whose single steps look similar is still caught once it adds up."""
    filt = SimilarityFilter(0.9, 1000, random.Random(0))
    base = frame(1).astype(np.float32)
    target = frame(2).astype(np.float32)
    results = []
    for step in range(41):
        mix = (base * (1 - step / 40) + target * (step / 40)).astype(np.uint8)
        results.append(filt.should_skip(mix))
    assert results[0] is False
    assert not all(results[1:])  # the drift from the reference forces processing at some point


def test_probabilistic_skipping_follows_the_formula():
    """At a similarity giving p = 0.5, about half of the frames are skipped (seeded, so exact)."""
    rng = random.Random(42)
    filt = SimilarityFilter(0.98, 10**9, rng)
    ref = frame(1)
    # a perturbation with a similarity of about 0.99
    noisy = np.clip(ref.astype(np.int16) + np.random.default_rng(3).integers(-19, 20, ref.shape), 0, 255).astype(
        np.uint8
    )
    p = skip_probability(cosine_similarity(ref, noisy), 0.98)
    assert 0.2 < p < 0.8
    skipped = 0
    for _ in range(2000):
        filt.reset()
        filt.should_skip(ref)
        skipped += filt.should_skip(noisy)
    assert skipped / 2000 == pytest.approx(p, abs=0.05)
