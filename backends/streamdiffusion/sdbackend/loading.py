"""Load a Stable Diffusion pipeline the one way the service knows, whatever the weights.

A local diffusers folder (the small random-weight model, a copied sd-turbo) and a hub id go
through the same from_pretrained call, so what the tests load is what production loads. Every
failure says what to do next, because the operator meets it in a Triton log at start-up.
No Triton imports: the model, the scripts and the tests all call this.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from diffusers import AutoencoderTiny, StableDiffusionPipeline

from sdconfig import Settings, resolve_model_path
from sdconfig.schema import ModelConfig

log = logging.getLogger(__name__)

PREPARE_TINY = "python scripts/prepare_model.py tiny --output models/tiny-sd"
RESTORE_DEMO = "git checkout -- models/demo-sd` (or retrain it: `python scripts/train_demo_model.py"
PREPARE_DOWNLOAD = "python scripts/prepare_model.py download <hub id> --output models/<name>"


class ModelLoadError(RuntimeError):
    """The weights named by the configuration cannot be loaded; the message says what to do."""


def resolve_device(model: ModelConfig) -> torch.device:
    """`auto` takes CUDA where torch sees it; an explicit `cuda` without one is an error, not a fallback."""
    if model.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if model.device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("model.device is cuda but torch sees no CUDA device; set model.device: auto or cpu")
    return torch.device(model.device)


def resolve_dtype(model: ModelConfig, device: torch.device) -> torch.dtype:
    """`auto`: float16 on CUDA (what sd-turbo is served in), float32 on the CPU (half is slow or missing there)."""
    if model.dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    dtype = torch.float16 if model.dtype == "float16" else torch.float32
    if dtype == torch.float16 and device.type == "cpu":
        log.warning("model.dtype float16 on the CPU is slow and some operators lack it; prefer dtype: auto")
    return dtype


def resolve_device_dtype(model: ModelConfig) -> tuple[torch.device, torch.dtype]:
    device = resolve_device(model)
    return device, resolve_dtype(model, device)


def _source(config_file: Path, model_id: str, key: str) -> tuple[str, bool]:
    """The path or hub id to load, and whether it is a local folder.

    A relative id that is not an existing folder beside the config file is taken as a hub id, but
    one that looks like a path (starts with . or names a models/ folder) is reported as missing.
    """
    source = resolve_model_path(config_file.resolve(), model_id)
    # Only a folder found from the config file counts: never one that happens to sit in the cwd.
    local = Path(source).is_absolute() and Path(source).is_dir()
    if not local and (Path(model_id).is_absolute() or model_id.startswith((".", "models/")) or model_id.count("/") > 1):
        where = Path(model_id) if Path(model_id).is_absolute() else config_file.parent / model_id
        hint = PREPARE_TINY if "tiny-sd" in model_id else RESTORE_DEMO if "demo-sd" in model_id else PREPARE_DOWNLOAD
        raise ModelLoadError(f"{key} {model_id!r}: no such folder ({where}); create it with `{hint}`")
    return source, local


def _hub_hint(model_id: str, key: str, local_files_only: bool) -> str:
    if local_files_only:
        return (
            f"{key} {model_id!r} is not a folder beside the config file and not in the local hub cache; "
            f"copy it with `{PREPARE_DOWNLOAD}` and point {key} at that folder, "
            "or set model.local_files_only: false to download it at start-up"
        )
    return f"{key} {model_id!r} could not be downloaded; check the id, the network and HF_TOKEN for gated models"


def _load_sd(source: str, local: bool, model: ModelConfig, dtype: torch.dtype) -> StableDiffusionPipeline:
    if local and not (Path(source) / "model_index.json").is_file():
        raise ModelLoadError(
            f"model.model_id {model.model_id!r} ({source}) is not a diffusers Stable Diffusion folder: "
            f"model_index.json is missing; recreate it with `{PREPARE_TINY}` or `{PREPARE_DOWNLOAD}`"
        )
    try:
        return StableDiffusionPipeline.from_pretrained(
            source,
            torch_dtype=dtype,
            safety_checker=None,
            requires_safety_checker=False,
            local_files_only=model.local_files_only,
        )
    except (OSError, ValueError) as exc:
        if local:
            raise ModelLoadError(f"model.model_id {model.model_id!r} ({source}) failed to load: {exc}") from exc
        raise ModelLoadError(f"{_hub_hint(model.model_id, 'model.model_id', model.local_files_only)} ({exc})") from exc


def load_tiny_vae(settings: Settings, config_file: Path, dtype: torch.dtype) -> AutoencoderTiny:
    """The AutoencoderTiny named by model.tiny_vae_id, on the CPU in `dtype`."""
    model = settings.model
    if not model.tiny_vae_id:
        raise ModelLoadError(
            "a variant sets use_tiny_vae but model.tiny_vae_id is empty; set it to a folder "
            "(models/tiny-sd/taesd) or a hub id (madebyollin/taesd), or set use_tiny_vae: false"
        )
    source, local = _source(config_file, model.tiny_vae_id, "model.tiny_vae_id")
    if local and not (Path(source) / "config.json").is_file():
        raise ModelLoadError(
            f"model.tiny_vae_id {model.tiny_vae_id!r} ({source}) has no config.json: not a diffusers model"
        )
    try:
        return AutoencoderTiny.from_pretrained(source, torch_dtype=dtype, local_files_only=model.local_files_only)
    except (OSError, ValueError) as exc:
        if local:
            raise ModelLoadError(f"model.tiny_vae_id {model.tiny_vae_id!r} ({source}) failed to load: {exc}") from exc
        hint = _hub_hint(model.tiny_vae_id, "model.tiny_vae_id", model.local_files_only)
        raise ModelLoadError(f"{hint} ({exc})") from exc


def load_pipeline(
    settings: Settings,
    config_file: Path,
    use_tiny_vae: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> StableDiffusionPipeline:
    """The pipeline of model.model_id on `device` in `dtype`, frozen for inference.

    `config_file` anchors relative model paths (they are relative to the YAML, not to the
    working directory). With `use_tiny_vae` the pipeline's VAE is the AutoencoderTiny of
    model.tiny_vae_id, which StreamDiffusion uses as it finds it in `pipe.vae`.
    """
    model = settings.model
    source, local = _source(config_file, model.model_id, "model.model_id")
    started = time.perf_counter()
    log.info("loading %s (%s) in %s", model.model_id, "folder" if local else "hub id", dtype)
    pipe = _load_sd(source, local, model, dtype)
    if use_tiny_vae:
        log.info("replacing the VAE by the AutoencoderTiny %s", model.tiny_vae_id)
        pipe.vae = load_tiny_vae(settings, config_file, dtype)
    log.info("moving the pipeline to %s", device)
    pipe = pipe.to(device=device, dtype=dtype)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.eval()
        module.requires_grad_(False)
    log.info("loaded %s in %.1f s", model.model_id, time.perf_counter() - started)
    return pipe
