"""Train the demo model in three stages: the VAE, the AutoencoderTiny distilled to its latents, then
the text encoder and UNet on those latents.

Each stage checkpoints into the work folder and a finished stage is skipped on the next run, so an
interrupted training resumes where it stopped. Everything is seeded: the same recipe gives the same
weights within float noise (thread counts change summation order, nothing else).
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import string
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, AutoencoderTiny, DDPMScheduler, EulerDiscreteScheduler, UNet2DConditionModel
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from sdmodels.builders import Components, save_components, text_encoder_config
from sdmodels.demo_model import DEMO, Recipe
from sdmodels.scenes import WORDS, scene
from sdmodels.vocabulary import learn_merges, write_tokenizer

log = logging.getLogger(__name__)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """HWC uint8 images to an NCHW float batch in [-1, 1], as the pipelines feed the VAE."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def scene_batch(first_seed: int, count: int, size: int, crop: int | None = None) -> torch.Tensor:
    """Scenes `first_seed` .. +count, each cropped at a seeded place when `crop` is set."""
    images = []
    for seed in range(first_seed, first_seed + count):
        pixels = np.asarray(scene(seed, size).image)
        if crop:
            rng = random.Random(seed)
            y, x = rng.randrange(size - crop + 1), rng.randrange(size - crop + 1)
            pixels = pixels[y : y + crop, x : x + crop]
        images.append(pixels)
    return to_tensor(images)


def _schedule(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero: a short run still ends at a small learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


class Stage:
    """One stage's loop: progress bar, running loss, periodic checkpoints, resume."""

    def __init__(self, name: str, work: Path, modules: dict[str, torch.nn.Module], lr: float, recipe: Recipe):
        self.name, self.work, self.modules, self.recipe = name, work, modules, recipe
        params = [p for m in modules.values() for p in m.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        self.checkpoint = work / f"{name}.ckpt"

    def _save(self, step: int) -> None:
        state = {"step": step, "optimizer": self.optimizer.state_dict()}
        state.update({k: m.state_dict() for k, m in self.modules.items()})
        torch.save(state, self.checkpoint.with_suffix(".tmp"))
        self.checkpoint.with_suffix(".tmp").replace(self.checkpoint)

    def _resume(self) -> int:
        if not self.checkpoint.is_file():
            return 0
        state = torch.load(self.checkpoint, weights_only=False)
        for key, module in self.modules.items():
            module.load_state_dict(state[key])
        self.optimizer.load_state_dict(state["optimizer"])
        log.info("%s: resuming at step %d", self.name, state["step"])
        return state["step"]

    def run(self, steps: int, loss_at: Callable[[int], torch.Tensor]) -> None:
        start = self._resume()
        base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        for module in self.modules.values():
            module.train()
        running, started = None, time.perf_counter()
        bar = tqdm(range(start, steps), initial=start, total=steps, desc=self.name, mininterval=5, ascii=True)
        for step in bar:
            torch.manual_seed(self.recipe.seed * 1_000_003 + step)
            for group, base in zip(self.optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * _schedule(step, steps, self.recipe.warmup)
            loss = loss_at(step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for m in self.modules.values() for p in m.parameters()], 1.0)
            self.optimizer.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
            if (step + 1) % self.recipe.checkpoint_every == 0 or step + 1 == steps:
                self._save(step + 1)
                rate = (step + 1 - start) / (time.perf_counter() - started)
                log.info("%s step %d/%d loss %.4f (%.1f steps/s)", self.name, step + 1, steps, running, rate)
        for module in self.modules.values():
            module.eval()


def _seeded_module(factory: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def _pixel_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (output - target).abs().mean() + (output - target).pow(2).mean()


def train_vae(recipe: Recipe, work: Path) -> AutoencoderKL:
    """Reconstruction with a tiny KL term, then the scaling factor measured so scaled latents have unit std."""
    done = work / "vae"
    if (done / "config.json").is_file():
        return AutoencoderKL.from_pretrained(str(done))
    vae = _seeded_module(lambda: AutoencoderKL(**dict(DEMO.vae)), recipe.seed + 1)

    def loss_at(step: int) -> torch.Tensor:
        images = scene_batch(step * recipe.vae_batch, recipe.vae_batch, recipe.size, recipe.crop)
        posterior = vae.encode(images).latent_dist
        decoded = vae.decode(posterior.sample()).sample
        return _pixel_loss(decoded, images) + recipe.kl_weight * posterior.kl().mean()

    Stage("vae", work, {"vae": vae}, recipe.vae_lr, recipe).run(recipe.vae_steps, loss_at)
    with torch.no_grad():
        sample = vae.encode(scene_batch(5_000_000, 64, recipe.size)).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1.0 / sample.std()))
    log.info("vae: scaling factor %.5f", vae.config.scaling_factor)
    vae.save_pretrained(str(done))
    return vae


def train_taesd(recipe: Recipe, work: Path, vae: AutoencoderKL) -> AutoencoderTiny:
    """The encoder learns the VAE's scaled latent means, the decoder the images from them (as TAESD)."""
    done = work / "taesd"
    if (done / "config.json").is_file():
        return AutoencoderTiny.from_pretrained(str(done))
    tiny = _seeded_module(lambda: AutoencoderTiny(**dict(DEMO.tiny_vae)), recipe.seed + 2)
    scale = vae.config.scaling_factor
    vae.requires_grad_(False)

    def loss_at(step: int) -> torch.Tensor:
        images = scene_batch(2_000_000 + step * recipe.taesd_batch, recipe.taesd_batch, recipe.size, recipe.crop)
        with torch.no_grad():
            latents = vae.encode(images).latent_dist.mean * scale
        encoded = tiny.encoder(images)
        decoded = tiny.decoder(latents)
        return (encoded - latents).pow(2).mean() + _pixel_loss(decoded, images)

    Stage("taesd", work, {"taesd": tiny}, recipe.taesd_lr, recipe).run(recipe.taesd_steps, loss_at)
    tiny.save_pretrained(str(done))
    return tiny


def encode_scenes(recipe: Recipe, vae: AutoencoderKL) -> tuple[torch.Tensor, list[str]]:
    """The UNet stage's data: scaled latent means of `latent_scenes` scenes, with their captions."""
    latents, captions, batch = [], [], 64
    for first in tqdm(range(0, recipe.latent_scenes, batch), desc="encoding scenes", mininterval=5, ascii=True):
        count = min(batch, recipe.latent_scenes - first)
        with torch.no_grad():
            images = scene_batch(3_000_000 + first, count, recipe.size)
            latents.append(vae.encode(images).latent_dist.mean * vae.config.scaling_factor)
        captions += [scene(3_000_000 + s, recipe.size).caption for s in range(first, first + count)]
    return torch.cat(latents), captions


def _junk_word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9)))


