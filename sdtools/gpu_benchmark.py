"""Model throughput of the PyTorch GPU path with the real sd-turbo architecture, no download needed.

    python scripts/gpu_benchmark.py --out artifacts/gpu_benchmark.md            # one GPU: sd-turbo, 512x512, fp16
    python scripts/gpu_benchmark.py --device cpu --arch tiny --size 128         # seconds on a CPU (CI keeps it working)

The weights are random (sdmodels.builders builds the architecture on the device), so the
pictures are noise but the work per frame is the real model's. Measured, on tensors already on
the device (no JPEG, no Triton):

- realtime: one frame per session = VAE encode (AutoencoderTiny, as configured for realtime) +
  one UNet call over the stream batch + decode, for 1 and 2 denoising steps, and for 1, 2, 4, 8
  sessions advanced together with one UNet call over the stacked stream batches of all sessions,
  two ways: "stacked" (sdbackend.stream_batch, as the realtime model runs a Triton batch: one VAE
  encode, one UNet call and one decode for all sessions) and "sequential" (the sessions one after
  another, as with realtime.pipeline.batch_across_sessions off). frames/s is the aggregate.
- canvas: drawings fully denoised in 4 steps each with the VAE configured for canvas (the full
  VAE) and its guidance ("initialize": two UNet rows a step), for 1 and 4 drawings (--canvas-sessions)
  "stacked" (sdbackend.stream_batch.denoise_drawings: one UNet call per step for all drawings, as
  the canvas model runs a Triton batch) and "sequential" (one drawing after another).

Each row: warm-up calls, then timed calls bracketed by CUDA events recorded without waiting (one
synchronize at the end of the row), the median per call reported; peak GPU memory from
torch.cuda.max_memory_allocated. Targets on one H200 (reported, not asserted): realtime 1 step,
1 session >= 150 frames/s; 8 sessions >= 3x the 1-session frames/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from streamdiffusion import StreamDiffusion

from sdbackend.stream_batch import advance_streams, denoise_drawings
from sdbackend.torch_speedups import COMPILE_MODES, CudaGraphUNet, SpeedupOptions, mark_step, speed_up
from sdconfig import Settings, config_path, load_settings
from sdmodels.builders import architecture, build_pipeline_on

TARGET_FPS_1_STEP = 150.0
TARGET_SCALING_8 = 3.0


@dataclass(frozen=True)
class Row:
    scenario: str
    steps: int
    sessions: int
    unet_rows: int
    ms: float
    """Median time of one call: one frame per session (realtime) or one drawing (canvas)."""
    p90_ms: float
    peak_mib: float | None

    @property
    def fps(self) -> float:
        return self.sessions * 1000.0 / self.ms


# ------------------------------------------------------------------------------ timing


def time_calls(step: Callable[[], object], device: torch.device, warmup: int, iters: int) -> list[float]:
    """Milliseconds of each of `iters` calls after `warmup` calls; on CUDA no host sync until the end."""
    for _ in range(warmup):
        step()
    if device.type != "cuda":
        times = []
        for _ in range(iters):
            started = time.perf_counter()
            step()
            times.append((time.perf_counter() - started) * 1000)
        return times
    torch.cuda.synchronize(device)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for start, end in events:
        start.record()
        step()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in events]


def measure(
    scenario: str, steps: int, sessions: int, unet_rows: int, step: Callable[[], object], args: argparse.Namespace
) -> Row:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = time_calls(step, device, args.warmup, args.iters)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    row = Row(scenario, steps, sessions, unet_rows, statistics.median(times), p90, peak)
    print(
        f"  {scenario:16} steps={steps} sessions={sessions}: {row.ms:8.2f} ms/call, {row.fps:8.1f} frames/s", flush=True
    )
    return row


# ------------------------------------------------------------------------------ streams


def step_list(base: Sequence[int], count: int) -> list[int]:
    """`count` step indices: the configured ones where there are enough, else spread over 0..49."""
    if count <= len(base):
        return list(base[:count])
    return [round(i * 49 / max(1, count - 1)) for i in range(count)]


def make_stream(
    pipe: StableDiffusionPipeline,
    settings: Settings,
    mode: str,
    t_index_list: list[int],
    size: int,
    seed: int,
    denoising_batch: bool,
) -> StreamDiffusion:
    variant = settings.realtime.pipeline if mode == "realtime" else settings.canvas.pipeline
    stream = StreamDiffusion(
        pipe,
        t_index_list=t_index_list,
        torch_dtype=pipe.unet.dtype,
        width=size,
        height=size,
        use_denoising_batch=denoising_batch,
        frame_buffer_size=1,
        cfg_type=variant.cfg_type,
    )
    stream.prepare(
        prompt=f"{settings.pipeline.default_prompt} {seed}",
        negative_prompt=settings.pipeline.default_negative_prompt,
        num_inference_steps=settings.pipeline.num_inference_steps,
        guidance_scale=variant.guidance_scale,
        delta=variant.delta,
        generator=torch.Generator(device="cpu"),
        seed=seed,
    )
    return stream


def variant_pipe(pipe: StableDiffusionPipeline, vae: torch.nn.Module, unet: object) -> StableDiffusionPipeline:
    """The same text encoder and scheduler with the variant's VAE and the UNet (eager or graphed) to measure."""
    parts = {k: v for k, v in pipe.components.items() if k != "vae"}
    made = StableDiffusionPipeline(**parts, vae=vae, requires_safety_checker=False)
    made.unet = unet
    return made


