"""StreamDiffusion over one loaded pipeline: prepared streams and one frame through them.

Uses StreamDiffusion's `prepare`, `encode_image`, `predict_x0_batch` and `decode_image`, not its
`__call__`, which needs CUDA events and sleeps in its own similarity filter. Two traps of
streamdiffusion 0.1.1 are avoided here: `prepare()`'s default generator is one object shared by
every instance (so each stream gets its own), and without the denoising batch the noise between
steps comes from the global RNG (so canvas draws it from a generator of the request's seed,
sdbackend.stream_batch.denoise_drawings).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from streamdiffusion import StreamDiffusion

from sdbackend.requests import GenerationParams
from sdbackend.stream_batch import advance_streams, denoise_drawings
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
        self.temporal = (
            TemporalFilter(variant.input_smoothing, variant.output_feedback)
            if isinstance(variant, RealtimePipelineConfig)
            else TemporalFilter()
        )
        """Realtime's filters over a stream's frames (sdbackend.temporal_filter); canvas frames stand alone."""

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
        stream.prepare(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt,
            num_inference_steps=self.shape.num_inference_steps,
            guidance_scale=params.guidance_scale,
            delta=params.delta,
            generator=torch.Generator(device="cpu"),
            seed=params.seed,
        )

    @torch.inference_mode()
    def restyle(self, stream: StreamDiffusion, params: GenerationParams) -> None:
        """New prompt or guidance on a running stream, keeping its in-flight latents (no visible restart)."""
        buffer, stock = stream.x_t_latent_buffer, stream.stock_noise
        self.prepare(stream, params)
        stream.x_t_latent_buffer, stream.stock_noise = buffer, stock

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
        self, streams: list[StreamDiffusion], images: list[np.ndarray], seeds: list[int]
    ) -> list[np.ndarray]:
        """Canvas: all steps on each drawing, the drawings of the call sharing one UNet call per step."""
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
