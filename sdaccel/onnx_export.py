"""Export the UNet, the VAE and the AutoencoderTiny of a loaded pipeline to ONNX for TensorRT.

Every graph has a dynamic batch axis and dynamic image (or latent) sides, so one export serves
every batch size and resolution in the declared range; the range itself is fixed later, by the
engine's optimization profiles. Tensor names and layouts are those of `sdaccel.engine_io`.

The TorchScript-based exporter (`dynamo=False`) is used: it traces diffusers 0.24's models with
symbolic batch and sides at opset 17 and needs nothing beyond torch and onnx.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

from sdaccel.engine_io import ENGINE_IO, dynamic_axes, resolve_shape
from sdaccel.export_info import ONNX_OPSET, ExportInfo, GraphInfo, file_sha256
from sdbackend.engine_manifest import EngineKind, ModelDims

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

TRACE_BATCH = 2
"""Traced with two rows so that no size-1 broadcast is mistaken for a fixed axis."""


class UNetGraph(torch.nn.Module):
    """sample, timestep, encoder_hidden_states -> noise_pred, the call StreamDiffusion makes."""

    def __init__(self, unet: UNet2DConditionModel) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


class VaeEncoderGraph(torch.nn.Module):
    """images -> the latent distribution's parameters (mean and log-variance, unscaled).

    Sampling stays outside the graph, so the runtime draws the noise with the stream's own
    generator, as `retrieve_latents(vae.encode(x), generator)` does in PyTorch.
    """

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(images).latent_dist.parameters


class VaeDecoderGraph(torch.nn.Module):
    def __init__(self, vae: AutoencoderKL | AutoencoderTiny) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents, return_dict=False)[0]


class TaesdEncoderGraph(torch.nn.Module):
    def __init__(self, vae: AutoencoderTiny) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(images, return_dict=False)[0]


@dataclass(frozen=True)
class ModelParts:
    """What can be exported: the UNet always, each VAE where the configuration uses it."""

    unet: UNet2DConditionModel
    dims: ModelDims
    vae: AutoencoderKL | None = None
    tiny_vae: AutoencoderTiny | None = None

    def graphs(self) -> dict[EngineKind, torch.nn.Module]:
        graphs: dict[EngineKind, torch.nn.Module] = {"unet": UNetGraph(self.unet)}
        if self.vae is not None:
            graphs["vae_encoder"] = VaeEncoderGraph(self.vae)
            graphs["vae_decoder"] = VaeDecoderGraph(self.vae)
        if self.tiny_vae is not None:
            graphs["taesd_encoder"] = TaesdEncoderGraph(self.tiny_vae)
            graphs["taesd_decoder"] = VaeDecoderGraph(self.tiny_vae)
        return graphs


def sample_inputs(
    kind: EngineKind, dims: ModelDims, batch: int, height: int, width: int, *, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Inputs of one graph: images in [-1, 1], latents and embeddings normal, timesteps in the training range."""
    generator = torch.Generator().manual_seed(batch * 7919 + height * 31 + width)
    inputs: dict[str, torch.Tensor] = {}
    for name, axes in ENGINE_IO[kind].inputs:
        shape = resolve_shape(axes, dims, batch, height, width)
        if name == "timestep":
            value = torch.randint(1, 1000, shape, generator=generator).float()
            inputs[name] = value.to(device)  # float32 whatever the model's dtype: the graph casts it
            continue
        value = (
            torch.rand(shape, generator=generator) * 2 - 1
            if name == "images"
            else torch.randn(shape, generator=generator)
        )
        inputs[name] = value.to(device=device, dtype=dtype)
    return inputs


def _consolidate(tmp_dir: Path, target: Path) -> str | None:
    """Move the traced model to `target`; weights the exporter split into many files (past protobuf's
    2 GB) become one `<target>.data` beside it, which TensorRT's parser and onnxruntime both read."""
    import onnx

    traced = tmp_dir / "model.onnx"
    external = any(p.name != traced.name for p in tmp_dir.iterdir())
    for stale in (target, target.with_name(target.name + ".data")):
        stale.unlink(missing_ok=True)
    if not external:
        shutil.move(str(traced), target)
        return None
    model = onnx.load(str(traced), load_external_data=True)
    data_name = target.name + ".data"
    onnx.save_model(
        model,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data_name,
        size_threshold=1024,
    )
    (target.parent / data_name).chmod(0o644)  # onnx writes it owner-only; the builder may run as another user
    return data_name


def export_graph(
    kind: EngineKind,
    module: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    output_dir: Path,
    opset: int = ONNX_OPSET,
) -> GraphInfo:
    """Trace `module` with `inputs` into `<output_dir>/<kind>.onnx`, checked by onnx's checker."""
    import onnx

    io = ENGINE_IO[kind]
    target = output_dir / f"{kind}.onnx"
    tmp_dir = output_dir / f".{kind}.tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow on fixed model facts
            torch.onnx.export(
                module,
                tuple(inputs[name] for name in io.input_names),
                str(tmp_dir / "model.onnx"),
                dynamo=False,
                opset_version=opset,
                input_names=io.input_names,
                output_names=io.output_names,
                dynamic_axes=dynamic_axes(kind),
                do_constant_folding=True,
            )
        data_file = _consolidate(tmp_dir, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    onnx.checker.check_model(str(target))
    files = [target] + ([output_dir / data_file] if data_file else [])
    return GraphInfo(
        file=target.name,
        sha256=file_sha256(files),
        inputs=io.input_names,
        outputs=io.output_names,
        data_file=data_file,
    )


def export_model(
    parts: ModelParts,
    output_dir: Path,
    *,
    trace_height: int,
    trace_width: int,
    min_size: int,
    max_size: int,
    model_id: str,
    model_fingerprint: str | None,
    tiny_vae_id: str | None = None,
    tiny_vae_fingerprint: str | None = None,
    opset: int = ONNX_OPSET,
    progress: Progress = log.info,
) -> ExportInfo:
    """Export every graph of `parts` into `output_dir`; the caller writes the returned info as export.json."""
    output_dir.mkdir(parents=True, exist_ok=True)
    unet_param = next(parts.unet.parameters())
    device, dtype = unet_param.device, unet_param.dtype
    graphs: dict[EngineKind, GraphInfo] = {}
    modules = parts.graphs()
    for number, (kind, module) in enumerate(modules.items(), start=1):
        started = time.perf_counter()
        progress(f"[{number}/{len(modules)}] exporting {kind} (traced at {TRACE_BATCH}x{trace_width}x{trace_height})")
        module_dtype = next(module.parameters()).dtype
        inputs = sample_inputs(
            kind, parts.dims, TRACE_BATCH, trace_height, trace_width, device=device, dtype=module_dtype
        )
        info = export_graph(kind, module.eval(), inputs, output_dir, opset)
        size = sum((output_dir / f).stat().st_size for f in (info.file, info.data_file) if f)
        seconds = time.perf_counter() - started
        progress(f"[{number}/{len(modules)}] {kind}: {info.file} {size / 2**20:.1f} MiB in {seconds:.1f} s")
        graphs[kind] = info
    return ExportInfo(
        model_id=model_id,
        model_fingerprint=model_fingerprint,
        tiny_vae_id=tiny_vae_id if parts.tiny_vae is not None else None,
        tiny_vae_fingerprint=tiny_vae_fingerprint if parts.tiny_vae is not None else None,
        dtype="float16" if dtype == torch.float16 else "float32",
        opset=opset,
        min_size=min_size,
        max_size=max_size,
        dims=parts.dims,
        graphs=graphs,
    )
