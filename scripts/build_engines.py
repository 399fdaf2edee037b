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
with a manifest.json that the model checks at start (sdbackend.engine_match). An existing folder with
the same plan is kept unless --force. --dry-run prints the plan and builds nothing (no TensorRT needed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sdaccel.build import BuildRequest, run_build
from sdconfig import config_path


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
    request = BuildRequest(
        config_file=(args.config or config_path()).resolve(),
        onnx_dir=args.onnx.resolve(),
        engine_dir=args.engine_dir,
        min_size=args.min_size,
        max_size=args.max_size,
        max_steps=args.max_steps,
        precision=args.precision,
        workspace_gib=args.workspace_gib,
        force=args.force,
        dry_run=args.dry_run,
    )
    return run_build(request)


if __name__ == "__main__":
    sys.exit(main())
