"""Advance several realtime streams by one frame each with one VAE encode, one UNet call and one decode.

Every realtime session owns a StreamDiffusion object (its prompt, noise, generator and in-flight
latents). Running them one by one leaves the GPU mostly idle at batch 2; stacking their stream
batches into one UNet call is what makes many sessions cheap. Only the batched calls are done
here: each stream's own StreamDiffusion code still does its noise, guidance and scheduler
arithmetic, fed with its rows of the batched results, so the output of a stream is the one it
would produce alone (up to floating-point summation order).

Streams must use the denoising batch (`use_denoising_batch=True`, `frame_buffer_size=1`) and share
one pipeline (the same UNet and VAE objects).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.models.autoencoder_tiny import AutoencoderTinyOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.vae import DiagonalGaussianDistribution
from streamdiffusion import StreamDiffusion


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


def unet_inputs(stream: StreamDiffusion, x_t_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (sample, timestep, encoder_hidden_states) that `stream.predict_x0_batch(x_t_latent)` hands its UNet.

    Mirrors StreamDiffusion 0.1.1's predict_x0_batch and unet_step (denoising batch): the new frame's
    latent goes in front of the in-flight latents, and guidance "full" / "initialize" add
    unconditional rows. Reads the stream, changes nothing.
    """
    timesteps = stream.sub_timesteps_tensor
    sample = x_t_latent
    if stream.denoising_steps_num > 1:
        sample = torch.cat((x_t_latent, stream.x_t_latent_buffer), dim=0)
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


def _check(streams: Sequence[StreamDiffusion], images: torch.Tensor) -> None:
    if not streams:
        raise ValueError("no streams to advance")
    if images.shape[0] != len(streams):
        raise ValueError(f"{images.shape[0]} images for {len(streams)} streams")
    first = streams[0]
    for stream in streams:
        if not stream.use_denoising_batch or stream.frame_bff_size != 1:
            raise ValueError("batched streams must use the denoising batch with frame_buffer_size 1")
        if stream.unet is not first.unet or stream.vae is not first.vae:
            raise ValueError("batched streams must share one UNet and one VAE")


@torch.inference_mode()
def advance_streams(streams: Sequence[StreamDiffusion], images: torch.Tensor) -> torch.Tensor:
    """images [N,3,H,W] in [-1,1], one per stream -> decoded images [N,3,H,W] in [-1,1], one per stream."""
    _check(streams, images)
    unet, vae = streams[0].unet, streams[0].vae
    encoded = vae.encode(images.to(device=streams[0].device, dtype=vae.dtype))
    latents: list[torch.Tensor] = []
    for stream, row in zip(streams, _encoded_rows(encoded, len(streams)), strict=True):
        stream.vae = _Replay(vae, row)
        try:
            latents.append(stream.encode_image(images[:1]))  # the image itself is already encoded in `row`
        finally:
            stream.vae = vae

    inputs = [unet_inputs(stream, latent) for stream, latent in zip(streams, latents, strict=True)]
    predictions = unet(
        torch.cat([sample for sample, _, _ in inputs]),
        torch.cat([timestep for _, timestep, _ in inputs]),
        encoder_hidden_states=torch.cat([embeds for _, _, embeds in inputs]),
        return_dict=False,
    )[0].split([sample.shape[0] for sample, _, _ in inputs])

    denoised: list[torch.Tensor] = []
    for stream, latent, prediction in zip(streams, latents, predictions, strict=True):
        stream.unet = _Replay(unet, prediction)
        try:
            denoised.append(stream.predict_x0_batch(latent))
        finally:
            stream.unet = unet
    return vae.decode(torch.cat(denoised) / vae.config.scaling_factor, return_dict=False)[0]
