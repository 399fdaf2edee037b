"""What an engine folder records, how it is named, and `manifest.json` read and written.

A TensorRT engine is only valid for the model, TensorRT version and GPU it was built on, and only
for the shapes its optimization profiles cover, so every engine folder carries a manifest of all
that: the build writes it, the runtime checks it before loading anything. Pure: no torch, no
tensorrt; the facts about the machine come in as a `Platform`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from sdconfig import Mode, Settings

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

FORMAT = 1
"""Bumped when the manifest's meaning changes; engines of another format are rebuilt."""
MANIFEST_FILE = "manifest.json"

Precision = Literal["fp16", "fp32"]
EngineKind = Literal["unet", "vae_encoder", "vae_decoder", "taesd_encoder", "taesd_decoder"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("unet", "vae_encoder", "vae_decoder", "taesd_encoder", "taesd_decoder")
VaeKind = Literal["vae", "taesd"]
VAE_ENGINES: Mapping[VaeKind, tuple[EngineKind, EngineKind]] = {
    "vae": ("vae_encoder", "vae_decoder"),
    "taesd": ("taesd_encoder", "taesd_decoder"),
}

MODEL_SUBFOLDERS = ("unet", "vae")
"""The parts of a Stable Diffusion folder that engines are built from (the text encoder stays in PyTorch)."""

Shape = tuple[int, ...]


class FrozenRecord(BaseModel):
    """A JSON record: unknown fields refused, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelDims(FrozenRecord):
    """The model facts that fix the engines' tensor shapes besides batch and resolution."""

    latent_channels: int = 4
    embedding_dim: int
    text_length: int = 77
    vae_scale_factor: int = 8


def model_dims(pipe: StableDiffusionPipeline) -> ModelDims:
    """The shapes the engines are built around, read from the loaded pipeline."""
    return ModelDims(
        latent_channels=int(pipe.unet.config.in_channels),
        embedding_dim=int(pipe.unet.config.cross_attention_dim),
        text_length=int(pipe.tokenizer.model_max_length),
        vae_scale_factor=int(pipe.vae_scale_factor),
    )


class SizeRange(FrozenRecord):
    """Image sides (pixels) an engine accepts, both height and width; `opt` is what it is tuned for."""

    min: int
    max: int
    opt_height: int
    opt_width: int

    def covers(self, height: int, width: int) -> bool:
        return all(self.min <= side <= self.max for side in (height, width))


class BatchRange(FrozenRecord):
    min: int = Field(ge=1)
    opt: int = Field(ge=1)
    max: int = Field(ge=1)

    def covers(self, other: BatchRange) -> bool:
        return self.min <= other.min and other.max <= self.max

    def text(self) -> str:
        return f"{self.min}..{self.max}"


class Profile(FrozenRecord):
    """One optimization profile: the mode it serves and min/opt/max shapes of every input."""

    mode: Mode
    batch: BatchRange
    shapes: dict[str, tuple[Shape, Shape, Shape]]


class EngineEntry(FrozenRecord):
    file: str
    onnx_sha256: str
    inputs: list[str]
    outputs: list[str]
    profiles: list[Profile]

    def profile_index(self, mode: Mode) -> int | None:
        return next((i for i, p in enumerate(self.profiles) if p.mode == mode), None)


class GpuInfo(FrozenRecord):
    name: str
    compute_capability: str


class Platform(FrozenRecord):
    """The machine engines are built on or run on."""

    tensorrt_version: str
    gpu: GpuInfo


class Manifest(FrozenRecord):
    """`manifest.json` of an engine folder. `built_at` and `build_seconds` are informative only."""

    format: int = FORMAT
    model_id: str
    model_fingerprint: str | None
    tiny_vae_id: str | None
    tiny_vae_fingerprint: str | None
    precision: Precision
    tensorrt_version: str
    gpu: GpuInfo
    resolution: SizeRange
    dims: ModelDims
    onnx_opset: int
    engines: dict[EngineKind, EngineEntry]
    built_at: str = ""
    build_seconds: dict[str, float] = Field(default_factory=dict)

    def identity(self) -> str:
        """A digest of everything that decides whether the engines fit (not when or how fast they were built)."""
        data = self.model_dump(mode="json", exclude={"built_at", "build_seconds"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def folder_name(self) -> str:
        """`<model>--<precision>--<min>-<max>px--trt<version>--sm<cc>--<digest>`: readable, unique per plan."""
        cc = self.gpu.compute_capability.replace(".", "")
        res = self.resolution
        parts = (
            model_slug(self.model_id),
            self.precision,
            f"{res.min}-{res.max}px",
            f"trt{self.tensorrt_version}",
            f"sm{cc}",
            self.identity()[:10],
        )
        return "--".join(parts)


def read_manifest(folder: Path) -> Manifest:
    return Manifest.model_validate_json((folder / MANIFEST_FILE).read_text(encoding="utf-8"))


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = folder / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def resolve_engine_dir(settings: Settings, config_file: Path) -> Path:
    """model.engine_dir, relative to the config file like the model paths."""
    path = Path(settings.model.engine_dir)
    return path if path.is_absolute() else config_file.resolve().parent / path


def model_slug(model_id: str) -> str:
    """A folder-safe short name: the last part of a path or hub id."""
    tail = model_id.rstrip("/").split("/")[-1] or "model"
    return re.sub(r"[^a-z0-9._-]+", "-", tail.lower()).strip("-.") or "model"


_FINGERPRINT_SAMPLE = 1 << 20


def folder_fingerprint(folder: Path, subfolders: Sequence[str] = ("",)) -> str | None:
    """A cheap digest of a diffusers folder: each config file, each weight file's size and its first and
    last MiB. Catches a different architecture or different weights without reading gigabytes at start-up.
    None when the folder does not exist (a hub id; then the id alone is compared).
    """
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for sub in subfolders:
        base = folder / sub if sub else folder
        if not base.is_dir():
            continue
        for path in sorted(base.iterdir()):
            if not path.is_file():
                continue
            rel = path.relative_to(folder).as_posix()
            if path.suffix == ".json":
                digest.update(f"{rel}\0".encode() + path.read_bytes())
            elif path.suffix in (".safetensors", ".bin"):
                size = path.stat().st_size
                digest.update(f"{rel}\0{size}\0".encode())
                with path.open("rb") as handle:
                    digest.update(handle.read(_FINGERPRINT_SAMPLE))
                    handle.seek(max(0, size - _FINGERPRINT_SAMPLE))
                    digest.update(handle.read(_FINGERPRINT_SAMPLE))
    return digest.hexdigest()
