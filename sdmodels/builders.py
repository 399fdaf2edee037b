"""Stable Diffusion architectures as data, built with random weights.

The service must run, and be tested, where no weights can be downloaded: "tiny" is a model of a
few MB with the same layout as Stable Diffusion (VAE scale factor 8, CLIP text encoder, UNet with
cross-attention, an AutoencoderTiny), saved as an ordinary diffusers folder so that it goes
through exactly the loading code a real model goes through. "sd-turbo" is the real SD 2.1 /
sd-turbo architecture, built in memory on the target device so a GPU benchmark measures the real
amount of work without needing the real weights.

The same seed gives the same weights and the same saved bytes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from sdmodels.vocabulary import BOS_TOKEN, EOS_TOKEN, byte_vocab, write_tokenizer

log = logging.getLogger(__name__)

TINY_VAE_SUBFOLDER = "taesd"
"""Where the AutoencoderTiny goes inside a saved model folder (config: model.tiny_vae_id)."""


def frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Architecture:
    """Everything that defines a model but its weights: one config per component.

    Lists inside the configs are tuples so that an architecture cannot be changed by accident;
    builders get deep copies.
    """

    name: str
    unet: Mapping[str, Any]
    vae: Mapping[str, Any]
    tiny_vae: Mapping[str, Any]
    text_encoder: Mapping[str, Any]
    """CLIPTextConfig fields except the token ids, which come from the tokenizer (and so does
    vocab_size unless given)."""
    scheduler: Mapping[str, Any]
    tokenizer_max_length: int = 77
    """CLIP's context; equals the text encoder's max_position_embeddings."""


# sd-turbo's own scheduler config: StreamDiffusion turns it into an LCMScheduler with from_config.
SD_TURBO_SCHEDULER: Mapping[str, Any] = frozen(
    {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "num_train_timesteps": 1000,
        "timestep_spacing": "trailing",
        "prediction_type": "epsilon",
        "steps_offset": 1,
        "interpolation_type": "linear",
        "use_karras_sigmas": False,
        "trained_betas": None,
    }
)

TINY = Architecture(
    name="tiny",
    # Cross-attention only at the lower resolution (32x32 latents for 512x512 images) keeps
    # self-attention small; two levels are enough for the UNet, whose size does not touch the
    # VAE scale factor.
    unet=frozen(
        {
            "sample_size": 64,
            "in_channels": 4,
            "out_channels": 4,
            "layers_per_block": 1,
            "block_out_channels": (32, 64),
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "cross_attention_dim": 32,
            "attention_head_dim": (2, 4),
            "norm_num_groups": 8,
            "use_linear_projection": True,
            "act_fn": "silu",
        }
    ),
    # Four blocks: three downsamples, scale factor 8 like every SD VAE (fewer blocks make the
    # latents, and so the UNet's work, four times larger per missing block).
    vae=frozen(
        {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "block_out_channels": (8, 16, 16, 32),
            "layers_per_block": 1,
            "latent_channels": 4,
            "norm_num_groups": 8,
            "sample_size": 512,
            "scaling_factor": 0.18215,
            "act_fn": "silu",
        }
    ),
    tiny_vae=frozen(
        {
            "encoder_block_out_channels": (8, 8, 8, 8),
            "decoder_block_out_channels": (8, 8, 8, 8),
            "num_encoder_blocks": (1, 1, 1, 1),
            "num_decoder_blocks": (1, 1, 1, 1),
            "latent_channels": 4,
            "scaling_factor": 1.0,
        }
    ),
    text_encoder=frozen(
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "projection_dim": 32,
            "hidden_act": "gelu",
        }
    ),
    scheduler=SD_TURBO_SCHEDULER,
)

SD_TURBO = Architecture(
    name="sd-turbo",
    # stabilityai/sd-turbo unet/config.json (Stable Diffusion 2.1 base).
    unet=frozen(
        {
            "sample_size": 64,
            "in_channels": 4,
            "out_channels": 4,
            "layers_per_block": 2,
            "block_out_channels": (320, 640, 1280, 1280),
            "down_block_types": (
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "cross_attention_dim": 1024,
            "attention_head_dim": (5, 10, 20, 20),
            "use_linear_projection": True,
            "norm_num_groups": 32,
            "act_fn": "silu",
            "flip_sin_to_cos": True,
            "freq_shift": 0,
            "downsample_padding": 1,
            "mid_block_scale_factor": 1,
            "norm_eps": 1e-05,
        }
    ),
    vae=frozen(
        {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "block_out_channels": (128, 256, 512, 512),
            "layers_per_block": 2,
            "latent_channels": 4,
            "norm_num_groups": 32,
            "sample_size": 768,
            "scaling_factor": 0.18215,
            "act_fn": "silu",
        }
    ),
    # madebyollin/taesd: the AutoencoderTiny defaults.
    tiny_vae=frozen({}),
    # stabilityai/sd-turbo text_encoder/config.json (OpenCLIP ViT-H text tower, last layer dropped).
    text_encoder=frozen(
        {
            "vocab_size": 49408,
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 23,
            "num_attention_heads": 16,
            "max_position_embeddings": 77,
            "projection_dim": 512,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-05,
        }
    ),
    scheduler=SD_TURBO_SCHEDULER,
)

ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType({a.name: a for a in (TINY, SD_TURBO)})


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}") from None


def _config(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(mapping))


@dataclass(frozen=True)
class Components:
    """The parts of a StableDiffusionPipeline plus the AutoencoderTiny that can replace its VAE."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    tiny_vae: AutoencoderTiny
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: EulerDiscreteScheduler

    def pipeline(self) -> StableDiffusionPipeline:
        return StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            unet=self.unet,
            scheduler=self.scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )


