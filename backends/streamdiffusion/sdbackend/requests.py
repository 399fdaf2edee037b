"""Turn one Triton request's tensors into a checked GenerationRequest, or a RequestError naming the problem.

Triton already refuses a wrong datatype or a wrong fixed dimension; what it cannot know
(ranges, the step list, prompt length in tokens, the image itself) is checked here.
The tensors arrive through a getter so this module needs neither Triton nor torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sdbackend.errors import RequestError
from sdbackend.image_codec import decode_image
from sdconfig import Mode, Settings
from sdcontract.tensors import (
    BLEND_TENSORS,
    IMAGE_INPUT,
    INTERPOLATION_METHODS,
    JPEG_QUALITY_INPUT,
    MAX_DENOISING_STEPS,
    PARAMETER_TENSORS,
    SEED_MAX,
    BlendTensors,
)

TensorGetter = Callable[[str], "np.ndarray | None"]
TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class GenerationParams:
    """Everything but the image that decides the output; equal params mean a reusable prepared stream."""

    prompts: tuple[tuple[str, float], ...]
    """(prompt, weight) with weights summing to 1 and none 0: one entry where no blend was asked."""
    negative_prompt: str
    seeds: tuple[tuple[int, float], ...]
    """(seed, weight) likewise; the first seed also seeds the stream's own generator."""
    guidance_scale: float
    delta: float
    t_index_list: tuple[int, ...]
    interpolation: str = "linear"
    """How `prompts` are blended: linear or slerp."""

    @property
    def prompt(self) -> str:
        return self.prompts[0][0]

    @property
    def seed(self) -> int:
        return self.seeds[0][0]


@dataclass(frozen=True)
class GenerationRequest:
    image: np.ndarray | None
    """RGB uint8 [height, width, 3]; None only for a request that just ends its sequence."""
    params: GenerationParams
    jpeg_quality: int
    transition_frames: int = 0
    """Realtime: frames over which a change of prompt embedding arrives; 0 jumps."""


@dataclass(frozen=True)
class CheckedRequest:
    """One Triton request as the services see it: its sequence flags and its checked inputs or the error.

    Canvas requests have no sequence (correlation id 0, no flags); the services read what they need.
    """

    correlation_id: int
    start: bool
    end: bool
    checked: GenerationRequest | RequestError

    @property
    def request(self) -> GenerationRequest:
        assert isinstance(self.checked, GenerationRequest)
        return self.checked

    @property
    def ok(self) -> bool:
        return isinstance(self.checked, GenerationRequest)


@dataclass(frozen=True)
class RequestLimits:
    """The facts a request is checked against, taken once from the settings."""

    width: int
    height: int
    max_image_bytes: int
    max_image_pixels: int
    max_image_scans: int
    max_prompt_tokens: int
    guidance_scale_max: float
    last_step: int
    defaults: GenerationParams
    default_jpeg_quality: int
    max_blend_prompts: int = 4
    max_blend_seeds: int = 4
    blend_weight_max: float = 1.0
    default_transition_frames: int = 0
    max_transition_frames: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, mode: Mode, max_prompt_tokens: int) -> RequestLimits:
        pipe, variant = settings.pipeline, settings.variant(mode)
        return cls(
            width=pipe.width,
            height=pipe.height,
            max_image_bytes=pipe.max_image_bytes,
            max_image_pixels=pipe.max_image_pixels,
            max_image_scans=pipe.max_image_scans,
            max_prompt_tokens=max_prompt_tokens,
            guidance_scale_max=pipe.guidance_scale_max,
            last_step=pipe.num_inference_steps - 1,
            defaults=GenerationParams(
                prompts=((pipe.default_prompt, 1.0),),
                negative_prompt=pipe.default_negative_prompt,
                seeds=((pipe.default_seed, 1.0),),
                guidance_scale=variant.guidance_scale,
                delta=variant.delta,
                t_index_list=tuple(variant.t_index_list),
                interpolation=pipe.prompt_interpolation,
            ),
            default_jpeg_quality=settings.performance(mode).jpeg_quality,
            max_blend_prompts=pipe.max_blend_prompts,
            max_blend_seeds=pipe.max_blend_seeds,
            blend_weight_max=pipe.blend_weight_max,
            default_transition_frames=settings.realtime.pipeline.prompt_transition_frames
            if variant.max_transition_frames() > 0
            else 0,
            max_transition_frames=variant.max_transition_frames(),
        )


