"""Several sessions' streams through one VAE encode, shared UNet calls and one VAE decode.

Every session owns a StreamDiffusion object (its prompt, noise, generator and, for realtime, its
in-flight latents). Running them one by one leaves the GPU mostly idle at batch 2; stacking their
rows into one UNet call is what makes many sessions cheap. Only the batched calls are done here:
each stream's own StreamDiffusion code still does its guidance and scheduler arithmetic, fed with
its rows of the batched results, so the output of a stream is the one it would produce alone (up
to floating-point summation order).

- `advance_streams` (realtime): one frame per stream with the denoising batch
  (`use_denoising_batch=True`): one UNet call covers every step of every stream.
- `denoise_drawings` (canvas): every step on each stream's own image without the denoising batch:
  one UNet call per step covers that step of every stream.

Streams use `frame_buffer_size=1` and share one pipeline (the same UNet and VAE objects).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from diffusers.models.autoencoder_tiny import AutoencoderTinyOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.vae import DiagonalGaussianDistribution
from streamdiffusion import StreamDiffusion

from sdbackend.blending import SeedNoise
from sdbackend.temporal_filter import NO_FILTER, TemporalFilter

SeedWeights = int | Sequence[tuple[int, float]]
"""A drawing's noise: one seed, or (seed, weight) pairs whose noises are slerped."""


class _Replay:
    """Stands in for the UNet or the VAE inside one stream's StreamDiffusion code, answering with that
    stream's rows of a result computed once for all streams."""

    def __init__(self, original: Any, answer: Any) -> None:
        self._original = original
        self._answer = answer

    def __getattr__(self, name: str) -> Any:  # config, dtype, device of the real module
        if name == "_original":
            raise AttributeError(name)
        return getattr(self._original, name)

    def __call__(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor]:
        if sample.shape != self._answer.shape:
            raise RuntimeError(
                f"stream asked the UNet for {tuple(sample.shape)}, batched rows are {tuple(self._answer.shape)}"
            )
        return (self._answer,)

    def encode(self, images: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return self._answer


@contextmanager
def _replaying(stream: StreamDiffusion, module: Literal["unet", "vae"], answer: Any) -> Iterator[None]:
    """Within the block the stream's UNet or VAE answers with `answer` instead of computing."""
    original = getattr(stream, module)
    setattr(stream, module, _Replay(original, answer))
    try:
        yield
    finally:
        setattr(stream, module, original)


UNetInputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(sample [R,4,h,w], timesteps [R], encoder_hidden_states [E,77,D]) of one stream's UNet call."""


def unet_inputs(stream: StreamDiffusion, x_t_latent: torch.Tensor) -> UNetInputs:
    """What `stream.predict_x0_batch(x_t_latent)` hands its UNet with the denoising batch (realtime).

    Mirrors StreamDiffusion 0.1.1's predict_x0_batch and unet_step: the new frame's latent goes in
    front of the in-flight latents, then the guidance rows. Reads the stream, changes nothing.
    """
    sample = x_t_latent
    if stream.denoising_steps_num > 1:
        sample = torch.cat((x_t_latent, stream.x_t_latent_buffer), dim=0)
    return _with_guidance_rows(stream, sample, stream.sub_timesteps_tensor)


def _step_timesteps(stream: StreamDiffusion, idx: int) -> torch.Tensor:
    """The timestep of step `idx` as predict_x0_batch passes it without the denoising batch: [1]."""
    return stream.sub_timesteps_tensor[idx].view(1).repeat(stream.frame_bff_size)


def _with_guidance_rows(stream: StreamDiffusion, sample: torch.Tensor, timesteps: torch.Tensor) -> UNetInputs:
    """Guidance "initialize" adds one unconditional row in front, "full" doubles the rows (as unet_step does)."""
    if stream.guidance_scale > 1.0 and stream.cfg_type == "initialize":
        sample = torch.cat([sample[0:1], sample], dim=0)
        timesteps = torch.cat([timesteps[0:1], timesteps], dim=0)
    elif stream.guidance_scale > 1.0 and stream.cfg_type == "full":
        sample = torch.cat([sample, sample], dim=0)
        timesteps = torch.cat([timesteps, timesteps], dim=0)
    return sample, timesteps, stream.prompt_embeds


def _encoded_rows(encoded: Any, count: int) -> list[Any]:
    """One encoder output per stream, so each samples its latent with its own generator."""
    if hasattr(encoded, "latent_dist"):
        parameters = encoded.latent_dist.parameters
        return [
            AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(parameters[i : i + 1])) for i in range(count)
        ]
    return [AutoencoderTinyOutput(latents=encoded.latents[i : i + 1]) for i in range(count)]


def _check(streams: Sequence[StreamDiffusion], images: torch.Tensor, *, denoising_batch: bool) -> None:
    if not streams:
        raise ValueError("no streams to advance")
    if images.shape[0] != len(streams):
        raise ValueError(f"{images.shape[0]} images for {len(streams)} streams")
    first = streams[0]
    for stream in streams:
        if stream.use_denoising_batch != denoising_batch or stream.frame_bff_size != 1:
            raise ValueError(f"batched streams must have use_denoising_batch={denoising_batch} and frame_buffer_size 1")
        if stream.unet is not first.unet or stream.vae is not first.vae:
            raise ValueError("batched streams must share one UNet and one VAE")


