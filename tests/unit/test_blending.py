"""Blend math on its own: slerp and linear blends, normalised weights, noise variance, transitions, the cache."""

from __future__ import annotations

import math

import pytest
import torch

from sdbackend.blending import PromptTransition, SeedNoise, blend, interpolate, seed_noise, slerp
from sdbackend.prompt_cache import PromptCache


def unit(*values: float) -> torch.Tensor:
    return torch.tensor([values], dtype=torch.float32)


def test_slerp_moves_along_the_circle_between_orthogonal_vectors() -> None:
    a, b = unit(1.0, 0.0), unit(0.0, 1.0)
    half = slerp(a, b, 0.5)
    assert torch.allclose(half, unit(math.sqrt(0.5), math.sqrt(0.5)), atol=1e-6)
    assert torch.allclose(half.norm(), torch.tensor(1.0), atol=1e-6)
    assert torch.allclose(slerp(a, b, 1 / 3), unit(math.cos(math.pi / 6), math.sin(math.pi / 6)), atol=1e-6)


def test_slerp_ends_are_the_inputs_and_parallel_vectors_lerp() -> None:
    a, b = torch.randn(2, 5), torch.randn(2, 5)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a, atol=1e-5)


def test_slerp_works_per_token_vector_and_lerps_the_norms() -> None:
    a = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
    b = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    half = slerp(a, b, 0.5)
    assert torch.allclose(half.norm(dim=-1), torch.tensor([[2.0, 1.0]]), atol=1e-6)


def test_linear_blend_is_the_weighted_mean_with_weights_normalised() -> None:
    a, b = torch.full((1, 3), 2.0), torch.full((1, 3), 6.0)
    assert torch.allclose(blend([a, b], [1.0, 3.0], "linear"), torch.full((1, 3), 5.0))
    assert torch.allclose(blend([a, b], [0.25, 0.75], "linear"), torch.full((1, 3), 5.0))


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_a_weight_of_one_returns_that_entry(method: str) -> None:
    a, b, c = torch.randn(1, 4, 8), torch.randn(1, 4, 8), torch.randn(1, 4, 8)
    assert torch.allclose(blend([a, b, c], [0.0, 1.0, 0.0], method), b, atol=1e-6)
    assert torch.allclose(blend([a], [0.3], method), a)


def test_slerp_blends_of_orthogonal_unit_vectors_stay_on_the_sphere() -> None:
    e = torch.eye(3).unsqueeze(0)  # three orthogonal unit vectors as tokens of one "embedding"
    vectors = [e[:, i : i + 1] for i in range(3)]
    two = blend(vectors[:2], [1, 1], "slerp")
    assert torch.allclose(two, blend(vectors[1::-1], [1, 1], "slerp"), atol=1e-6)  # two: symmetric
    for weights in ([1, 1, 1], [0.6, 0.3, 0.1]):
        mixed = blend(vectors, weights, "slerp")
        assert torch.allclose(mixed.norm(), torch.tensor(1.0), atol=1e-5)
        assert (mixed > 0).all()
    assert blend(vectors, [1, 1, 1], "linear").norm().item() < 0.6  # the weighted sum shrinks: 1/sqrt(3)


def test_blend_refuses_zero_weights_and_mismatched_lists() -> None:
    with pytest.raises(ValueError, match="all be 0"):
        blend([torch.ones(1)], [0.0], "linear")
    with pytest.raises(ValueError, match="2 tensors for 1 weights"):
        blend([torch.ones(1), torch.ones(1)], [1.0], "slerp")


def test_slerped_noise_keeps_its_variance_where_a_weighted_sum_halves_it() -> None:
    shape = (1, 4, 64, 64)
    blended = seed_noise([(1, 0.5), (2, 0.5)], shape)
    summed = blend([seed_noise([(1, 1.0)], shape), seed_noise([(2, 1.0)], shape)], [0.5, 0.5], "linear")
    assert blended.shape == shape
    assert abs(blended.var().item() - 1.0) < 0.05
    assert abs(summed.var().item() - 0.5) < 0.05
    skewed = seed_noise([(1, 0.8), (2, 0.1), (3, 0.1)], shape)
    assert abs(skewed.var().item() - 1.0) < 0.05


def test_one_seed_draws_what_torch_draws_and_blends_are_reproducible() -> None:
    shape = (2, 4, 8, 8)
    assert torch.equal(seed_noise([(7, 1.0)], shape), torch.randn(shape, generator=torch.Generator().manual_seed(7)))
    a, b = SeedNoise([(1, 0.3), (2, 0.7)]), SeedNoise([(1, 0.3), (2, 0.7)])
    assert torch.equal(a.draw(shape), b.draw(shape)) and torch.equal(a.draw(shape), b.draw(shape))
    assert not torch.equal(SeedNoise([(1, 0.3), (2, 0.7)]).draw(shape), SeedNoise([(1, 0.7), (2, 0.3)]).draw(shape))


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_a_transition_reaches_the_end_in_exactly_its_frames(method: str) -> None:
    start, end = torch.randn(2, 77, 16), torch.randn(2, 77, 16)
    transition = PromptTransition(start, end, 4, method)
    steps = [transition.step() for _ in range(4)]
    for k, step in enumerate(steps[:3], start=1):
        assert torch.allclose(step, interpolate(start, end, k / 4, method), atol=1e-6)
        assert not torch.allclose(step, end, atol=1e-3)
    assert torch.equal(steps[3], end) and transition.finished
    assert torch.equal(transition.step(), end)
    distances = [(step - end).norm().item() for step in steps]
    assert distances == sorted(distances, reverse=True)


def test_a_transition_needs_a_frame_and_equal_shapes() -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        PromptTransition(torch.zeros(1, 2), torch.zeros(1, 2), 0, "linear")
    with pytest.raises(ValueError, match="cannot move"):
        PromptTransition(torch.zeros(1, 2), torch.zeros(2, 2), 3, "linear")


def test_the_prompt_cache_encodes_each_text_once_and_forgets_the_least_recent() -> None:
    encoded: list[str] = []

    def encode(text: str) -> torch.Tensor:
        encoded.append(text)
        return torch.full((1, 2), float(len(text)))

    cache = PromptCache(encode, capacity=2)
    for _ in range(3):
        cache.get("red")
        cache.get("blue")
    assert encoded == ["red", "blue"] and cache.encoder_calls == 2
    cache.get("red")  # most recent now: "blue" goes next
    cache.get("green")
    assert len(cache) == 2
    cache.get("red")
    cache.get("blue")
    assert encoded == ["red", "blue", "green", "blue"] and cache.encoder_calls == 4