def _scalar(get: TensorGetter, name: str) -> np.generic | bytes | None:
    tensor = get(name)
    if tensor is None:
        return None
    if tensor.size != 1:
        raise RequestError(f"{name} must hold one value, got shape {list(tensor.shape)}")
    return tensor.reshape(-1)[0]


def _text(get: TensorGetter, name: str, default: str, count_tokens: TokenCounter, limit: int) -> str:
    value = _scalar(get, name)
    if value is None:
        return default
    return _checked_text(value, name, count_tokens, limit)


def _checked_text(value: object, name: str, count_tokens: TokenCounter, limit: int) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"{name} is not valid UTF-8") from exc
    tokens = count_tokens(text)
    if tokens > limit:
        raise RequestError(f"{name} is {tokens} tokens long; the limit is {limit}")
    return text


def _number(get: TensorGetter, name: str, default: float, low: float, high: float) -> float:
    value = _scalar(get, name)
    if value is None:
        return default
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise RequestError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _integer(get: TensorGetter, name: str, default: int, low: int, high: int) -> int:
    value = _scalar(get, name)
    if value is None:
        return default
    number = int(value)
    if not low <= number <= high:
        raise RequestError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _steps(get: TensorGetter, default: tuple[int, ...], last_step: int) -> tuple[int, ...]:
    name = PARAMETER_TENSORS["t_index_list"].name
    tensor = get(name)
    if tensor is None:
        return default
    steps = tuple(int(v) for v in tensor.reshape(-1))
    if not 1 <= len(steps) <= MAX_DENOISING_STEPS:
        raise RequestError(f"{name} must hold 1 to {MAX_DENOISING_STEPS} steps, got {len(steps)}")
    if any(not 0 <= s <= last_step for s in steps):
        raise RequestError(f"{name} values must be between 0 and {last_step}, got {list(steps)}")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise RequestError(f"{name} must be strictly increasing, got {list(steps)}")
    return steps


def _weighted(get: TensorGetter, blend: BlendTensors, max_items: int, weight_max: float) -> list[tuple[object, float]]:
    """The (value, weight) pairs of a blend, weights normalised to sum 1 and zero weights dropped; [] where absent."""
    values, weights = get(blend.values.name), get(blend.weights.name)
    if values is None or values.size == 0:
        if weights is not None and weights.size:
            raise RequestError(f"{blend.weights.name} was given without {blend.values.name}")
        return []
    if weights is None:
        raise RequestError(f"{blend.weights.name} is missing: give one weight per {blend.values.name} entry")
    items, numbers = list(values.reshape(-1)), [float(w) for w in weights.reshape(-1)]
    if len(items) > max_items:
        raise RequestError(f"{blend.values.name} holds {len(items)} entries; at most {max_items} may be blended")
    if len(numbers) != len(items):
        raise RequestError(
            f"{blend.weights.name} holds {len(numbers)} weights for {len(items)} {blend.values.name} entries"
        )
    bad = [w for w in numbers if not math.isfinite(w) or not 0.0 <= w <= weight_max]
    if bad:
        raise RequestError(f"{blend.weights.name} values must be between 0 and {weight_max}, got {bad[0]}")
    total = sum(numbers)
    if total <= 0.0:
        raise RequestError(f"{blend.weights.name} must not all be 0: give at least one entry a weight")
    return [(item, w / total) for item, w in zip(items, numbers, strict=True) if w > 0.0]


