"""The PyTorch path: what makes a loaded pipeline fast without TensorRT, on CUDA and on the CPU.

float16 weights come from loading (model.dtype auto). Here: channels-last memory for the
convolution-heavy UNet and VAE (tensor cores read NHWC without transposes; on the CPU oneDNN's NHWC
convolutions are faster too, most for batches of frames: docs/benchmarks.md), cuDNN autotuning for
the few fixed shapes a service sees, TF32 for any float32 work, and two optional ways to remove the
launch cost of the UNet's ~1000 kernels, which dominates at the small batches of realtime:
`CudaGraphUNet` (a CUDA graph captured once per input shape, replayed after) and torch.compile
(whose "reduce-overhead" mode also replays CUDA graphs, after a compile of tens of seconds per
shape). Nothing here synchronises with the host in the hot loop. On the CPU only channels-last
applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from diffusers import StableDiffusionPipeline

log = logging.getLogger(__name__)

CompileMode = Literal["none", "default", "max-autotune", "reduce-overhead"]
COMPILE_MODES: tuple[CompileMode, ...] = ("none", "default", "max-autotune", "reduce-overhead")


@dataclass(frozen=True)
class SpeedupOptions:
    channels_last: bool = True
    cudnn_benchmark: bool = True
    tf32: bool = True
    compile: CompileMode = "none"
    """torch.compile mode for the UNet ("reduce-overhead" adds CUDA graphs)."""
    compile_vae: bool = False
    """Also compile the VAE decoder (and encoder) with the same mode."""
    cuda_graphs: bool = False
    """Replace pipe.unet by a `CudaGraphUNet` (not together with compile)."""


def speed_up(
    pipe: StableDiffusionPipeline, options: SpeedupOptions | None = None, extra_vaes: Iterable[torch.nn.Module] = ()
) -> list[str]:
    """Apply `options` to `pipe` (and VAEs held beside it) in place; returns what was applied, for the log."""
    options = options or SpeedupOptions()
    device = pipe.unet.device
    vaes = [pipe.vae, *extra_vaes]
    if device.type != "cuda":
        applied = _channels_last([pipe.unet, *vaes]) if options.channels_last else []
        log.info("PyTorch speed-ups on %s: %s", device, ", ".join(applied) or "none")
        return applied
    applied = []
    if options.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
        applied.append("cudnn.benchmark")
    if options.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        applied.append("tf32")
    if options.channels_last:
        applied += _channels_last([pipe.unet, *vaes])
    if options.compile != "none":
        pipe.unet.compile(mode=options.compile)
        applied.append(f"compile unet ({options.compile})")
        if options.compile_vae:
            for vae in vaes:
                vae.decoder.compile(mode=options.compile)
                vae.encoder.compile(mode=options.compile)
            applied.append(f"compile vae ({options.compile})")
    if options.cuda_graphs:
        if options.compile != "none":
            raise ValueError("choose CUDA graphs or torch.compile for the UNet, not both")
        pipe.unet = CudaGraphUNet(pipe.unet)
        applied.append("cuda graphs (unet)")
    log.info("PyTorch speed-ups on %s: %s", device, ", ".join(applied) or "none")
    return applied


def _channels_last(modules: Iterable[torch.nn.Module]) -> list[str]:
    for module in modules:
        module.to(memory_format=torch.channels_last)
    return ["channels_last"]


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    output: torch.Tensor


class CudaGraphUNet:
    """Stands in for `pipe.unet`: the first call with a new input shape captures a CUDA graph of the
    UNet, later calls copy their inputs into its buffers and replay it.

    Graphs share one memory pool (they replay one at a time on one stream). A shape whose capture
    fails runs eagerly from then on, with a warning. Attributes (config, dtype, device) are the UNet's.
    """

    WARMUP_CALLS = 3

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet
        self.captured: dict[tuple[Any, ...], _Captured | None] = {}
        self._pool: Any = None

    def __getattr__(self, name: str) -> Any:
        if name == "unet":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.unet, name)

    def _eager(self, sample: torch.Tensor, timesteps: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timesteps, encoder_hidden_states=states, return_dict=False)[0]

    def _capture(self, inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> _Captured | None:
        static = tuple(t.clone() for t in inputs)
        try:
            side = torch.cuda.Stream(device=static[0].device)
            side.wait_stream(torch.cuda.current_stream(static[0].device))
            with torch.cuda.stream(side):
                for _ in range(self.WARMUP_CALLS):  # lazy initialisation and autotuning happen outside the graph
                    self._eager(*static)
            torch.cuda.current_stream(static[0].device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                output = self._eager(*static)
        except RuntimeError as exc:
            log.warning("CUDA graph capture of the UNet at %s failed, running it eagerly: %s", static[0].shape, exc)
            return None
        if self._pool is None:
            self._pool = graph.pool()
        return _Captured(graph=graph, inputs=static, output=output)  # type: ignore[arg-type]

    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        return_dict: bool = True,
        **extra: Any,
    ) -> Any:
        if any(v is not None for v in extra.values()) or not sample.is_cuda:
            return self.unet(
                sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=return_dict, **extra
            )
        with torch.inference_mode():
            timesteps = torch.as_tensor(timestep, device=sample.device)
            if timesteps.ndim == 0:
                timesteps = timesteps.expand(sample.shape[0])
            inputs = (sample, timesteps, encoder_hidden_states)
            key = tuple((tuple(t.shape), t.dtype) for t in inputs)
            if key not in self.captured:
                self.captured[key] = self._capture(inputs)
            entry = self.captured[key]
            if entry is None:
                output = self._eager(*inputs)
            else:
                for buffer, value in zip(entry.inputs, inputs, strict=True):
                    buffer.copy_(value)
                entry.graph.replay()
                output = entry.output.clone()  # the buffer is overwritten by the next replay
        if return_dict:
            from diffusers.models.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=output)
        return (output,)


def mark_step() -> None:
    """Tell CUDA-graph replay (compile mode "reduce-overhead") that a new frame begins, so outputs of
    the previous frame may be overwritten; a no-op otherwise. Call once per frame, before the model."""
    compiler = getattr(torch, "compiler", None)
    mark = getattr(compiler, "cudagraph_mark_step_begin", None)
    if mark is not None:
        mark()
