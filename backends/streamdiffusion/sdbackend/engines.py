"""Which TensorRT engines a configuration needs, how their folder is named, and whether one fits.

A TensorRT engine is only valid for the model, TensorRT version and GPU it was built on, and only
for the shapes its optimization profiles cover. Each engine folder therefore carries a
`manifest.json` recording all of that, and the model refuses, with every differing field named and
the commands that rebuild, to run engines that do not fit: running a stale engine gives wrong
pictures or crashes, and quietly falling back to PyTorch hides a slow service.

Pure: no torch, no tensorrt. The facts about the running machine (TensorRT version, GPU) come in
as a `Platform`, gathered by the build script and by `tensorrt_runner`.

Engines and their tensors (`B` batch, `H`x`W` image pixels, `h`x`w` = H/8 x W/8 latent,
`C` latent channels, `L` text tokens, `D` text embedding width):

    unet           sample [B,C,h,w] f, timestep [B] float32, encoder_hidden_states [B,L,D] -> noise_pred [B,C,h,w]
    vae_encoder    images [B,3,H,W] in [-1,1] -> latent_parameters [B,2C,h,w]: mean and log-variance of the
                   AutoencoderKL's latent distribution (before scaling_factor), so the runtime samples it with
                   the stream's own generator exactly as the PyTorch path does
    vae_decoder    latents [B,C,h,w] (already divided by scaling_factor) -> images [B,3,H,W] in [-1,1]
    taesd_encoder  images [B,3,H,W] -> latents [B,C,h,w]    (AutoencoderTiny, deterministic)
    taesd_decoder  latents [B,C,h,w] -> images [B,3,H,W]
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sdconfig import Mode, Settings, resolve_model_path

FORMAT = 1
"""Bumped when the manifest's meaning changes; engines of another format are rebuilt."""
MANIFEST_FILE = "manifest.json"
EXPORT_FILE = "export.json"
ONNX_OPSET = 17
SIZE_MULTIPLE = 64
"""Image sides must be multiples of 64: the VAE divides by 8 and sd-turbo's UNet by 8 again."""
DEFAULT_MIN_SIZE = 256
DEFAULT_MAX_SIZE = 1024

