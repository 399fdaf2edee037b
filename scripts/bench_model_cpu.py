#!/usr/bin/env python3
"""Per-frame time of the configured model, the way the realtime variant runs it, without Triton.

    python scripts/bench_model_cpu.py [--config config.yaml] [--sizes 128 512] [--runs 7]

One frame is VAE encode + the UNet over the denoising batch (one call for all of t_index_list)
+ VAE decode, timed for the full VAE and the AutoencoderTiny; the median of --runs frames after
two warm-up frames is printed. Runs on the configured device (the CPU here), so it also tells
whether a model is small enough for CPU tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "backends" / "streamdiffusion"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import torch  # noqa: E402
from streamdiffusion import StreamDiffusion  # noqa: E402

from sdbackend.loading import load_pipeline, resolve_device_dtype  # noqa: E402
from sdconfig import config_path, load_settings  # noqa: E402

WARMUP = 2


def frame_times(stream: StreamDiffusion, size: int, runs: int) -> list[float]:
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    image = image.to(stream.device, stream.dtype)
    times = []
    with torch.no_grad():
        for _ in range(WARMUP + runs):
            started = time.perf_counter()
            out = stream.decode_image(stream.predict_x0_batch(stream.encode_image(image)))
            if out.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
    return times[WARMUP:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    config_file = (args.config or config_path()).resolve()
    settings = load_settings(config_file)
    variant = settings.realtime.pipeline
    device, dtype = resolve_device_dtype(settings.model)
    steps = list(variant.t_index_list)
    print(f"{settings.model.model_id} on {device} {dtype}, t_index_list {steps}, cfg_type {variant.cfg_type}")
    for use_tiny_vae in (True, False):
        pipe = load_pipeline(settings, config_file, use_tiny_vae, device, dtype)
        for size in args.sizes:
            stream = StreamDiffusion(
                pipe,
                t_index_list=list(variant.t_index_list),
                torch_dtype=dtype,
                width=size,
                height=size,
                use_denoising_batch=True,
                cfg_type=variant.cfg_type,
            )
            stream.prepare(
                settings.pipeline.default_prompt,
                num_inference_steps=settings.pipeline.num_inference_steps,
                guidance_scale=variant.guidance_scale,
                delta=variant.delta,
                generator=torch.Generator(device=device).manual_seed(settings.pipeline.default_seed),
            )
            times = frame_times(stream, size, args.runs)
            vae = "tiny VAE" if use_tiny_vae else "full VAE"
            print(f"{size}x{size} {vae}: median {statistics.median(times) * 1000:.1f} ms per frame ({args.runs} runs)")


if __name__ == "__main__":
    main()
