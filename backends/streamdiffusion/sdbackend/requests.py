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
from sdcontract.tensors import IMAGE_INPUT, JPEG_QUALITY_INPUT, MAX_DENOISING_STEPS, PARAMETER_TENSORS, SEED_MAX

TensorGetter = Callable[[str], "np.ndarray | None"]
TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class GenerationParams:
    """Everything but the image that decides the output; equal params mean a reusable prepared stream."""

    prompt: str
    negative_prompt: str
    seed: int
    guidance_scale: float
    delta: float
    t_index_list: tuple[int, ...]


@dataclass(frozen=True)
class GenerationRequest:
    image: np.ndarray | None
    """RGB uint8 [height, width, 3]; None only for a request that just ends its sequence."""
    params: GenerationParams
    jpeg_quality: int


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
                prompt=pipe.default_prompt,
                negative_prompt=pipe.default_negative_prompt,
                seed=pipe.default_seed,
                guidance_scale=variant.guidance_scale,
                delta=variant.delta,
                t_index_list=tuple(variant.t_index_list),
            ),
            default_jpeg_quality=settings.performance(mode).jpeg_quality,
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
        prompt=_text(get, tensor["prompt"], d.prompt, count_tokens, limits.max_prompt_tokens),
        negative_prompt=_text(
            get, tensor["negative_prompt"], d.negative_prompt, count_tokens, limits.max_prompt_tokens
        ),
        seed=_integer(get, tensor["seed"], d.seed, 0, SEED_MAX),
        guidance_scale=_number(get, tensor["guidance_scale"], d.guidance_scale, 0.0, limits.guidance_scale_max),
        delta=_number(get, tensor["delta"], d.delta, 0.0, 5.0),
        t_index_list=_steps(get, d.t_index_list, limits.last_step),
    )
    quality = _integer(get, JPEG_QUALITY_INPUT, limits.default_jpeg_quality, 1, 100)
    data = _image_bytes(get)
    if ending and not data:
        return GenerationRequest(image=None, params=params, jpeg_quality=quality)
    image = decode_image(
        data, limits.width, limits.height, limits.max_image_bytes, limits.max_image_pixels, limits.max_image_scans
    )
    return GenerationRequest(image=image, params=params, jpeg_quality=quality)
