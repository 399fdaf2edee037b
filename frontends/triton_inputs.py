"""Turn a frame (image + JSON parameters) into Triton inputs, as the model facts describe them.

Each `input_params` property names its tensor in `x-triton-input` and its type in
`x-triton-datatype`, so no parameter name is spelled twice; a blend (a list of [value, weight]
pairs) also names its weights' tensor in `x-triton-weights` and travels as the two lists. A
parameter the client left out has no tensor at all: the inputs are optional and the model
applies its own default, the same default `/settings` shows. Both models batch
(max_batch_size > 0), hence the leading dimension of 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput

from sdcontract.tensors import IMAGE_INPUT, IMAGE_OUTPUT, JPEG_QUALITY_INPUT

_NUMPY = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32, "FP64": np.float64, "BOOL": np.bool_}


def _bytes_tensor(name: str, value: bytes) -> InferInput:
    tensor = InferInput(name, [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[value]], dtype=np.object_))
    return tensor


def _param_tensor(name: str, datatype: str, value: Any) -> InferInput:
    if datatype == "BYTES" and isinstance(value, list):
        tensor = InferInput(name, [1, len(value)], "BYTES")
        tensor.set_data_from_numpy(np.array([[str(v).encode("utf-8") for v in value]], dtype=np.object_))
        return tensor
    if datatype == "BYTES":
        return _bytes_tensor(name, str(value).encode("utf-8"))
    array = np.asarray([value if isinstance(value, list) else [value]], dtype=_NUMPY[datatype])
    tensor = InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def build_inputs(
    image: bytes, params: Mapping[str, Any], schema: Mapping[str, Any], jpeg_quality: int
) -> list[InferInput]:
    """IMAGE, JPEG_QUALITY and one tensor per given parameter (validated beforehand)."""
    inputs = [_bytes_tensor(IMAGE_INPUT, image), _param_tensor(JPEG_QUALITY_INPUT, "INT32", jpeg_quality)]
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name, value in params.items():
        spec = properties.get(name, {})
        tensor, datatype = spec.get("x-triton-input"), spec.get("x-triton-datatype")
        weights = spec.get("x-triton-weights")
        if tensor and datatype and weights:
            inputs.extend(_blend_tensors(tensor, datatype, weights, value))
        elif tensor and datatype:
            inputs.append(_param_tensor(tensor, datatype, value))
    return inputs


def _blend_tensors(tensor: str, datatype: str, weights: Mapping[str, str], pairs: list[Any]) -> list[InferInput]:
    """[[value, weight], ...] as the values' tensor and the weights' tensor; an empty blend sends neither."""
    if not pairs:
        return []
    return [
        _param_tensor(tensor, datatype, [value for value, _ in pairs]),
        _param_tensor(weights["input"], weights["datatype"], [weight for _, weight in pairs]),
    ]


def end_of_sequence_inputs() -> list[InferInput]:
    """An END request carries an empty IMAGE: the model frees the sequence without running."""
    return [_bytes_tensor(IMAGE_INPUT, b"")]


def requested_outputs() -> list[InferRequestedOutput]:
    return [InferRequestedOutput(IMAGE_OUTPUT)]