def _encode(streams: Sequence[StreamDiffusion], images: torch.Tensor) -> list[torch.Tensor]:
    """One VAE encode for all images, then each stream's encode_image (its sampling and first noise)
    on its row: a noisy latent [1,4,h,w] per stream."""
    vae = streams[0].vae
    encoded = vae.encode(images.to(device=streams[0].device, dtype=vae.dtype))
    latents: list[torch.Tensor] = []
    for stream, row in zip(streams, _encoded_rows(encoded, len(streams)), strict=True):
        with _replaying(stream, "vae", row):
            latents.append(stream.encode_image(images[:1]))  # the image itself is already encoded in `row`
    return latents


def _unet_rows(unet: Any, inputs: Sequence[UNetInputs]) -> tuple[torch.Tensor, ...]:
    """One UNet call over every stream's rows, split back per stream."""
    return unet(
        torch.cat([sample for sample, _, _ in inputs]),
        torch.cat([timestep for _, timestep, _ in inputs]),
        encoder_hidden_states=torch.cat([embeds for _, _, embeds in inputs]),
        return_dict=False,
    )[0].split([sample.shape[0] for sample, _, _ in inputs])


def _decode(streams: Sequence[StreamDiffusion], latents: Sequence[torch.Tensor]) -> torch.Tensor:
    vae = streams[0].vae
    return vae.decode(torch.cat(list(latents)) / vae.config.scaling_factor, return_dict=False)[0]


@torch.inference_mode()
def advance_streams(
    streams: Sequence[StreamDiffusion], images: torch.Tensor, temporal: TemporalFilter = NO_FILTER
) -> torch.Tensor:
    """Realtime: images [N,3,H,W] in [-1,1], one per stream -> decoded images [N,3,H,W] in [-1,1].

    `temporal` filters each stream's latents as ImageGenerator.run does for one stream.
    """
    _check(streams, images, denoising_batch=True)
    unet = streams[0].unet
    latents = [
        temporal.before(stream, latent) for stream, latent in zip(streams, _encode(streams, images), strict=True)
    ]
    inputs = [unet_inputs(stream, latent) for stream, latent in zip(streams, latents, strict=True)]
    predictions = _unet_rows(unet, inputs)
    denoised: list[torch.Tensor] = []
    for stream, latent, prediction in zip(streams, latents, predictions, strict=True):
        with _replaying(stream, "unet", prediction):
            denoised.append(stream.predict_x0_batch(latent))
        temporal.after(stream, denoised[-1])
    return _decode(streams, denoised)


@torch.inference_mode()
def denoise_drawings(
    streams: Sequence[StreamDiffusion], images: torch.Tensor, seeds: Sequence[SeedWeights]
) -> torch.Tensor:
    """Canvas: images [N,3,H,W] in [-1,1] -> decoded [N,3,H,W] in [-1,1], every step of each stream
    on its own image, one UNet call per step for all streams.

    Mirrors predict_x0_batch without the denoising batch, except for the noise added between steps:
    StreamDiffusion draws it from the global RNG, shared by every stream of a batch; here each
    stream draws it from CPU generators seeded with its `seeds` entry (several seeds: their noises
    slerped), so a drawing's result depends on its seeds only, whatever else is in its batch.
    """
    _check(streams, images, denoising_batch=False)
    if len(seeds) != len(streams):
        raise ValueError(f"{len(seeds)} seeds for {len(streams)} streams")
    steps = {len(stream.sub_timesteps_tensor) for stream in streams}
    if len(steps) != 1:
        raise ValueError(f"batched drawings must have equally many steps, got {sorted(steps)}")
    unet = streams[0].unet
    noise = [SeedNoise([(seed, 1.0)] if isinstance(seed, int) else seed) for seed in seeds]
    latents = _encode(streams, images)
    for stream, latent in zip(streams, latents, strict=True):
        stream.init_noise = latent  # as predict_x0_batch does without the denoising batch
    last = steps.pop() - 1
    denoised = latents
    for idx in range(last + 1):
        timesteps = [_step_timesteps(stream, idx) for stream in streams]
        inputs = [_with_guidance_rows(s, x, t) for s, x, t in zip(streams, latents, timesteps, strict=True)]
        predictions = _unet_rows(unet, inputs)
        denoised = [
            _scheduler_step(stream, prediction, latent, t, idx)
            for stream, prediction, latent, t in zip(streams, predictions, latents, timesteps, strict=True)
        ]
        if idx < last:
            latents = [_renoise(s, x0, idx + 1, g) for s, x0, g in zip(streams, denoised, noise, strict=True)]
    return _decode(streams, denoised)


def _scheduler_step(
    stream: StreamDiffusion, prediction: torch.Tensor, latent: torch.Tensor, t: torch.Tensor, idx: int
) -> torch.Tensor:
    """The stream's own unet_step (guidance and scheduler arithmetic) on its rows of the batched UNet call."""
    with _replaying(stream, "unet", prediction):
        x_0_pred, _ = stream.unet_step(latent, t, idx)
    return x_0_pred


def _renoise(stream: StreamDiffusion, x_0_pred: torch.Tensor, idx: int, noise: SeedNoise) -> torch.Tensor:
    """The noisy latent step `idx` starts from, as predict_x0_batch makes it (noise from `noise`)."""
    if not stream.do_add_noise:
        return stream.alpha_prod_t_sqrt[idx] * x_0_pred
    fresh = noise.draw(x_0_pred.shape).to(x_0_pred.device, x_0_pred.dtype)
    return stream.alpha_prod_t_sqrt[idx] * x_0_pred + stream.beta_prod_t_sqrt[idx] * fresh
