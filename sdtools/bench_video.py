"""Restyling a clip, both modes, in flight 1 against 4, side by side on one tritonserver.

For each cell: frames/s of the whole job (decode, calls, encode), the time to the first output
frame, and the mean batch Triton formed (its inference and execution counts), as medians over
interleaved repeats so that every cell sees the same machine. The clip is the project's own
(sdtools/video_clip.py); the server is started from the config (the demo model on the CPU with
tests/config.test.yaml), or an existing one is used with --url.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tritonclient.grpc as grpcclient

from sdconfig import Mode, Settings, load_settings
from sdtools.local_stack import TEST_CONFIG, local_stack
from sdtools.video_clip import write_clip
from sdvideo.__main__ import connect
from sdvideo.job import JobOptions, RestyleJob

PROMPT = "a green circle and a red square on a white background"
CELLS: tuple[tuple[Mode, int], ...] = (("realtime", 1), ("realtime", 4), ("canvas", 1), ("canvas", 4))


@dataclass
class Run:
    fps: float
    first_frame_s: float
    mean_batch: float


def batch_counts(url: str, model: str) -> tuple[float, float]:
    stats = grpcclient.InferenceServerClient(url).get_inference_statistics(model, as_json=True)["model_stats"][0]
    return float(stats.get("inference_count", 0)), float(stats.get("execution_count", 0))


async def one_run(settings: Settings, url: str, clip: Path, out: Path, mode: Mode, in_flight: int, segment: int) -> Run:
    target = await connect(settings, url, mode)
    try:
        before = batch_counts(url, target.model)
        options = JobOptions(
            source=str(clip),
            output=out,
            mode=mode,
            params={"prompt": PROMPT},
            in_flight=in_flight,
            segment_frames=segment,
            warmup_frames=settings.video.warmup_frames,
        )
        summary = await RestyleJob(options, target).run()
        after = batch_counts(url, target.model)
    finally:
        await target.pool.close()
    inferences, executions = after[0] - before[0], after[1] - before[1]
    return Run(summary.frames / summary.seconds, summary.first_frame_s or 0.0, inferences / max(1.0, executions))


@contextlib.contextmanager
def server(args: argparse.Namespace, logs: Path) -> Iterator[str]:
    if args.url:
        yield args.url
        return
    with local_stack(logs, args.config) as stack:
        yield stack.triton_grpc


def table(settings: Settings, args: argparse.Namespace, results: dict[tuple[Mode, int], list[Run]]) -> str:
    lines = [
        f"Clip: {args.frames} frames at {args.fps} fps, {args.size}, with audio; model {settings.model.model_id} at "
        f"{settings.pipeline.width}x{settings.pipeline.height}; realtime segments of {args.segment_frames} frames "
        f"(+{settings.video.warmup_frames} warm-up); median of {args.repeats} interleaved runs.",
        "",
        "| mode | in flight | frames/s | vs in flight 1 | first frame (s) | mean Triton batch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, in_flight in CELLS:
        runs = results[(mode, in_flight)]
        fps = statistics.median(r.fps for r in runs)
        base = statistics.median(r.fps for r in results[(mode, 1)])
        first = statistics.median(r.first_frame_s for r in runs)
        batch = statistics.median(r.mean_batch for r in runs)
        lines.append(f"| {mode} | {in_flight} | {fps:.2f} | {fps / base:.2f}x | {first:.3f} | {batch:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=TEST_CONFIG)
    parser.add_argument("--url", help="an already running Triton's gRPC address (default: start one)")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--size", default="192x144")
    parser.add_argument("--segment-frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench_video.md"))
    args = parser.parse_args()
    settings = load_settings(args.config)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        clip = write_clip(work / "clip.mp4", args.frames, args.fps, (width, height))
        results: dict[tuple[Mode, int], list[Run]] = {cell: [] for cell in CELLS}
        with server(args, work / "logs") as url:
            for mode, _ in CELLS[::2]:  # warm-up: the model's streams and caches
                asyncio.run(one_run(settings, url, clip, work / "warm.mp4", mode, 1, args.segment_frames))
            for repeat in range(args.repeats):
                for mode, in_flight in CELLS:
                    out = work / f"{mode}-{in_flight}-{repeat}.mp4"
                    run = asyncio.run(one_run(settings, url, clip, out, mode, in_flight, args.segment_frames))
                    results[(mode, in_flight)].append(run)
                    print(f"repeat {repeat + 1}: {mode} in flight {in_flight}: {run.fps:.2f} frames/s", flush=True)
    text = table(settings, args, results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    return 0
