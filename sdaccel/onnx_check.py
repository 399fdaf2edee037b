"""Run an exported ONNX graph with onnxruntime and compare it with the PyTorch module it came from.

TensorRT cannot run where the tests run; onnxruntime can, on the same graphs TensorRT parses.
`OnnxRuntimeEngine` has the call signature of `sdbackend.tensorrt_runner.TensorRTEngine` (named
tensors in, named tensors out), so the runtime wrappers are exercised end to end on the CPU with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

_ORT_TYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


class OnnxRuntimeEngine:
    """One graph in an onnxruntime session; inputs are cast to the graph's types, outputs come back as tensors."""

    def __init__(self, path: Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=list(providers))
        self.input_types = {i.name: _ORT_TYPES[i.type] for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        missing = set(self.input_types) - set(inputs)
        if missing:
            raise TypeError(f"missing inputs {sorted(missing)}")
        device = next(iter(inputs.values())).device
        feeds = {name: inputs[name].detach().cpu().numpy().astype(kind) for name, kind in self.input_types.items()}
        outputs = self.session.run(self.output_names, feeds)
        return {
            name: torch.from_numpy(value).to(device) for name, value in zip(self.output_names, outputs, strict=True)
        }


@torch.no_grad()
def max_abs_error(module: torch.nn.Module, engine: OnnxRuntimeEngine, inputs: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between the module's output and the graph's on `inputs`."""
    expected = module(*inputs.values()).float().cpu()
    (got,) = engine(**inputs).values()
    if tuple(got.shape) != tuple(expected.shape):
        raise AssertionError(f"shape {tuple(got.shape)} from ONNX, {tuple(expected.shape)} from PyTorch")
    return float((got.float().cpu() - expected).abs().max())
