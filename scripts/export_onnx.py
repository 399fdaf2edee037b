#!/usr/bin/env python3
"""Export the configured model's UNet and VAEs to ONNX, the input of scripts/build_engines.py.

    python scripts/export_onnx.py --config config.yaml --output engines/onnx/sd-turbo [--min-size 256 --max-size 1024]

Loads the model the way the service does (sdbackend.loading, model.model_id and model.tiny_vae_id
of the config), then writes into --output:

    unet.onnx                          always
    vae_encoder.onnx, vae_decoder.onnx where a variant uses the full VAE (use_tiny_vae: false)
    taesd_encoder.onnx, taesd_decoder.onnx where a variant uses the AutoencoderTiny
    export.json                        model id and fingerprint, dtype, opset, declared size range, hashes

Batch and image sides are dynamic axes; --min-size/--max-size (pixels, multiples of 64) declare
the range the engines will be built for. On a CUDA machine the graphs are traced in float16 on
the GPU (what TensorRT builds fp16 engines from); elsewhere in float32 on the CPU. --check runs
every graph with onnxruntime and prints its largest difference from PyTorch (float32 only).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "backends" / "streamdiffusion"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import torch  # noqa: E402

from sdbackend.engines import (  # noqa: E402
    DEFAULT_MAX_SIZE,
    DEFAULT_MIN_SIZE,
    MODEL_SUBFOLDERS,
    ExportInfo,
    check_sizes,
    folder_fingerprint,
    model_slug,
    write_export_info,
)
from sdbackend.loading import load_pipeline, load_tiny_vae  # noqa: E402
from sdbackend.onnx_export import ModelParts, export_model, model_dims, sample_inputs  # noqa: E402
from sdconfig import MODES, ConfigError, Settings, config_path, load_settings, resolve_model_path  # noqa: E402


def say(message: str) -> None:
    print(f"[export] {message}", flush=True)


def pick_device_dtype(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    chosen = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    if dtype == "auto":
        return chosen, torch.float16 if chosen.type == "cuda" else torch.float32
    return chosen, getattr(torch, dtype)


def load_parts(settings: Settings, config_file: Path, device: torch.device, dtype: torch.dtype) -> ModelParts:
    """The UNet, and each VAE some variant uses, loaded through the service's own loader."""
    uses_tiny = {settings.variant(mode).use_tiny_vae for mode in MODES}
    pipe = load_pipeline(settings, config_file, False, device, dtype)
    tiny_vae = None
    if True in uses_tiny:
        tiny_vae = load_tiny_vae(settings, config_file, dtype).to(device).eval().requires_grad_(False)
    return ModelParts(
        unet=pipe.unet,
        dims=model_dims(pipe),
        vae=pipe.vae if False in uses_tiny else None,
        tiny_vae=tiny_vae,
    )


def check_graphs(parts: ModelParts, output: Path, info: ExportInfo, size: int) -> dict[str, float]:
    """Largest |onnxruntime - PyTorch| of each graph at batch 3 and a non-square size, unlike the trace."""
    from sdbackend.onnx_check import OnnxRuntimeEngine, max_abs_error

    device = next(parts.unet.parameters()).device
    errors: dict[str, float] = {}
    for kind, module in parts.graphs().items():
        inputs = sample_inputs(kind, parts.dims, 3, size, size + 64, device=device, dtype=torch.float32)
        errors[kind] = max_abs_error(module, OnnxRuntimeEngine(output / info.graphs[kind].file), inputs)
        say(f"check {kind}: max abs error {errors[kind]:.3g} (batch 3, {size + 64}x{size})")
    return errors


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="the YAML config (default: SD_CONFIG or config.yaml)")
    parser.add_argument("--output", type=Path, default=None, help="default: <engine_dir>/onnx/<model name>")
    parser.add_argument("--min-size", type=int, default=DEFAULT_MIN_SIZE, help="smallest image side, pixels")
    parser.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE, help="largest image side, pixels")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--dtype", choices=["auto", "float16", "float32"], default="auto")
    parser.add_argument("--check", action="store_true", help="compare every graph with PyTorch using onnxruntime")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    config_file = (args.config or config_path()).resolve()
    try:
        settings = load_settings(config_file)
        sizes = check_sizes(args.min_size, args.max_size, settings.pipeline.height, settings.pipeline.width)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = settings.model
    engine_dir = Path(model.engine_dir)
    engine_dir = engine_dir if engine_dir.is_absolute() else config_file.parent / engine_dir
    output = (args.output or engine_dir / "onnx" / model_slug(model.model_id)).resolve()
    device, dtype = pick_device_dtype(args.device, args.dtype)
    if args.check and dtype != torch.float32:
        print("error: --check compares on the CPU with onnxruntime; add --dtype float32", file=sys.stderr)
        return 2

    started = time.perf_counter()
    say(f"loading {model.model_id} on {device} in {dtype} (config {config_file})")
    logging.basicConfig(level=logging.WARNING)
    with torch.no_grad():
        parts = load_parts(settings, config_file, device, dtype)
    say(f"loaded in {time.perf_counter() - started:.1f} s; dims {parts.dims.model_dump()}")
    tiny_id = model.tiny_vae_id
    info = export_model(
        parts,
        output,
        trace_height=sizes.opt_height,
        trace_width=sizes.opt_width,
        min_size=sizes.min,
        max_size=sizes.max,
        model_id=model.model_id,
        model_fingerprint=folder_fingerprint(Path(resolve_model_path(config_file, model.model_id)), MODEL_SUBFOLDERS),
        tiny_vae_id=tiny_id,
        tiny_vae_fingerprint=folder_fingerprint(Path(resolve_model_path(config_file, tiny_id))) if tiny_id else None,
        progress=say,
    )
    write_export_info(output, info)
    if args.check:
        check_graphs(parts, output, info, sizes.min)
    say(f"done in {time.perf_counter() - started:.1f} s: {output} ({', '.join(info.graphs)})")
    say(f"next: python scripts/build_engines.py --config {config_file} --onnx {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
