"""The demo model's architecture and recipe: sd-turbo's component classes at a size a 2-core CPU trains.

The components are those of sd-turbo (CLIP text encoder and tokenizer, a cross-attention UNet
predicting epsilon on Stable Diffusion's beta schedule, an AutoencoderKL with scale factor 8 and
4 latent channels, and an AutoencoderTiny distilled into the same latent space), so the model
goes through the one loading path and StreamDiffusion's LCM scheduler unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdmodels.builders import SD_TURBO_SCHEDULER, Architecture, frozen

DEMO = Architecture(
    name="demo",
    unet=frozen(
        {
            "sample_size": 16,
            "in_channels": 4,
            "out_channels": 4,
            "layers_per_block": 1,
            "block_out_channels": (32, 64, 128),
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "cross_attention_dim": 64,
            "attention_head_dim": (2, 4, 4),
            "norm_num_groups": 8,
            "use_linear_projection": True,
            "act_fn": "silu",
        }
    ),
    vae=frozen(
        {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "block_out_channels": (16, 32, 64, 64),
            "layers_per_block": 1,
            "latent_channels": 4,
            "norm_num_groups": 8,
            "sample_size": 128,
            "scaling_factor": 0.18215,  # replaced by the measured 1/std of the trained latents
            "act_fn": "silu",
        }
    ),
    tiny_vae=frozen(
        {
            "encoder_block_out_channels": (32, 32, 32, 32),
            "decoder_block_out_channels": (32, 32, 32, 32),
            "num_encoder_blocks": (1, 1, 1, 1),
            "num_decoder_blocks": (1, 1, 1, 1),
            "latent_channels": 4,
            "scaling_factor": 1.0,
        }
    ),
    text_encoder=frozen(
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "projection_dim": 64,
            "hidden_act": "gelu",
        }
    ),
    scheduler=SD_TURBO_SCHEDULER,
)


@dataclass(frozen=True)
class Recipe:
    """Steps and sizes of the three training stages; `quick()` is the same code for a few steps (CI)."""

    size: int = 128
    """Scene resolution: the demo model's native (and CPU default) resolution."""
    crop: int = 64
    """The autoencoders train on crops (convolutions do not care, and crops are 4x cheaper)."""
    vae_steps: int = 5000
    vae_batch: int = 8
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    taesd_steps: int = 3000
    taesd_batch: int = 8
    taesd_lr: float = 1e-3
    latent_scenes: int = 16000
    """Scenes encoded once by the trained VAE for the UNet stage."""
    unet_steps: int = 8000
    unet_batch: int = 32
    unet_lr: float = 5e-4
    caption_dropout: float = 0.1
    """Captions replaced by "" so that classifier-free guidance has an unconditional branch."""
    junk_words: float = 0.25
    """Captions given unknown words, so that words outside the vocabulary are ignored, not harmful."""
    warmup: int = 200
    checkpoint_every: int = 1000
    seed: int = 0

    @classmethod
    def quick(cls) -> Recipe:
        return cls(
            vae_steps=3,
            taesd_steps=3,
            latent_scenes=16,
            unet_steps=3,
            unet_batch=4,
            warmup=1,
            checkpoint_every=2,
        )