def training_caption(caption: str, rng: random.Random, recipe: Recipe) -> str:
    if rng.random() < recipe.caption_dropout:
        # Empty or unknown words only: both are "no caption", so any negative prompt acts as one.
        return "" if rng.random() < 0.6 else _junk_word(rng)
    if rng.random() < recipe.junk_words:
        words = " ".join(_junk_word(rng) for _ in range(rng.randint(1, 3)))
        return f"{caption}, {words}" if rng.random() < 0.5 else f"{words} {caption}"
    return caption


def tokenize(tokenizer: CLIPTokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(
        captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def train_unet(
    recipe: Recipe, work: Path, vae: AutoencoderKL, tokenizer: CLIPTokenizer
) -> tuple[UNet2DConditionModel, CLIPTextModel]:
    """Epsilon prediction on Stable Diffusion's schedule, the text encoder trained alongside."""
    done = work / "unet"
    if (done / "config.json").is_file():
        return UNet2DConditionModel.from_pretrained(str(done)), CLIPTextModel.from_pretrained(str(work / "text"))
    latents, captions = encode_scenes(recipe, vae)
    unet = _seeded_module(lambda: UNet2DConditionModel(**dict(DEMO.unet)), recipe.seed + 3)
    text_config = text_encoder_config(DEMO, tokenizer.get_vocab())
    text_encoder = _seeded_module(lambda: CLIPTextModel(text_config), recipe.seed + 4)
    noise_schedule = DDPMScheduler.from_config(dict(DEMO.scheduler))

    def loss_at(step: int) -> torch.Tensor:
        rng = random.Random(recipe.seed * 7919 + step)
        picks = [rng.randrange(len(captions)) for _ in range(recipe.unet_batch)]
        x0 = latents[picks]
        ids = tokenize(tokenizer, [training_caption(captions[i], rng, recipe) for i in picks])
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_schedule.config.num_train_timesteps, (len(picks),))
        noisy = noise_schedule.add_noise(x0, noise, t)
        prediction = unet(noisy, t, text_encoder(ids)[0]).sample
        return (prediction - noise).pow(2).mean()

    modules = {"unet": unet, "text_encoder": text_encoder}
    Stage("unet", work, modules, recipe.unet_lr, recipe).run(recipe.unet_steps, loss_at)
    text_encoder.save_pretrained(str(work / "text"))
    unet.save_pretrained(str(done))
    return unet, text_encoder


def train(output: Path, work: Path, recipe: Recipe) -> Path:
    """All stages, then one diffusers folder at `output` with the AutoencoderTiny in taesd/."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "recipe.txt").write_text(repr(asdict(recipe)) + "\n")
    torch.manual_seed(recipe.seed)
    tokenizer_dir = work / "tokenizer-src"
    tokenizer_dir.mkdir(exist_ok=True)
    tokenizer = write_tokenizer(tokenizer_dir, DEMO.tokenizer_max_length, learn_merges(WORDS))
    vae = train_vae(recipe, work)
    tiny = train_taesd(recipe, work, vae)
    unet, text_encoder = train_unet(recipe, work, vae, tokenizer)
    components = Components(
        unet=unet,
        vae=vae,
        tiny_vae=tiny,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=EulerDiscreteScheduler.from_config(dict(DEMO.scheduler)),
    )
    if output.exists():
        shutil.rmtree(output)
    for module in (unet, vae, tiny, text_encoder):
        module.half()  # half the committed size; loading casts back to the configured dtype
    save_components(components, output)
    return output
