"""Building and sending the model's requests over gRPC, the way any client of the models would."""

from __future__ import annotations

import io

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image

from sdcontract.tensors import INPUTS

_DTYPES = {spec.name: spec.datatype for spec in INPUTS}
_NUMPY = {"BYTES": np.object_, "INT64": np.int64, "FP32": np.float32, "INT32": np.int32}


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def scene(size: int, seed: int) -> np.ndarray:
    """A smooth random picture: a few coloured blobs, like a simple drawing."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.zeros((size, size, 3), np.float32)
    for _ in range(4):
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        image += blob[..., None] * rng.uniform(0, 255, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def inputs(image: bytes, **params: object) -> list[grpcclient.InferInput]:
    """IMAGE plus any of PROMPT, SEED, ... given as keyword arguments in upper case."""
    tensors = [_tensor("IMAGE", "BYTES", np.array([[image]], dtype=np.object_))]
    for name, value in params.items():
        dtype = _DTYPES[name]
        if dtype == "BYTES" and isinstance(value, list | tuple):
            array = np.array([[v.encode() if isinstance(v, str) else v for v in value]], dtype=np.object_)
            array = array.reshape(1, len(value))
        elif dtype == "BYTES":
            value = value.encode() if isinstance(value, str) else value
            array = np.array([[value]], dtype=np.object_)
        else:
            array = np.array([value if isinstance(value, list | tuple) else [value]], dtype=_NUMPY[dtype])
        tensors.append(_tensor(name, dtype, array))
    return tensors


def _tensor(name: str, dtype: str, array: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    return tensor


def output_image(result: grpcclient.InferResult) -> bytes:
    return result.as_numpy("IMAGE").reshape(-1)[0]


def mean_level_difference(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two encoded pictures in 8-bit levels.

    A drawing batched with another user's gives its own picture up to floating-point summation
    order, which after JPEG can move a level here and there; another picture differs by tens.
    """
    first, second = (np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int) for data in (a, b))
    return float(np.abs(first - second).mean())