def input_images(count: int, size: int, pipe: StableDiffusionPipeline) -> torch.Tensor:
    images = torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(count)) * 2 - 1
    return images.to(device=pipe.unet.device, dtype=pipe.unet.dtype)


def one_frame(stream: StreamDiffusion, image: torch.Tensor) -> torch.Tensor:
    return stream.decode_image(stream.predict_x0_batch(stream.encode_image(image)))


def batched_step(batching: str, streams: list[StreamDiffusion], images: torch.Tensor) -> Callable[[], object]:
    """One frame for every stream: stacked into shared calls (stream_batch), or one stream after another."""

    @torch.inference_mode()
    def stacked() -> object:
        return advance_streams(streams, images)

    @torch.inference_mode()
    def sequential() -> object:
        return [one_frame(stream, images[i : i + 1]) for i, stream in enumerate(streams)]

    return stacked if batching == "stacked" else sequential


def realtime_rows(
    pipe: StableDiffusionPipeline, settings: Settings, args: argparse.Namespace, label: str = ""
) -> list[Row]:
    rows = []
    for batching in args.batching:
        for steps in args.steps:
            t_index_list = step_list(settings.realtime.pipeline.t_index_list, steps)
            for sessions in args.sessions:
                streams = [
                    make_stream(pipe, settings, "realtime", t_index_list, args.size, seed, True)
                    for seed in range(sessions)
                ]
                unet_rows = sum(s.prompt_embeds.shape[0] for s in streams)
                step = batched_step(batching, streams, input_images(sessions, args.size, pipe))
                rows.append(
                    measure(f"realtime {batching}{label}", steps, sessions, unet_rows, with_mark(step, args), args)
                )
    return rows


def with_mark(step: Callable[[], object], args: argparse.Namespace) -> Callable[[], object]:
    """Under CUDA-graph replay (compile reduce-overhead) each call begins a new step."""
    if args.compile != "reduce-overhead":
        return step

    def marked() -> object:
        mark_step()
        return step()

    return marked


def canvas_rows(
    pipe: StableDiffusionPipeline, settings: Settings, args: argparse.Namespace, label: str = ""
) -> list[Row]:
    t_index_list = step_list(settings.canvas.pipeline.t_index_list, args.canvas_steps)
    rows = []
    for batching in args.batching:
        for drawings in args.canvas_sessions:
            streams = [
                make_stream(pipe, settings, "canvas", t_index_list, args.size, seed, False) for seed in range(drawings)
            ]
            images = input_images(drawings, args.size, pipe)
            seeds = list(range(drawings))

            @torch.inference_mode()
            def stacked(streams: list = streams, images: torch.Tensor = images, seeds: list = seeds) -> object:
                return denoise_drawings(streams, images, seeds)

            @torch.inference_mode()
            def sequential(streams: list = streams, images: torch.Tensor = images, seeds: list = seeds) -> object:
                return [denoise_drawings([s], images[i : i + 1], seeds[i : i + 1]) for i, s in enumerate(streams)]

            step = stacked if batching == "stacked" else sequential
            unet_rows = sum(s.prompt_embeds.shape[0] for s in streams)
            scenario = f"canvas {batching}{label}"
            rows.append(measure(scenario, len(t_index_list), drawings, unet_rows, with_mark(step, args), args))
    return rows


# ------------------------------------------------------------------------------ report


