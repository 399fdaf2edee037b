"""`export.json`: what an ONNX folder holds, from which model, for which sizes.

The build reads it to plan the engines and checks each graph's digest against it, so engines are
never built from graphs that changed after the export.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from sdbackend.engine_manifest import FORMAT, EngineKind, FrozenRecord, ModelDims

EXPORT_FILE = "export.json"
ONNX_OPSET = 17


class GraphInfo(FrozenRecord):
    """One exported ONNX graph."""

    file: str
    sha256: str
    inputs: list[str]
    outputs: list[str]
    data_file: str | None = None
    """Weights stored beside the graph (ONNX's external data) when they pass protobuf's 2 GB."""


class ExportInfo(FrozenRecord):
    """`export.json` in an ONNX folder: what was exported, from which model, for which sizes."""

    format: int = FORMAT
    model_id: str
    model_fingerprint: str | None
    tiny_vae_id: str | None = None
    tiny_vae_fingerprint: str | None = None
    dtype: Literal["float16", "float32"]
    opset: int = ONNX_OPSET
    min_size: int
    max_size: int
    dims: ModelDims
    graphs: dict[EngineKind, GraphInfo]
    vae_encoder_output: str = "latent_parameters = concat(mean, logvar) of the latent distribution, unscaled"


def read_export_info(onnx_dir: Path) -> ExportInfo:
    path = onnx_dir / EXPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {EXPORT_FILE}; export the ONNX graphs first (scripts/export_onnx.py)")
    return ExportInfo.model_validate_json(path.read_text(encoding="utf-8"))


def write_export_info(onnx_dir: Path, info: ExportInfo) -> Path:
    path = onnx_dir / EXPORT_FILE
    path.write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def file_sha256(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()
