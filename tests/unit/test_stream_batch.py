"""Several streams advanced together give each stream the frames it would give alone: realtime
frames (denoising batch) and canvas drawings (every step on one image)."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline
from streamdiffusion import StreamDiffusion

from sdbackend.stream_batch import advance_streams, denoise_drawings, unet_inputs
from sdmodels.builders import TINY, build_pipeline_on

SIZE = 64


@pytest.fixture(scope="module")
def pipes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StableDiffusionPipeline]:
    pipe, tiny = build_pipeline_on(TINY, "cpu", torch.float32, tmp_path_factory.mktemp("tok"))
    components = {k: v for k, v in pipe.components.items() if k != "vae"}
    return {"vae": pipe, "taesd": StableDiffusionPipeline(**components, vae=tiny, requires_safety_checker=False)}


def stream(
    pipe: StableDiffusionPipeline,
    cfg_type: str,
    steps: list[int],
    seed: int,
    *,
    denoising_batch: bool = True,
    guidance_scale: float = 1.5,
) -> StreamDiffusion:
    made = StreamDiffusion(
        pipe,
        t_index_list=steps,
        torch_dtype=torch.float32,
        width=SIZE,
        height=SIZE,
        cfg_type=cfg_type,
        use_denoising_batch=denoising_batch,
    )
    made.prepare(
        prompt=f"prompt {seed}",
        negative_prompt="bad",
        num_inference_steps=50,
        guidance_scale=guidance_scale,
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


# ------------------------------------------------------------------------------ canvas


def drawing(pipe: StableDiffusionPipeline, cfg_type: str, seed: int, guidance_scale: float = 1.5) -> StreamDiffusion:
    if guidance_scale <= 1.0:  # streamdiffusion 0.1.1 cannot prepare "initialize" without guidance (see generation.py)
        cfg_type = "self"
    return stream(pipe, cfg_type, [10, 20, 30, 40], seed, denoising_batch=False, guidance_scale=guidance_scale)


@pytest.mark.parametrize(("vae", "cfg_type"), [("vae", "initialize"), ("taesd", "self"), ("vae", "none")])
@torch.inference_mode()
def test_one_drawing_is_streamdiffusions_own_denoise_with_the_noise_of_its_seed(
    pipes: dict[str, StableDiffusionPipeline], vae: str, cfg_type: str
) -> None:
    image = frames(1, 1)[0]
    own = drawing(pipes[vae], cfg_type, 4)
    torch.manual_seed(99)  # StreamDiffusion draws the noise between steps from the global RNG
    expected = own.decode_image(own.predict_x0_batch(own.encode_image(image)))
    ours = denoise_drawings([drawing(pipes[vae], cfg_type, 4)], image, [99])
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("vae", "cfg_type"), [("vae", "initialize"), ("taesd", "self"), ("taesd", "none")])
@torch.inference_mode()
def test_batched_drawings_match_each_drawn_alone(
    pipes: dict[str, StableDiffusionPipeline], vae: str, cfg_type: str
) -> None:
    pipe = pipes[vae]
    seeds = [3, 11, 5]
    scales = [1.5, 1.0, 3.0]  # guidance off for one: its rows differ in number from the others'
    images = frames(1, len(seeds))[0]
    alone = torch.cat(
        [
            denoise_drawings([drawing(pipe, cfg_type, seed, scale)], images[i : i + 1], [seed])
            for i, (seed, scale) in enumerate(zip(seeds, scales, strict=True))
        ]
    )
    together = [drawing(pipe, cfg_type, seed, scale) for seed, scale in zip(seeds, scales, strict=True)]
    batched = denoise_drawings(together, images, seeds)
    worst = float((alone - batched).abs().max())
    print(f"{vae} {cfg_type}: max abs difference batched vs alone {worst:.2e}")
    assert worst < 1e-4
    assert float((batched[0] - batched[1]).abs().max()) > 0.01, "different drawings and seeds give different results"
    assert all(s.unet is pipe.unet and s.vae is pipe.vae for s in together)


@torch.inference_mode()
def test_drawings_need_their_own_mode_and_equal_step_counts(pipes: dict[str, StableDiffusionPipeline]) -> None:
    pipe = pipes["taesd"]
    with pytest.raises(ValueError, match="use_denoising_batch=False"):
        denoise_drawings([stream(pipe, "self", [45], 1)], frames(1, 1)[0], [1])
    uneven = [drawing(pipe, "self", 1), stream(pipe, "self", [20, 40], 2, denoising_batch=False)]
    with pytest.raises(ValueError, match="equally many steps"):
        denoise_drawings(uneven, frames(1, 2)[0], [1, 2])
