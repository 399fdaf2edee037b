"""Build TensorRT 10 engines from an ONNX export, for one configuration, on this GPU.

Engines are valid only on the TensorRT version and GPU that built them, so they are built where
they run, into a folder whose manifest the runtime checks. `tensorrt` is imported only to build:
the plan (`--dry-run`) needs neither TensorRT nor a GPU. `scripts/build_engines.py` is the
command line over `run_build`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdaccel.engine_plan import check_sizes, describe, plan_manifest
from sdaccel.export_info import ExportInfo, file_sha256, read_export_info
from sdbackend.engine_manifest import (
    MANIFEST_FILE,
    MODEL_SUBFOLDERS,
    EngineEntry,
    GpuInfo,
    Manifest,
    Platform,
    Precision,
    folder_fingerprint,
    read_manifest,
    resolve_engine_dir,
    write_manifest,
)
from sdbackend.engine_needs import mode_needs, precision_for
from sdconfig import MODES, ConfigError, Settings, load_settings, resolve_model_path


@dataclass(frozen=True)
class BuildRequest:
    """What to build from which export; None takes the default from the config or the export."""

    config_file: Path
    onnx_dir: Path
    engine_dir: Path | None = None
    min_size: int | None = None
    max_size: int | None = None
    max_steps: int | None = None
    precision: Precision | None = None
    workspace_gib: float = 8.0
    force: bool = False
    dry_run: bool = False


class BuildError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[build] {message}", flush=True)


def check_export(export: ExportInfo, onnx_dir: Path, settings: Settings, config_file: Path) -> None:
    """The ONNX files are the configured model's, unchanged since export."""
    model = settings.model
    if export.model_id != model.model_id:
        raise BuildError(f"{onnx_dir} was exported from {export.model_id!r}, the config names {model.model_id!r}")
    current = folder_fingerprint(Path(resolve_model_path(config_file, model.model_id)), MODEL_SUBFOLDERS)
    if export.model_fingerprint and current and current != export.model_fingerprint:
        raise BuildError(f"{model.model_id} changed since {onnx_dir} was exported; export again")
    for kind, graph in export.graphs.items():
        files = [onnx_dir / graph.file] + ([onnx_dir / graph.data_file] if graph.data_file else [])
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise BuildError(f"{kind}: missing {', '.join(missing)}; export again")
        if file_sha256(files) != graph.sha256:
            raise BuildError(f"{kind}: {graph.file} differs from what export.json recorded; export again")


def tensorrt_platform() -> tuple[Any, Platform]:
    """The tensorrt module and the machine it builds for."""
    import torch

    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BuildError(
            "TensorRT 10 is not installed here (pip install tensorrt); engines are built on the GPU machine "
            "that will run them. --dry-run prints the plan without it."
        ) from exc

    if not torch.cuda.is_available():
        raise BuildError("TensorRT engines are built on the GPU they will run on, and torch sees no CUDA device")
    major, minor = torch.cuda.get_device_capability(0)
    gpu = GpuInfo(name=torch.cuda.get_device_name(0), compute_capability=f"{major}.{minor}")
    return trt, Platform(tensorrt_version=str(trt.__version__), gpu=gpu)


def build_engine(
    trt: Any, onnx_path: Path, engine_path: Path, entry: EngineEntry, precision: Precision, workspace_gib: float
) -> None:
    """ONNX -> serialized engine with TensorRT 10: OnnxParser into an explicit-batch network, one profile per mode."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Explicit batch is the only kind of network in TensorRT 10; the flag is kept where it still exists.
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(1 << int(flag) if flag is not None else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # reads external weights beside the file
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"{onnx_path}: TensorRT's ONNX parser failed:\n{errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    for profile_spec in entry.profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profile_spec.shapes.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"{onnx_path}: TensorRT could not build an engine (see its log above)")
    engine_path.write_bytes(bytes(serialized))


def existing_build(folder: Path, manifest: Manifest) -> bool:
    """`folder` already holds every engine of this plan."""
    if not (folder / MANIFEST_FILE).is_file():
        return False
    try:
        built = read_manifest(folder)
    except ValueError:
        return False
    complete = all((folder / entry.file).is_file() for entry in built.engines.values())
    return complete and built.identity() == manifest.identity()


def run_build(request: BuildRequest) -> int:
    """Plan, then build every engine and write the manifest; the exit status: 0 done, 1 failed, 2 refused."""
    config_file = request.config_file
    onnx_dir = request.onnx_dir
    try:
        settings = load_settings(config_file)
        export = read_export_info(onnx_dir)
        check_export(export, onnx_dir, settings, config_file)
        pipeline = settings.pipeline
        min_size = request.min_size if request.min_size is not None else export.min_size
        max_size = request.max_size if request.max_size is not None else export.max_size
        if min_size < export.min_size or max_size > export.max_size:
            raise BuildError(
                f"sizes {min_size}..{max_size} leave the range declared at export, {export.min_size}..{export.max_size}"
            )
        sizes = check_sizes(min_size, max_size, pipeline.height, pipeline.width)
        needs = [mode_needs(settings, mode, request.max_steps) for mode in MODES]
        precision: Precision = request.precision or precision_for(settings)
        if request.dry_run:
            unknown = GpuInfo(name="(dry run)", compute_capability="0.0")
            trt, platform = None, Platform(tensorrt_version="(dry run)", gpu=unknown)
        else:
            trt, platform = tensorrt_platform()
        manifest = plan_manifest(export, needs, platform, precision, sizes)
    except (ConfigError, ValueError, FileNotFoundError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    say(f"{export.model_id}: {precision}, sides {sizes.min}..{sizes.max} (tuned {sizes.opt_width}x{sizes.opt_height})")
    say(f"TensorRT {platform.tensorrt_version} on {platform.gpu.name} (sm {platform.gpu.compute_capability})")
    say("profiles (min/opt/max):\n" + describe(manifest))
    if request.dry_run:
        print(json.dumps(manifest.model_dump(mode="json"), indent=2))
        return 0

    engine_dir = (request.engine_dir or resolve_engine_dir(settings, config_file)).resolve()
    folder = engine_dir / manifest.folder_name()
    if existing_build(folder, manifest) and not request.force:
        say(f"{folder} already holds these engines (--force rebuilds)")
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    total = time.perf_counter()
    for number, (kind, entry) in enumerate(manifest.engines.items(), start=1):
        say(f"[{number}/{len(manifest.engines)}] building {kind} from {export.graphs[kind].file} ...")
        started = time.perf_counter()
        try:
            onnx_path = onnx_dir / export.graphs[kind].file
            build_engine(trt, onnx_path, folder / entry.file, entry, precision, request.workspace_gib)
        except BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        seconds[kind] = round(time.perf_counter() - started, 1)
        size = (folder / entry.file).stat().st_size / 2**20
        say(f"[{number}/{len(manifest.engines)}] {kind}: {entry.file} {size:.0f} MiB in {seconds[kind]:.1f} s")
    built = manifest.model_copy(
        update={"built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "build_seconds": seconds}
    )
    write_manifest(folder, built)
    say(f"done in {time.perf_counter() - total:.1f} s: {folder}")
    return 0
