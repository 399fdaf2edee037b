"""Several streams advanced together give each stream the frames it would give alone."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline
from streamdiffusion import StreamDiffusion

from sdbackend.random_model import TINY, build_pipeline_on
from sdbackend.stream_batch import advance_streams, unet_inputs

SIZE = 64


@pytest.fixture(scope="module")
def pipes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StableDiffusionPipeline]:
    pipe, tiny = build_pipeline_on(TINY, "cpu", torch.float32, tmp_path_factory.mktemp("tok"))
    components = {k: v for k, v in pipe.components.items() if k != "vae"}
    return {"vae": pipe, "taesd": StableDiffusionPipeline(**components, vae=tiny, requires_safety_checker=False)}


def stream(pipe: StableDiffusionPipeline, cfg_type: str, steps: list[int], seed: int) -> StreamDiffusion:
    made = StreamDiffusion(
        pipe, t_index_list=steps, torch_dtype=torch.float32, width=SIZE, height=SIZE, cfg_type=cfg_type
    )
    made.prepare(
        prompt=f"prompt {seed}",
        negative_prompt="bad",
        num_inference_steps=50,
        guidance_scale=1.5,
        delta=0.8,
        generator=torch.Generator(),
        seed=seed,
    )
    return made


def frames(count: int, sessions: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return [torch.rand(sessions, 3, SIZE, SIZE, generator=generator) * 2 - 1 for _ in range(count)]


@pytest.mark.parametrize(
    ("vae", "cfg_type", "steps"),
    [
        ("taesd", "self", [32, 45]),
        ("vae", "self", [20, 30, 40]),
        ("taesd", "full", [32, 45]),
        ("vae", "initialize", [40]),
        ("taesd", "none", [45]),
    ],
)
@torch.inference_mode()
def test_batched_streams_match_solo_streams(
    pipes: dict[str, StableDiffusionPipeline], vae: str, cfg_type: str, steps: list[int]
) -> None:
    pipe = pipes[vae]
    seeds = [3, 11, 5]
    solo = [stream(pipe, cfg_type, steps, seed) for seed in seeds]
    together = [stream(pipe, cfg_type, steps, seed) for seed in seeds]
    worst = 0.0
    for images in frames(4, len(seeds)):
        alone = torch.cat(
            [s.decode_image(s.predict_x0_batch(s.encode_image(images[i : i + 1]))) for i, s in enumerate(solo)]
        )
        batched = advance_streams(together, images)
        worst = max(worst, float((alone - batched).abs().max()))
    print(f"{vae} {cfg_type} {steps}: max abs difference batched vs solo {worst:.2e}")
    assert worst < 1e-4
    assert all(s.unet is pipe.unet and s.vae is pipe.vae for s in together)


def test_unet_inputs_match_streamdiffusion_rows(pipes: dict[str, StableDiffusionPipeline]) -> None:
    s = stream(pipes["taesd"], "full", [20, 30, 40], 1)
    sample, timesteps, embeds = unet_inputs(s, torch.zeros(1, 4, SIZE // 8, SIZE // 8))
    assert sample.shape[0] == timesteps.shape[0] == embeds.shape[0] == 6


def test_streams_must_share_one_pipeline(pipes: dict[str, StableDiffusionPipeline]) -> None:
    mixed = [stream(pipes["taesd"], "self", [45], 1), stream(pipes["vae"], "self", [45], 2)]
    with pytest.raises(ValueError, match="share one UNet and one VAE"):
        advance_streams(mixed, frames(1, 2)[0])