# ---- tokenizer -------------------------------------------------------------------------------


def tokenizer_vocab() -> dict[str, int]:
    """Byte-level BPE with no merges: any text tokenizes (one token per byte), all a random model needs."""
    return byte_vocab()


# ---- models ----------------------------------------------------------------------------------


def text_encoder_config(arch: Architecture, vocab: Mapping[str, int]) -> CLIPTextConfig:
    """The architecture's text encoder with token ids from `vocab`.

    An architecture may fix a larger `vocab_size` (the real model's, so parameter counts and the
    embedding table match); the ids the tokenizer produces are then a prefix of it.
    """
    fields = _config(arch.text_encoder)
    vocab_size = fields.pop("vocab_size", len(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"{arch.name}: text encoder vocab_size {vocab_size} is below the tokenizer's {len(vocab)}")
    eos = vocab[EOS_TOKEN]
    return CLIPTextConfig(
        vocab_size=vocab_size,
        bos_token_id=vocab[BOS_TOKEN],
        eos_token_id=eos,
        pad_token_id=eos,
        **fields,
    )


@contextmanager
def _seeded(seed: int):
    """Seed torch's CPU generator for the build only, leaving the caller's random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_models(
    arch: Architecture, seed: int, device: torch.device | str = "cpu"
) -> tuple[UNet2DConditionModel, AutoencoderKL, AutoencoderTiny, CLIPTextModel]:
    """Random-weight networks; each gets its own seed so one component's size never shifts another's weights.

    Built under `torch.device(device)` so a large architecture is initialised where it will run
    ("meta" builds shapes only). Determinism holds per device (CPU and CUDA draw differently).
    """
    vocab = tokenizer_vocab()
    with torch.device(device):
        with _seeded(seed):
            unet = UNet2DConditionModel(**_config(arch.unet))
        with _seeded(seed + 1):
            vae = AutoencoderKL(**_config(arch.vae))
        with _seeded(seed + 2):
            tiny_vae = AutoencoderTiny(**_config(arch.tiny_vae))
        with _seeded(seed + 3):
            text_encoder = CLIPTextModel(text_encoder_config(arch, vocab))
    return unet, vae, tiny_vae, text_encoder


def build_components(arch: Architecture, seed: int, work_dir: Path) -> Components:
    """All parts on the CPU in float32; `work_dir` receives the tokenizer's vocabulary files."""
    unet, vae, tiny_vae, text_encoder = build_models(arch, seed)
    for module in (unet, vae, tiny_vae, text_encoder):
        module.eval()
    return Components(
        unet=unet,
        vae=vae,
        tiny_vae=tiny_vae,
        text_encoder=text_encoder,
        tokenizer=write_tokenizer(work_dir, arch.tokenizer_max_length),
        scheduler=EulerDiscreteScheduler.from_config(_config(arch.scheduler)),
    )


def build_pipeline_on(
    arch: Architecture, device: torch.device | str, dtype: torch.dtype, work_dir: Path, seed: int = 0
) -> tuple[StableDiffusionPipeline, AutoencoderTiny]:
    """A pipeline built directly on `device` in `dtype`, never saved: for benchmarks of the real
    architecture where the real weights are not at hand. Returns the pipeline and its AutoencoderTiny.
    """
    unet, vae, tiny_vae, text_encoder = build_models(arch, seed, device)
    components = Components(
        unet=unet,
        vae=vae,
        tiny_vae=tiny_vae,
        text_encoder=text_encoder,
        tokenizer=write_tokenizer(work_dir, arch.tokenizer_max_length),
        scheduler=EulerDiscreteScheduler.from_config(_config(arch.scheduler)),
    )
    pipe = components.pipeline().to(device=device, dtype=dtype)
    tiny = components.tiny_vae.to(device=device, dtype=dtype)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, tiny):
        module.eval().requires_grad_(False)
    return pipe, tiny


def save_components(components: Components, output: Path) -> None:
    """A StableDiffusionPipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
    scheduler/) with the AutoencoderTiny in `taesd/`, loadable by from_pretrained like any other.
    """
    output.mkdir(parents=True, exist_ok=True)
    components.pipeline().save_pretrained(str(output), safe_serialization=True)
    components.tiny_vae.save_pretrained(str(output / TINY_VAE_SUBFOLDER), safe_serialization=True)
    # safetensors writes owner-only files; a server running as another user must read them too.
    for file in output.rglob("*"):
        if file.is_file():
            file.chmod(0o644)


def create_model(name: str, output: Path, seed: int = 0) -> Path:
    """Build architecture `name` with random weights from `seed` and save it to `output`."""
    arch = architecture(name)
    work_dir = output / ".tokenizer-src"
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        log.info("building %s with random weights (seed %d)", arch.name, seed)
        components = build_components(arch, seed, work_dir)
        log.info("saving to %s", output)
        save_components(components, output)
    finally:
        for file in work_dir.iterdir():
            file.unlink()
        work_dir.rmdir()
    return output
