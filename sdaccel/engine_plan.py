"""Which engines a build makes, with which optimization profiles, over which batches and sizes.

The plan is the manifest the build will write, worked out before TensorRT is touched, so it can
be printed (`--dry-run`) and compared with an existing folder without a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable

from sdaccel.engine_io import ENGINE_IO, resolve_shape
from sdaccel.export_info import ExportInfo
from sdbackend.engine_manifest import (
    ENGINE_KINDS,
    BatchRange,
    EngineEntry,
    EngineKind,
    Manifest,
    ModelDims,
    Platform,
    Precision,
    Profile,
    Shape,
    SizeRange,
)
from sdbackend.engine_needs import ModeNeeds

SIZE_MULTIPLE = 64
"""Image sides must be multiples of 64: the VAE divides by 8 and sd-turbo's UNet by 8 again."""
DEFAULT_MIN_SIZE = 256
DEFAULT_MAX_SIZE = 1024


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


def describe(manifest: Manifest) -> str:
    """One line per profile: engine, mode, batch min/opt/max and the first input's shapes."""
    lines = []
    for kind, entry in manifest.engines.items():
        for profile in entry.profiles:
            first = next(iter(profile.shapes))
            low, opt, high = profile.shapes[first]
            lines.append(
                f"  {kind:14} {profile.mode:8} batch {profile.batch.min}/{profile.batch.opt}/{profile.batch.max}"
                f"  {first} {low} / {opt} / {high}"
            )
    return "\n".join(lines)