Precision = Literal["fp16", "fp32"]
EngineKind = Literal["unet", "vae_encoder", "vae_decoder", "taesd_encoder", "taesd_decoder"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("unet", "vae_encoder", "vae_decoder", "taesd_encoder", "taesd_decoder")
VaeKind = Literal["vae", "taesd"]
VAE_ENGINES: Mapping[VaeKind, tuple[EngineKind, EngineKind]] = {
    "vae": ("vae_encoder", "vae_decoder"),
    "taesd": ("taesd_encoder", "taesd_decoder"),
}

DENOISING_BATCH: Mapping[Mode, bool] = {"realtime": True, "canvas": False}
"""How each mode runs StreamDiffusion (sdbackend.generation): realtime advances every step of its
stream batch in one UNet call, canvas runs its steps one after another on one drawing."""

# A shape is a tuple of axes: ints are fixed, letters are filled in by `resolve_shape`.
Axis = int | str
BATCH_AXIS = "B"
SPATIAL_AXES = ("H", "W", "h", "w")


@dataclass(frozen=True)
class EngineIO:
    inputs: tuple[tuple[str, tuple[Axis, ...]], ...]
    outputs: tuple[tuple[str, tuple[Axis, ...]], ...]

    @property
    def input_names(self) -> list[str]:
        return [name for name, _ in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [name for name, _ in self.outputs]


_IMAGE: tuple[Axis, ...] = ("B", 3, "H", "W")
_LATENT: tuple[Axis, ...] = ("B", "C", "h", "w")
ENGINE_IO: Mapping[EngineKind, EngineIO] = {
    "unet": EngineIO(
        inputs=(("sample", _LATENT), ("timestep", ("B",)), ("encoder_hidden_states", ("B", "L", "D"))),
        outputs=(("noise_pred", _LATENT),),
    ),
    "vae_encoder": EngineIO(inputs=(("images", _IMAGE),), outputs=(("latent_parameters", ("B", "2C", "h", "w")),)),
    "vae_decoder": EngineIO(inputs=(("latents", _LATENT),), outputs=(("images", _IMAGE),)),
    "taesd_encoder": EngineIO(inputs=(("images", _IMAGE),), outputs=(("latents", _LATENT),)),
    "taesd_decoder": EngineIO(inputs=(("latents", _LATENT),), outputs=(("images", _IMAGE),)),
}


class EngineMismatchError(RuntimeError):
    """No engine folder fits the configuration; the message names each differing field and how to rebuild."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelDims(_Frozen):
    """The model facts that fix the engines' tensor shapes besides batch and resolution."""

    latent_channels: int = 4
    embedding_dim: int
    text_length: int = 77
    vae_scale_factor: int = 8


class SizeRange(_Frozen):
    """Image sides (pixels) an engine accepts, both height and width; `opt` is what it is tuned for."""

    min: int
    max: int
    opt_height: int
    opt_width: int

    def covers(self, height: int, width: int) -> bool:
        return all(self.min <= side <= self.max for side in (height, width))


class BatchRange(_Frozen):
    min: int = Field(ge=1)
    opt: int = Field(ge=1)
    max: int = Field(ge=1)

    def covers(self, other: BatchRange) -> bool:
        return self.min <= other.min and other.max <= self.max

    def text(self) -> str:
        return f"{self.min}..{self.max}"


Shape = tuple[int, ...]


class Profile(_Frozen):
    """One optimization profile: the mode it serves and min/opt/max shapes of every input."""

    mode: Mode
    batch: BatchRange
    shapes: dict[str, tuple[Shape, Shape, Shape]]


class GraphInfo(_Frozen):
    """One exported ONNX graph."""

    file: str
    sha256: str
    inputs: list[str]
    outputs: list[str]
    data_file: str | None = None
    """Weights stored beside the graph (ONNX's external data) when they pass protobuf's 2 GB."""


class ExportInfo(_Frozen):
    """`export.json` in an ONNX folder: what was exported, from which model, for which sizes."""

    format: int = FORMAT
    model_id: str
    model_fingerprint: str | None
    tiny_vae_id: str | None = None
    tiny_vae_fingerprint: str | None = None
    dtype: Literal["float16", "float32"]
    opset: int = ONNX_OPSET
    min_size: int
    max_size: int
    dims: ModelDims
    graphs: dict[EngineKind, GraphInfo]
    vae_encoder_output: str = "latent_parameters = concat(mean, logvar) of the latent distribution, unscaled"


class EngineEntry(_Frozen):
    file: str
    onnx_sha256: str
    inputs: list[str]
    outputs: list[str]
    profiles: list[Profile]

    def profile_index(self, mode: Mode) -> int | None:
        return next((i for i, p in enumerate(self.profiles) if p.mode == mode), None)


class GpuInfo(_Frozen):
    name: str
    compute_capability: str


class Platform(_Frozen):
    """The machine engines are built on or run on."""

    tensorrt_version: str
    gpu: GpuInfo


class Manifest(_Frozen):
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


# --------------------------------------------------------------------------------- shapes


def resolve_shape(axes: Sequence[Axis], dims: ModelDims, batch: int, height: int, width: int) -> Shape:
    scale = dims.vae_scale_factor
    values: dict[str, int] = {
        "B": batch,
        "H": height,
        "W": width,
        "h": height // scale,
        "w": width // scale,
        "C": dims.latent_channels,
        "2C": 2 * dims.latent_channels,
        "L": dims.text_length,
        "D": dims.embedding_dim,
    }
    return tuple(axis if isinstance(axis, int) else values[axis] for axis in axes)


def dynamic_axes(kind: EngineKind) -> dict[str, dict[int, str]]:
    """ONNX dynamic axes of every input and output: batch and the spatial sides."""
    io = ENGINE_IO[kind]
    return {
        name: {i: str(axis) for i, axis in enumerate(axes) if axis == BATCH_AXIS or axis in SPATIAL_AXES}
        for name, axes in (*io.inputs, *io.outputs)
    }


def profile_shapes(
    kind: EngineKind, dims: ModelDims, batch: BatchRange, sizes: SizeRange
) -> dict[str, tuple[Shape, Shape, Shape]]:
    return {
        name: (
            resolve_shape(axes, dims, batch.min, sizes.min, sizes.min),
            resolve_shape(axes, dims, batch.opt, sizes.opt_height, sizes.opt_width),
            resolve_shape(axes, dims, batch.max, sizes.max, sizes.max),
        )
        for name, axes in ENGINE_IO[kind].inputs
    }


def check_sizes(min_size: int, max_size: int, height: int, width: int) -> SizeRange:
    """The declared resolution range, refused with a reason when it cannot serve the configuration."""
    for name, value in (("min size", min_size), ("max size", max_size)):
        if value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
            raise ValueError(f"{name} {value} must be a positive multiple of {SIZE_MULTIPLE}")
    if min_size > max_size:
        raise ValueError(f"min size {min_size} is larger than max size {max_size}")
    sizes = SizeRange(min=min_size, max=max_size, opt_height=height, opt_width=width)
    if not sizes.covers(height, width):
        raise ValueError(
            f"the range {min_size}..{max_size} does not hold pipeline.width x height = {width}x{height}; widen it"
        )
    return sizes


# ------------------------------------------------------------------------- what a mode needs


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


# ----------------------------------------------------------------------------- the build plan


def plan_manifest(
    export: ExportInfo,
    needs: Iterable[ModeNeeds],
    platform: Platform,
    precision: Precision,
    sizes: SizeRange,
) -> Manifest:
    """The manifest a build for these needs will write: one profile per mode in every engine it uses."""
    profiles: dict[EngineKind, list[Profile]] = {}
    for need in needs:
        for kind, batch in need.engine_batches().items():
            profiles.setdefault(kind, []).append(
                Profile(mode=need.mode, batch=batch, shapes=profile_shapes(kind, export.dims, batch, sizes))
            )
    engines: dict[EngineKind, EngineEntry] = {}
    for kind in ENGINE_KINDS:
        if kind not in profiles:
            continue
        graph = export.graphs.get(kind)
        if graph is None:
            have = ", ".join(export.graphs) or "none"
            raise ValueError(f"the configuration needs the {kind} graph but the ONNX folder has {have}; export again")
        engines[kind] = EngineEntry(
            file=f"{kind}.engine",
            onnx_sha256=graph.sha256,
            inputs=graph.inputs,
            outputs=graph.outputs,
            profiles=profiles[kind],
        )
    uses_taesd = any(kind.startswith("taesd") for kind in engines)
    return Manifest(
        model_id=export.model_id,
        model_fingerprint=export.model_fingerprint,
        tiny_vae_id=export.tiny_vae_id if uses_taesd else None,
        tiny_vae_fingerprint=export.tiny_vae_fingerprint if uses_taesd else None,
        precision=precision,
        tensorrt_version=platform.tensorrt_version,
        gpu=platform.gpu,
        resolution=sizes,
        dims=export.dims,
        onnx_opset=export.opset,
        engines=engines,
    )


# --------------------------------------------------------------------- does a folder fit?


@dataclass(frozen=True)
class RuntimeNeeds:
    """What the running model requires of an engine folder."""

    model_id: str
    model_fingerprint: str | None
    tiny_vae_id: str | None
    tiny_vae_fingerprint: str | None
    precision: Precision
    platform: Platform
    mode: ModeNeeds
    engine_dir: Path
    dims: ModelDims | None = None


def resolve_engine_dir(settings: Settings, config_file: Path) -> Path:
    """model.engine_dir, relative to the config file like the model paths."""
    path = Path(settings.model.engine_dir)
    return path if path.is_absolute() else config_file.resolve().parent / path


def runtime_needs(
    settings: Settings,
    config_file: Path,
    mode: Mode,
    platform: Platform,
    dims: ModelDims | None = None,
) -> RuntimeNeeds:
    """What the `mode` model, as configured, asks of an engine folder on this platform."""
    model = settings.model
    tiny_path = resolve_model_path(config_file, model.tiny_vae_id) if model.tiny_vae_id else None
    return RuntimeNeeds(
        model_id=model.model_id,
        model_fingerprint=folder_fingerprint(Path(resolve_model_path(config_file, model.model_id)), MODEL_SUBFOLDERS),
        tiny_vae_id=model.tiny_vae_id,
        tiny_vae_fingerprint=folder_fingerprint(Path(tiny_path)) if tiny_path else None,
        precision=precision_for(settings),
        platform=platform,
        mode=mode_needs(settings, mode),
        engine_dir=resolve_engine_dir(settings, config_file),
        dims=dims,
    )


@dataclass(frozen=True)
class Mismatch:
    field: str
    built: object
    needed: object

    def __str__(self) -> str:
        return f"{self.field}: engines have {self.built!r}, this configuration needs {self.needed!r}"


def mismatches(manifest: Manifest, needs: RuntimeNeeds, folder: Path | None = None) -> list[Mismatch]:
    """Every field in which `manifest` fails `needs`; empty when the engines fit.

    Identity fields must be equal; ranges must cover what the mode asks. With `folder`, the
    engine files must also be there.
    """
    found: list[Mismatch] = []

    def same(field: str, built: object, needed: object) -> None:
        if built != needed:
            found.append(Mismatch(field, built, needed))

    same("format", manifest.format, FORMAT)
    same("model_id", manifest.model_id, needs.model_id)
    if manifest.model_fingerprint and needs.model_fingerprint:
        same("model_fingerprint", manifest.model_fingerprint, needs.model_fingerprint)
    mode = needs.mode
    if mode.vae == "taesd":
        same("tiny_vae_id", manifest.tiny_vae_id, needs.tiny_vae_id)
        if manifest.tiny_vae_fingerprint and needs.tiny_vae_fingerprint:
            same("tiny_vae_fingerprint", manifest.tiny_vae_fingerprint, needs.tiny_vae_fingerprint)
    same("precision", manifest.precision, needs.precision)
    same("tensorrt_version", manifest.tensorrt_version, needs.platform.tensorrt_version)
    same("gpu.compute_capability", manifest.gpu.compute_capability, needs.platform.gpu.compute_capability)
    if needs.dims is not None:
        same("dims", manifest.dims.model_dump(), needs.dims.model_dump())
    if not manifest.resolution.covers(mode.height, mode.width):
        res = manifest.resolution
        found.append(Mismatch("resolution", f"{res.min}..{res.max}", f"{mode.width}x{mode.height}"))
    for kind, batch in mode.engine_batches().items():
        entry = manifest.engines.get(kind)
        if entry is None:
            found.append(Mismatch(f"engines.{kind}", "absent", f"present for {mode.mode}"))
            continue
        index = entry.profile_index(mode.mode)
        if index is None:
            modes = [p.mode for p in entry.profiles]
            found.append(Mismatch(f"engines.{kind}.profiles", modes, f"a {mode.mode} profile"))
        elif not entry.profiles[index].batch.covers(batch):
            found.append(
                Mismatch(f"engines.{kind}.{mode.mode}.batch", entry.profiles[index].batch.text(), batch.text())
            )
        if folder is not None and not (folder / entry.file).is_file():
            found.append(Mismatch(f"engines.{kind}.file", f"{entry.file} missing", "the file"))
    return found


def notes(manifest: Manifest, needs: RuntimeNeeds) -> list[str]:
    """Differences TensorRT tolerates but an operator should see in the log."""
    if manifest.gpu.name != needs.platform.gpu.name:
        return [
            f"engines were built on {manifest.gpu.name!r} and run on {needs.platform.gpu.name!r} "
            f"(same compute capability {manifest.gpu.compute_capability}); rebuild on this GPU for best speed"
        ]
    return []


def read_manifest(folder: Path) -> Manifest:
    return Manifest.model_validate_json((folder / MANIFEST_FILE).read_text(encoding="utf-8"))


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = folder / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_export_info(onnx_dir: Path) -> ExportInfo:
    path = onnx_dir / EXPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {EXPORT_FILE}; export the ONNX graphs first (scripts/export_onnx.py)")
    return ExportInfo.model_validate_json(path.read_text(encoding="utf-8"))


def write_export_info(onnx_dir: Path, info: ExportInfo) -> Path:
    path = onnx_dir / EXPORT_FILE
    path.write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class EngineFolder:
    path: Path
    manifest: Manifest
    notes: tuple[str, ...]

    def engine_path(self, kind: EngineKind) -> Path:
        return self.path / self.manifest.engines[kind].file

    def profile_index(self, kind: EngineKind, mode: Mode) -> int:
        index = self.manifest.engines[kind].profile_index(mode)
        if index is None:
            raise EngineMismatchError(f"{self.path}: {kind} has no {mode} profile")
        return index


def rebuild_commands(config_file: Path | str, engine_dir: Path | str, model_id: str) -> str:
    onnx_dir = Path(engine_dir) / "onnx" / model_slug(model_id)
    return (
        f"  python scripts/export_onnx.py --config {config_file} --output {onnx_dir}\n"
        f"  python scripts/build_engines.py --config {config_file} --onnx {onnx_dir} --engine-dir {engine_dir}"
    )


def find_engine_folder(engine_dir: Path, needs: RuntimeNeeds, config_file: Path | str) -> EngineFolder:
    """The newest folder under `engine_dir` whose manifest fits `needs`, or an error that says why none does."""
    candidates = sorted(
        (p for p in engine_dir.glob(f"*/{MANIFEST_FILE}") if p.is_file()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    report: list[str] = []
    for manifest_path in candidates:
        folder = manifest_path.parent
        try:
            manifest = read_manifest(folder)
        except ValueError as exc:
            report.append(f"  {folder}: unreadable manifest ({str(exc).splitlines()[0]})")
            continue
        problems = mismatches(manifest, needs, folder)
        if not problems:
            return EngineFolder(path=folder, manifest=manifest, notes=tuple(notes(manifest, needs)))
        report.append(f"  {folder}:")
        report.extend(f"    - {problem}" for problem in problems)
    where = "\n".join(report) if report else f"  no engine folder (with {MANIFEST_FILE}) under {engine_dir}"
    platform = needs.platform
    raise EngineMismatchError(
        f"model.acceleration is tensorrt but no TensorRT engines fit the {needs.mode.mode} model "
        f"({needs.model_id}, {needs.precision}, {needs.mode.width}x{needs.mode.height}, "
        f"TensorRT {platform.tensorrt_version}, {platform.gpu.name} sm{platform.gpu.compute_capability}):\n"
        f"{where}\n"
        f"Build engines for this configuration on this machine:\n"
        f"{rebuild_commands(config_file, engine_dir, needs.model_id)}\n"
        "or set model.acceleration: none to serve with PyTorch."
    )


# ----------------------------------------------------------------------- small helpers


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


MODEL_SUBFOLDERS = ("unet", "vae")
"""The parts of a Stable Diffusion folder that engines are built from (the text encoder stays in PyTorch)."""


def file_sha256(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()
