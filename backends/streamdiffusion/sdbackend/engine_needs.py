"""What each model variant asks of the engines: batch ranges, the VAE it uses, its precision.

Computed from the settings in one place, because the build plans its optimization profiles from
these ranges and the runtime refuses engines whose profiles do not cover them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sdbackend.engine_manifest import VAE_ENGINES, BatchRange, EngineKind, Precision, VaeKind
from sdconfig import Mode, Settings

DENOISING_BATCH: Mapping[Mode, bool] = {"realtime": True, "canvas": False}
"""How each mode runs StreamDiffusion (sdbackend.generation): realtime advances every step of its
stream batch in one UNet call, canvas runs its steps one after another on one drawing."""


def unet_rows(cfg_type: str, steps_per_call: int) -> int:
    """UNet batch rows one stream sends per call, as StreamDiffusion's unet_step builds them.

    "full" guidance runs every row twice (unconditional and text); "initialize" adds one
    unconditional row. The guidance scale is a request parameter, so the doubling is always planned.
    """
    if cfg_type == "full":
        return 2 * steps_per_call
    if cfg_type == "initialize":
        return steps_per_call + 1
    return steps_per_call


@dataclass(frozen=True)
class ModeNeeds:
    """What one model variant asks of the engines."""

    mode: Mode
    vae: VaeKind
    unet_batch: BatchRange
    vae_batch: BatchRange
    height: int
    width: int

    def engine_batches(self) -> dict[EngineKind, BatchRange]:
        encoder, decoder = VAE_ENGINES[self.vae]
        return {"unet": self.unet_batch, encoder: self.vae_batch, decoder: self.vae_batch}


def streams_per_call(settings: Settings, mode: Mode) -> int:
    """How many streams one model call may advance together: variant.max_batch (Triton's max_batch_size,
    rendered from it), or 1 where the variant runs its sessions' requests one by one. Engines run on a
    GPU, where batch_across_sessions "auto" means on."""
    variant = settings.variant(mode)
    if not variant.batches_across_sessions("cuda"):
        return 1
    return variant.max_batch


def mode_needs(settings: Settings, mode: Mode, max_steps: int | None = None, streams: int | None = None) -> ModeNeeds:
    """Batch ranges for `mode`.

    Realtime stacks the stream batches of up to `streams` sessions in one UNet call (rows =
    steps x guidance factor, per session); canvas runs one step at a time per drawing. `max_steps`
    raises the planned number of denoising steps above the configured t_index_list (requests may
    send longer lists); `streams` defaults to `streams_per_call`.
    """
    variant = settings.variant(mode)
    steps = max(len(variant.t_index_list), max_steps or 0)
    per_call = steps if DENOISING_BATCH[mode] else 1
    per_stream = unet_rows(variant.cfg_type, per_call)
    opt_stream = unet_rows(variant.cfg_type, len(variant.t_index_list) if DENOISING_BATCH[mode] else 1)
    frames = max(1, streams if streams is not None else streams_per_call(settings, mode))
    return ModeNeeds(
        mode=mode,
        vae="taesd" if variant.use_tiny_vae else "vae",
        unet_batch=BatchRange(min=1, opt=opt_stream, max=per_stream * frames),
        vae_batch=BatchRange(min=1, opt=1, max=frames),
        height=settings.pipeline.height,
        width=settings.pipeline.width,
    )


def precision_for(settings: Settings) -> Precision:
    """Engines follow model.dtype: float32 asks for fp32 engines, auto and float16 for fp16."""
    return "fp32" if settings.model.dtype == "float32" else "fp16"
