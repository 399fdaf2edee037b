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
from pathlib import Path

from sdaccel.engine_plan import DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE
from sdaccel.export import ExportRequest, run_export
from sdconfig import config_path


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
    logging.basicConfig(level=logging.WARNING)
    request = ExportRequest(
        config_file=(args.config or config_path()).resolve(),
        output=args.output,
        min_size=args.min_size,
        max_size=args.max_size,
        device=args.device,
        dtype=args.dtype,
        check=args.check,
    )
    return run_export(request)


if __name__ == "__main__":
    sys.exit(main())
