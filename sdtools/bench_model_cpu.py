"""Realtime frame time of the configured model in process (no Triton): sessions one after another
and in one batch, NCHW and channels-last memory, side by side.

    python scripts/bench_model_cpu.py [--config config.yaml] [--sizes 128 512] [--batch 4]
        [--threads N] [--runs 9]

A frame is what the realtime model does per request: VAE encode, the UNet over the stream batch,
VAE decode. "one by one" runs --batch sessions' frames through `ImageGenerator.run` one after
another (batch_across_sessions off), "batched" through one `ImageGenerator.run_group` call (on):
the same work either way, so caches start alike. Each configuration (VAE x memory format) is its
own loaded pipeline; their runs are interleaved round by round so that a busy machine slows them
alike, and the median of --runs rounds after two warm-up rounds is printed, per frame.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sdbackend.generation import ImageGenerator
from sdbackend.loading import load_pipeline, resolve_device_dtype
from sdbackend.requests import GenerationParams
from sdbackend.torch_speedups import SpeedupOptions, speed_up
from sdconfig import Settings, config_path, load_settings

WARMUP = 2


def generator_for(config_file: Path, size: int, tiny_vae: bool, channels_last: bool) -> ImageGenerator:
    os.environ["SD__PIPELINE__WIDTH"] = os.environ["SD__PIPELINE__HEIGHT"] = str(size)
    settings = load_settings(config_file)
    device, dtype = resolve_device_dtype(settings.model)
    pipe = load_pipeline(settings, config_file, tiny_vae, device, dtype)
    speed_up(pipe, SpeedupOptions(channels_last=channels_last))
    return ImageGenerator(pipe, settings, settings.realtime.pipeline)


def workloads(generator: ImageGenerator, settings: Settings, size: int, batch: int) -> dict[str, Callable[[], object]]:
    """One frame for each of `batch` sessions: one session after another, and all in one call."""
    variant = settings.realtime.pipeline
    streams = [
        generator.new_stream(
            GenerationParams(
                prompts=((settings.pipeline.default_prompt, 1.0),),
                negative_prompt=settings.pipeline.default_negative_prompt,
                seeds=((seed, 1.0),),
                guidance_scale=variant.guidance_scale,
                delta=variant.delta,
                t_index_list=variant.t_index_list,
            ),
            denoising_batch=True,
        )
        for seed in range(batch)
    ]
    images = [np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8) for seed in range(batch)]
    return {
        "one by one": lambda: [generator.run(stream, image) for stream, image in zip(streams, images, strict=True)],
        "batched": lambda: generator.run_group(streams, images),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--batch", type=int, default=4, help="sessions advanced together")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config_file = (args.config or config_path()).resolve()
    settings = load_settings(config_file)
    device, dtype = resolve_device_dtype(settings.model)
    print(
        f"{settings.model.model_id} on {device} {dtype}, {args.threads} threads, "
        f"t_index_list {list(settings.realtime.pipeline.t_index_list)}, batch of {args.batch}, {args.runs} rounds"
    )
    print("| size | VAE | memory | ms/frame one by one | ms/frame batched | batch gain |")
    print("|---:|---|---|---:|---:|---:|")
    for size in args.sizes:
        cells: dict[tuple[str, str], dict[str, Callable[[], object]]] = {}
        for tiny_vae in (True, False):
            for channels_last in (False, True):
                generator = generator_for(config_file, size, tiny_vae, channels_last)
                key = ("tiny" if tiny_vae else "full", "channels-last" if channels_last else "NCHW")
                cells[key] = workloads(generator, settings, size, args.batch)
        times: dict[tuple[str, str, str], list[float]] = {}
        with torch.inference_mode():
            for round_ in range(WARMUP + args.runs):
                for key, work in cells.items():
                    for name, run in work.items():
                        started = time.perf_counter()
                        run()
                        if round_ >= WARMUP:
                            times.setdefault((*key, name), []).append(time.perf_counter() - started)
        for vae, memory in cells:
            alone = statistics.median(times[(vae, memory, "one by one")]) * 1000 / args.batch
            batched = statistics.median(times[(vae, memory, "batched")]) * 1000 / args.batch
            print(f"| {size} | {vae} | {memory} | {alone:.1f} | {batched:.1f} | {alone / batched:.2f}x |")
