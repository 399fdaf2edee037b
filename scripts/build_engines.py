#!/usr/bin/env python3
"""Build TensorRT 10 engines from an ONNX export, for this configuration, on this GPU.

    python scripts/build_engines.py --config config.yaml --onnx engines/onnx/sd-turbo [--engine-dir engines]
        [--min-size 256 --max-size 1024] [--max-steps N] [--precision fp16|fp32] [--workspace-gib 8] [--dry-run]

Every engine gets one optimization profile per model variant that uses it, min/opt/max over:
- batch: UNet rows per call (realtime: len(t_index_list) x the streams one call may batch,
  realtime.pipeline.max_batch, doubled for cfg_type full, +1 for initialize; canvas: one step of
  up to canvas.pipeline.max_batch drawings, with the same guidance factor); VAE: 1..max_batch images;
- image sides: --min-size..--max-size (default: the range declared at export), tuned for
  pipeline.width x pipeline.height.
--max-steps plans for requests that send longer t_index_list than configured.

The engines go to <engine-dir>/<model>--<precision>--<min>-<max>px--trt<version>--sm<cc>--<digest>/
with a manifest.json that the model checks at start (sdbackend.engines). An existing folder with
the same plan is kept unless --force. --dry-run prints the plan and builds nothing (no TensorRT needed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "backends" / "streamdiffusion"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from sdbackend.engines import (  # noqa: E402
    MODEL_SUBFOLDERS,
    EngineEntry,
    ExportInfo,
    GpuInfo,
    Manifest,
    Platform,
    Precision,
    check_sizes,
    file_sha256,
    folder_fingerprint,
    mode_needs,
    plan_manifest,
    precision_for,
    read_export_info,
    read_manifest,
    resolve_engine_dir,
    write_manifest,
)
from sdconfig import MODES, ConfigError, Settings, config_path, load_settings, resolve_model_path  # noqa: E402


def say(message: str) -> None:
    print(f"[build] {message}", flush=True)


class BuildError(RuntimeError):
    pass


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


def describe(manifest: Manifest) -> str:
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


def existing_build(folder: Path, manifest: Manifest) -> bool:
    if not (folder / "manifest.json").is_file():
        return False
    try:
        built = read_manifest(folder)
    except ValueError:
        return False
    complete = all((folder / entry.file).is_file() for entry in built.engines.values())
    return complete and built.identity() == manifest.identity()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="the YAML config (default: SD_CONFIG or config.yaml)")
    parser.add_argument("--onnx", type=Path, required=True, help="the folder scripts/export_onnx.py wrote")
    parser.add_argument("--engine-dir", type=Path, default=None, help="default: model.engine_dir of the config")
    parser.add_argument("--min-size", type=int, default=None, help="default: the export's declared range")
    parser.add_argument("--max-size", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=None, help="plan the UNet for up to this many steps")
    parser.add_argument("--precision", choices=["fp16", "fp32"], default=None, help="default: from model.dtype")
    parser.add_argument("--workspace-gib", type=float, default=8.0)
    parser.add_argument("--force", action="store_true", help="rebuild even if the folder is complete")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; build nothing")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    config_file = (args.config or config_path()).resolve()
    onnx_dir = args.onnx.resolve()
    try:
        settings = load_settings(config_file)
        export = read_export_info(onnx_dir)
        check_export(export, onnx_dir, settings, config_file)
        pipeline = settings.pipeline
        min_size = args.min_size if args.min_size is not None else export.min_size
        max_size = args.max_size if args.max_size is not None else export.max_size
        if min_size < export.min_size or max_size > export.max_size:
            raise BuildError(
                f"sizes {min_size}..{max_size} leave the range declared at export, {export.min_size}..{export.max_size}"
            )
        sizes = check_sizes(min_size, max_size, pipeline.height, pipeline.width)
        needs = [mode_needs(settings, mode, args.max_steps) for mode in MODES]
        precision: Precision = args.precision or precision_for(settings)
        if args.dry_run:
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
    if args.dry_run:
        print(json.dumps(manifest.model_dump(mode="json"), indent=2))
        return 0

    engine_dir = (args.engine_dir or resolve_engine_dir(settings, config_file)).resolve()
    folder = engine_dir / manifest.folder_name()
    if existing_build(folder, manifest) and not args.force:
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
            build_engine(trt, onnx_path, folder / entry.file, entry, precision, args.workspace_gib)
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


if __name__ == "__main__":
    sys.exit(main())
