"""Blend math: prompt embeddings (linear or slerp), seeded noise (slerp) and a prompt transition.

Weights come normalised (sdbackend.requests). Several entries are blended by folding pairwise
slerps with the running weight, so a weighted blend of N is one of two at every step and an
entry of weight 1 returns that entry itself (for three or more slerped entries their order
matters a little, as for any folded slerp). Independent Gaussian noises are nearly orthogonal in
thousands of dimensions, so slerp keeps their norm, hence the noise's variance, where a weighted
sum would shrink it (0.5/0.5 halves it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_PARALLEL = 1e-4
"""Below this angle (radians) slerp is a lerp: the two vectors point the same way."""


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, dim: int = -1) -> torch.Tensor:
    """Spherical interpolation of the vectors along `dim`; each vector's norm is lerped."""
    if t <= 0.0:
        return a
    if t >= 1.0:
        return b
    a32, b32 = a.float(), b.float()
    na, nb = a32.norm(dim=dim, keepdim=True), b32.norm(dim=dim, keepdim=True)
    ua, ub = a32 / na.clamp_min(1e-12), b32 / nb.clamp_min(1e-12)
    omega = (ua * ub).sum(dim=dim, keepdim=True).clamp(-1.0, 1.0).acos()
    sin = omega.sin()
    spherical = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / sin.clamp_min(1e-12)
    direction = torch.where(omega < _PARALLEL, (1 - t) * ua + t * ub, spherical)
    return (direction * ((1 - t) * na + t * nb)).to(a.dtype)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    if t <= 0.0:
        return a
    if t >= 1.0:
        return b
    return a + (b - a) * t


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float, method: str) -> torch.Tensor:
    """From `a` (t=0) to `b` (t=1); slerp per token vector (the last dimension)."""
    return slerp(a, b, t) if method == "slerp" else lerp(a, b, t)


def blend(tensors: Sequence[torch.Tensor], weights: Sequence[float], method: str) -> torch.Tensor:
    """The weighted blend of same-shaped tensors; weights are normalised here too."""
    if not tensors or len(tensors) != len(weights):
        raise ValueError(f"{len(tensors)} tensors for {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0.0:
        raise ValueError("blend weights must not all be 0")
    if method == "linear":
        return sum((t * (w / total) for t, w in zip(tensors, weights, strict=True)), torch.zeros_like(tensors[0]))
    result, running = tensors[0], weights[0] / total
    for tensor, weight in zip(tensors[1:], weights[1:], strict=True):
        share = weight / total
        running += share
        result = interpolate(result, tensor, share / running if running > 0 else 1.0, method)
    return result


def seed_noise(seeds: Sequence[tuple[int, float]], shape: Sequence[int]) -> torch.Tensor:
    """Standard normal noise of `shape` from the seeds' CPU generators, blended with slerp (variance kept)."""
    return SeedNoise(seeds).draw(shape)


class SeedNoise:
    """One CPU generator per seed; each draw takes the next noise of every seed and slerps them.

    The whole tensor is one vector, so the blend keeps its norm (the variance of its elements).
    One seed of weight 1 draws exactly what `torch.randn(shape, generator=...)` draws.
    """

    def __init__(self, seeds: Sequence[tuple[int, float]]) -> None:
        if not seeds:
            raise ValueError("at least one seed")
        self.generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed, _ in seeds]
        self.weights = [float(weight) for _, weight in seeds]

    def draw(self, shape: Sequence[int]) -> torch.Tensor:
        noises = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in self.generators]
        if len(noises) == 1:
            return noises[0]
        flat = blend([n.reshape(1, -1) for n in noises], self.weights, "slerp")
        return flat.reshape(tuple(shape))


class PromptTransition:
    """Embeddings moving from `start` to `end` over `frames` frames: frame k of the change gets t = k / frames,
    so the last of them uses `end` exactly."""

    def __init__(self, start: torch.Tensor, end: torch.Tensor, frames: int, method: str) -> None:
        if frames < 1:
            raise ValueError("a transition takes at least one frame")
        if start.shape != end.shape:
            raise ValueError(f"embeddings of shape {tuple(start.shape)} cannot move to {tuple(end.shape)}")
        self.start, self.end, self.frames, self.method = start, end, frames, method
        self.done_frames = 0

    @property
    def finished(self) -> bool:
        return self.done_frames >= self.frames

    def step(self) -> torch.Tensor:
        """The embeddings for the next frame."""
        self.done_frames = min(self.done_frames + 1, self.frames)
        if self.finished:
            return self.end
        return interpolate(self.start, self.end, self.done_frames / self.frames, self.method)
