"""Export the configured model's UNet and VAEs to ONNX, recorded in export.json for the build.

The model is loaded through the service's own loader, so the graphs are those of the model the
service runs. `scripts/export_onnx.py` is the command line over `run_export`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from sdaccel.engine_plan import DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE, check_sizes
from sdaccel.export_info import ExportInfo, write_export_info
from sdaccel.onnx_export import ModelParts, export_model, sample_inputs
from sdbackend.engine_manifest import MODEL_SUBFOLDERS, folder_fingerprint, model_dims, model_slug, resolve_engine_dir
from sdbackend.loading import load_pipeline, load_tiny_vae
from sdconfig import MODES, ConfigError, Settings, load_settings, resolve_model_path

DeviceChoice = Literal["auto", "cpu", "cuda"]
DtypeChoice = Literal["auto", "float16", "float32"]


@dataclass(frozen=True)
class ExportRequest:
    """What to export: the config, where to, the declared size range, where to trace, whether to check."""

    config_file: Path
    output: Path | None = None
    """Default: <engine_dir>/onnx/<model name>."""
    min_size: int = DEFAULT_MIN_SIZE
    max_size: int = DEFAULT_MAX_SIZE
    device: DeviceChoice = "auto"
    dtype: DtypeChoice = "auto"
    check: bool = False


def say(message: str) -> None:
    print(f"[export] {message}", flush=True)


def pick_device_dtype(device: DeviceChoice, dtype: DtypeChoice) -> tuple[torch.device, torch.dtype]:
    """float16 on CUDA (what TensorRT builds fp16 engines from), float32 on the CPU, unless asked otherwise."""
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
    from sdaccel.onnx_check import OnnxRuntimeEngine, max_abs_error

    device = next(parts.unet.parameters()).device
    errors: dict[str, float] = {}
    for kind, module in parts.graphs().items():
        inputs = sample_inputs(kind, parts.dims, 3, size, size + 64, device=device, dtype=torch.float32)
        errors[kind] = max_abs_error(module, OnnxRuntimeEngine(output / info.graphs[kind].file), inputs)
        say(f"check {kind}: max abs error {errors[kind]:.3g} (batch 3, {size + 64}x{size})")
    return errors


def run_export(request: ExportRequest) -> int:
    """Export, write export.json, print progress; the exit status: 0 done, 2 refused."""
    config_file = request.config_file
    try:
        settings = load_settings(config_file)
        sizes = check_sizes(request.min_size, request.max_size, settings.pipeline.height, settings.pipeline.width)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = settings.model
    output = (
        request.output or resolve_engine_dir(settings, config_file) / "onnx" / model_slug(model.model_id)
    ).resolve()
    device, dtype = pick_device_dtype(request.device, request.dtype)
    if request.check and dtype != torch.float32:
        print("error: --check compares on the CPU with onnxruntime; add --dtype float32", file=sys.stderr)
        return 2

    started = time.perf_counter()
    say(f"loading {model.model_id} on {device} in {dtype} (config {config_file})")
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
    if request.check:
        check_graphs(parts, output, info, sizes.min)
    say(f"done in {time.perf_counter() - started:.1f} s: {output} ({', '.join(info.graphs)})")
    say(f"next: python scripts/build_engines.py --config {config_file} --onnx {output}")
    return 0
