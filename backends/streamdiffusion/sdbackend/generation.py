"""StreamDiffusion over one loaded pipeline: prepared streams and one frame through them.

Uses StreamDiffusion's `prepare`, `encode_image`, `predict_x0_batch` and `decode_image`, not its
`__call__`, which needs CUDA events and sleeps in its own similarity filter. Two traps of
streamdiffusion 0.1.1 are avoided here: `prepare()`'s default generator is one object shared by
every instance (so each stream gets its own), and without the denoising batch the noise between
steps comes from the global RNG (so canvas draws it from a generator of the request's seed,
sdbackend.stream_batch.denoise_drawings).

Prompt embeddings come from a PromptCache (sdbackend.prompt_cache) and are blended here
(sdbackend.blending), so `prepare` never runs the text encoder for a prompt it has seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from streamdiffusion import StreamDiffusion

from sdbackend.blending import PromptTransition, blend, seed_noise
from sdbackend.prompt_cache import PromptCache
from sdbackend.requests import GenerationParams
from sdbackend.stream_batch import SeedWeights, advance_streams, denoise_drawings
from sdbackend.temporal_filter import TemporalFilter
from sdconfig import Settings
from sdconfig.schema import RealtimePipelineConfig, VariantPipelineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamShape:
    """What a StreamDiffusion object is built for; a different step list needs a new object."""

    width: int
    height: int
    num_inference_steps: int
    cfg_type: str
    dtype: torch.dtype


class _EncodedPrompts:
    """Stands in for the pipeline inside StreamDiffusion.prepare, whose only use of it is encode_prompt:
    answers with the blended embedding and the negative prompt's, both from the cache."""

    def __init__(self, conditional: torch.Tensor, negative: str, cache: PromptCache) -> None:
        self._conditional, self._negative, self._cache = conditional, negative, cache

    def encode_prompt(
        self, *, do_classifier_free_guidance: bool, **_: object
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        unconditional = self._cache.get(self._negative) if do_classifier_free_guidance else None
        return self._conditional, unconditional


class ImageGenerator:
    """Makes prepared streams over one pipeline and runs frames through them."""

    def __init__(self, pipe: StableDiffusionPipeline, settings: Settings, variant: VariantPipelineConfig) -> None:
        self.pipe = pipe
        self.device = pipe.device
        self.shape = StreamShape(
            width=settings.pipeline.width,
            height=settings.pipeline.height,
            num_inference_steps=settings.pipeline.num_inference_steps,
            cfg_type=variant.cfg_type,
            dtype=pipe.unet.dtype,
        )
        self.prompts = PromptCache(self._encode, settings.pipeline.prompt_cache_size)
        self.temporal = (
            TemporalFilter(variant.input_smoothing, variant.output_feedback)
            if isinstance(variant, RealtimePipelineConfig)
            else TemporalFilter()
        )
        """Realtime's filters over a stream's frames (sdbackend.temporal_filter); canvas frames stand alone."""

    def _encode(self, text: str) -> torch.Tensor:
        """One text-encoder call: the conditional embedding [1, tokens, dim] of `text`."""
        with torch.inference_mode():
            return self.pipe.encode_prompt(
                prompt=text, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )[0]

    def prompt_embedding(self, params: GenerationParams) -> torch.Tensor:
        """The blend of the request's prompts, each encoded once per cache lifetime."""
        embeddings = [self.prompts.get(text) for text, _ in params.prompts]
        if len(embeddings) == 1:
            return embeddings[0]
        return blend(embeddings, [weight for _, weight in params.prompts], params.interpolation)

    def count_tokens(self, text: str) -> int:
        """Tokens including start and end markers, as the text encoder sees them."""
        return len(self.pipe.tokenizer(text, truncation=False).input_ids)

    def new_stream(self, params: GenerationParams, *, denoising_batch: bool) -> StreamDiffusion:
        """A stream prepared for `params`.

        denoising_batch=True is realtime's stream batch: each call advances every step by one
        frame, so the output lags the input by len(t_index_list) - 1 frames. False runs all steps
        on the one input (canvas).
        """
        s = self.shape
        stream = StreamDiffusion(
            self.pipe,
            t_index_list=list(params.t_index_list),
            torch_dtype=s.dtype,
            width=s.width,
            height=s.height,
            use_denoising_batch=denoising_batch,
            frame_buffer_size=1,
            cfg_type=s.cfg_type,
        )
        self.prepare(stream, params)
        return stream

    @torch.inference_mode()
    def prepare(self, stream: StreamDiffusion, params: GenerationParams) -> None:
        """Embeddings, timesteps and seeded noise; the stream's own CPU generator keeps users apart.

        Without guidance (scale <= 1) streamdiffusion 0.1.1's prepare() still reads unconditional
        embeddings for cfg "initialize"/"full" that it did not compute, so it is prepared as "self"
        then, which with scale <= 1 runs the same arithmetic as no guidance.
        """
        cfg_type = stream.cfg_type
        if params.guidance_scale <= 1.0 and cfg_type in ("initialize", "full"):
            stream.cfg_type = "self"
        try:
            self._prepare(stream, params)
        finally:
            stream.cfg_type = cfg_type

    def _prepare(self, stream: StreamDiffusion, params: GenerationParams) -> None:
        pipe = stream.pipe
        stream.pipe = _EncodedPrompts(self.prompt_embedding(params), params.negative_prompt, self.prompts)
        try:
            stream.prepare(
                prompt=params.prompt,
                negative_prompt=params.negative_prompt,
                num_inference_steps=self.shape.num_inference_steps,
                guidance_scale=params.guidance_scale,
                delta=params.delta,
                generator=torch.Generator(device="cpu"),
                seed=params.seed,
            )
        finally:
            stream.pipe = pipe
        if len(params.seeds) > 1:  # one seed: prepare's own noise, drawn from the same generator
            noise = seed_noise(params.seeds, stream.init_noise.shape)
            stream.init_noise = noise.to(device=stream.device, dtype=stream.dtype)

    @torch.inference_mode()
    def restyle(
        self, stream: StreamDiffusion, params: GenerationParams, transition_frames: int = 0
    ) -> PromptTransition | None:
        """New prompt or guidance on a running stream, keeping its in-flight latents (no visible restart).

        With `transition_frames` the embeddings arrive over that many frames: this frame takes the
        first step and the returned transition the others. None where the change is a jump.
        """
        buffer, stock, before = stream.x_t_latent_buffer, stream.stock_noise, stream.prompt_embeds
        self.prepare(stream, params)
        stream.x_t_latent_buffer, stream.stock_noise = buffer, stock
        after = stream.prompt_embeds
        if transition_frames < 1 or before.shape != after.shape or torch.equal(before, after):
            return None
        transition = PromptTransition(before, after, transition_frames, params.interpolation)
        stream.prompt_embeds = transition.step()
        return transition

    @torch.inference_mode()
    def run(self, stream: StreamDiffusion, image: np.ndarray) -> np.ndarray:
        """RGB uint8 [H, W, 3] -> RGB uint8 [H, W, 3] through encode, denoise, decode."""
        pixels = self._to_tensor(image)  # [1, 3, H, W] in [-1, 1]
        latent = self.temporal.before(stream, stream.encode_image(pixels))  # [1, 4, H/8, W/8]
        denoised = stream.predict_x0_batch(latent)  # [1, 4, H/8, W/8]
        self.temporal.after(stream, denoised)
        decoded = stream.decode_image(denoised)  # [1, 3, H, W] in [-1, 1]
        return self._to_image(decoded)

    def run_group(self, streams: list[StreamDiffusion], images: list[np.ndarray]) -> list[np.ndarray]:
        """One frame for each of several realtime streams with one VAE encode, one UNet call, one decode."""
        pixels = torch.cat([self._to_tensor(image) for image in images])  # [N, 3, H, W] in [-1, 1]
        decoded = advance_streams(streams, pixels, self.temporal)  # [N, 3, H, W] in [-1, 1]
        return [self._to_image(decoded[i : i + 1]) for i in range(len(streams))]

    def run_drawings(
        self, streams: list[StreamDiffusion], images: list[np.ndarray], seeds: list[SeedWeights]
    ) -> list[np.ndarray]:
        """Canvas: all steps on each drawing, the drawings of the call sharing one UNet call per step;
        `seeds` holds each drawing's (seed, weight) blend of the noise between steps."""
        pixels = torch.cat([self._to_tensor(image) for image in images])  # [N, 3, H, W] in [-1, 1]
        decoded = denoise_drawings(streams, pixels, seeds)  # [N, 3, H, W] in [-1, 1]
        return [self._to_image(decoded[i : i + 1]) for i in range(len(streams))]

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        tensor = tensor.permute(2, 0, 1).unsqueeze(0).to(self.shape.dtype)
        return tensor / 127.5 - 1.0

    @staticmethod
    def _to_image(decoded: torch.Tensor) -> np.ndarray:
        pixels = ((decoded[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return pixels.permute(1, 2, 0).contiguous().cpu().numpy()