def table(rows: Sequence[Row]) -> str:
    base = {(r.scenario, r.steps): r.fps for r in rows if r.sessions == 1}
    lines = [
        "| scenario | steps | sessions | UNet rows | ms/call median | p90 ms | frames/s | x 1 session | peak GPU MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        one = base.get((r.scenario, r.steps))
        scale = f"{r.fps / one:.2f}" if one else "-"
        peak = f"{r.peak_mib:.0f}" if r.peak_mib is not None else "n/a"
        lines.append(
            f"| {r.scenario} | {r.steps} | {r.sessions} | {r.unet_rows} | {r.ms:.2f} | {r.p90_ms:.2f} | "
            f"{r.fps:.1f} | {scale} | {peak} |"
        )
    return "\n".join(lines)


def verdicts(rows: Sequence[Row]) -> list[str]:
    """The targets, reported (not asserted)."""
    by_key = {(r.scenario, r.steps, r.sessions): r for r in rows if r.scenario.startswith("realtime")}
    out = []
    for scenario in sorted({key[0] for key in by_key}):
        one = by_key.get((scenario, 1, 1))
        if one:
            met = "met" if one.fps >= TARGET_FPS_1_STEP else "not met"
            out.append(f"{scenario}, 1 step, 1 session: {one.fps:.1f} frames/s (target {TARGET_FPS_1_STEP:.0f}: {met})")
        for steps in sorted({key[1] for key in by_key if key[0] == scenario}):
            single, eight = by_key.get((scenario, steps, 1)), by_key.get((scenario, steps, 8))
            if single and eight:
                ratio = eight.fps / single.fps
                met = "met" if ratio >= TARGET_SCALING_8 else "not met"
                plural = "s" if steps > 1 else ""
                out.append(
                    f"{scenario}, {steps} step{plural}, 8 sessions: {ratio:.2f}x the 1-session frames/s "
                    f"(target {TARGET_SCALING_8}x: {met})"
                )
    return out


def header(args: argparse.Namespace, dtype: torch.dtype, applied: list[str]) -> str:
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return (
        f"GPU benchmark: {args.arch} (random weights) {args.size}x{args.size} {str(dtype).removeprefix('torch.')} "
        f"on {name}; torch {torch.__version__}; speed-ups: {', '.join(applied) or 'none'}; "
        f"warm-up {args.warmup}, {args.iters} timed calls per row"
    )


# ------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="guidance and step lists (default config.yaml)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", default="sd-turbo", help="sd-turbo (the real architecture) or tiny")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (multiple of 64)")
    parser.add_argument("--dtype", choices=["auto", "float16", "float32"], default="auto")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2], help="realtime denoising steps")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8], help="realtime sessions batched")
    parser.add_argument(
        "--batching",
        nargs="+",
        choices=["stacked", "sequential"],
        default=["stacked", "sequential"],
        help="stacked into shared calls, and/or one session after another",
    )
    parser.add_argument("--canvas-steps", type=int, default=4)
    parser.add_argument("--canvas-sessions", type=int, nargs="+", default=[1, 4], help="canvas drawings batched")
    parser.add_argument("--warmup", type=int, default=None, help="calls before timing (default 10 on CUDA, 1 on CPU)")
    parser.add_argument("--iters", type=int, default=None, help="timed calls per row (default 50 on CUDA, 2 on CPU)")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="none", help="torch.compile mode for the UNet")
    parser.add_argument(
        "--cuda-graphs",
        nargs="+",
        choices=["off", "on"],
        default=None,
        help="measure the UNet eagerly and/or replayed as CUDA graphs (default: off on on CUDA, off on CPU)",
    )
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    on_cuda = torch.device(args.device).type == "cuda"
    if args.warmup is None:
        args.warmup = 10 if on_cuda else 1
    if args.iters is None:
        args.iters = 50 if on_cuda else 2
    if args.cuda_graphs is None:
        args.cuda_graphs = ["off", "on"] if on_cuda and args.compile == "none" else ["off"]
    if "on" in args.cuda_graphs and (not on_cuda or args.compile != "none"):
        parser.error("--cuda-graphs on needs a CUDA device and --compile none")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings((args.config or config_path()).resolve())
    device = torch.device(args.device)
    if args.dtype == "auto":
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    else:
        dtype = getattr(torch, args.dtype)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work_dir:
        pipe, tiny_vae = build_pipeline_on(architecture(args.arch), device, dtype, Path(work_dir))
    full_vae = pipe.vae
    options = SpeedupOptions(channels_last=not args.no_channels_last, compile=args.compile)
    applied = speed_up(pipe, options, extra_vaes=[tiny_vae])
    print(f"built {args.arch} on {device} in {time.perf_counter() - started:.1f} s", flush=True)

    realtime_vae = tiny_vae if settings.realtime.pipeline.use_tiny_vae else full_vae
    canvas_vae = tiny_vae if settings.canvas.pipeline.use_tiny_vae else full_vae
    unets = {"off": ("", pipe.unet), "on": (" +graphs", CudaGraphUNet(pipe.unet))}
    rows: list[Row] = []
    for graphs in args.cuda_graphs:
        label, unet = unets[graphs]
        rows += realtime_rows(variant_pipe(pipe, realtime_vae, unet), settings, args, label)
        rows += canvas_rows(variant_pipe(pipe, canvas_vae, unet), settings, args, label)

    report = "\n".join([header(args, dtype, applied), "", table(rows), "", *verdicts(rows)])
    print("\n" + report, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n", encoding="utf-8")
        print(f"written to {args.out}")
    return 0