def _prompts(
    get: TensorGetter, limits: RequestLimits, count_tokens: TokenCounter, default: str
) -> tuple[tuple[str, float], ...]:
    blend = BLEND_TENSORS["prompt_list"]
    pairs = _weighted(get, blend, limits.max_blend_prompts, limits.blend_weight_max)
    if not pairs:
        prompt = _text(get, PARAMETER_TENSORS["prompt"].name, default, count_tokens, limits.max_prompt_tokens)
        return ((prompt, 1.0),)
    names = [f"{blend.values.name}[{i}]" for i in range(len(pairs))]
    return tuple(
        (_checked_text(value, name, count_tokens, limits.max_prompt_tokens), weight)
        for name, (value, weight) in zip(names, pairs, strict=True)
    )


def _seeds(get: TensorGetter, limits: RequestLimits, default: int) -> tuple[tuple[int, float], ...]:
    blend = BLEND_TENSORS["seed_list"]
    pairs = _weighted(get, blend, limits.max_blend_seeds, limits.blend_weight_max)
    if not pairs:
        return ((_integer(get, PARAMETER_TENSORS["seed"].name, default, 0, SEED_MAX), 1.0),)
    seeds = tuple((int(value), weight) for value, weight in pairs)  # type: ignore[call-overload]
    wrong = [seed for seed, _ in seeds if not 0 <= seed <= SEED_MAX]
    if wrong:
        raise RequestError(f"{blend.values.name} values must be between 0 and {SEED_MAX}, got {wrong[0]}")
    return seeds


def _interpolation(get: TensorGetter, default: str) -> str:
    name = PARAMETER_TENSORS["prompt_interpolation_method"].name
    value = _scalar(get, name)
    if value is None:
        return default
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if text not in INTERPOLATION_METHODS:
        raise RequestError(f"{name} must be one of {', '.join(INTERPOLATION_METHODS)}, got {text[:40]!r}")
    return text


def _image_bytes(get: TensorGetter) -> bytes:
    value = _scalar(get, IMAGE_INPUT)
    if value is None:
        raise RequestError(f"{IMAGE_INPUT} is missing")
    if not isinstance(value, bytes):
        raise RequestError(f"{IMAGE_INPUT} must be BYTES holding an encoded image")
    return value


def parse_request(
    get: TensorGetter, limits: RequestLimits, count_tokens: TokenCounter, *, ending: bool = False
) -> GenerationRequest:
    """Check every input; `ending` allows an empty IMAGE, which only ends the sequence."""
    d, tensor = limits.defaults, {key: spec.name for key, spec in PARAMETER_TENSORS.items()}
    params = GenerationParams(
        prompts=_prompts(get, limits, count_tokens, d.prompt),
        negative_prompt=_text(
            get, tensor["negative_prompt"], d.negative_prompt, count_tokens, limits.max_prompt_tokens
        ),
        seeds=_seeds(get, limits, d.seed),
        guidance_scale=_number(get, tensor["guidance_scale"], d.guidance_scale, 0.0, limits.guidance_scale_max),
        delta=_number(get, tensor["delta"], d.delta, 0.0, 5.0),
        t_index_list=_steps(get, d.t_index_list, limits.last_step),
        interpolation=_interpolation(get, d.interpolation),
    )
    quality = _integer(get, JPEG_QUALITY_INPUT, limits.default_jpeg_quality, 1, 100)
    transition = _integer(
        get, tensor["prompt_transition_frames"], limits.default_transition_frames, 0, limits.max_transition_frames
    )
    data = _image_bytes(get)
    if ending and not data:
        return GenerationRequest(image=None, params=params, jpeg_quality=quality, transition_frames=transition)
    image = decode_image(
        data, limits.width, limits.height, limits.max_image_bytes, limits.max_image_pixels, limits.max_image_scans
    )
    return GenerationRequest(image=image, params=params, jpeg_quality=quality, transition_frames=transition)
