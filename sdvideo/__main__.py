"""`python -m sdvideo restyle INPUT OUTPUT [--mode realtime|canvas] [--prompt TEXT] [--param key=value ...]`

Restyles a video file (mp4, webm, mov, mkv) or a folder or glob of images through the served
models, over gRPC to Triton. OUTPUT is a video (same frame rate, the input's audio copied) or a
folder of frames. Ctrl-C leaves a playable partial output; the same command with --resume goes
on from there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from frontends.facts_cache import FactsCache
from frontends.triton_client import TritonError, TritonPool
from sdconfig import MODES, ConfigError, Mode, Settings, load_settings
from sdvideo.frames_in import InputError
from sdvideo.job import JobOptions, ParamsError, RestyleJob, Summary, Target
from sdvideo.options import OptionError, gather_params
from sdvideo.progress import Progress
from sdvideo.schedule import ScheduleError, load_schedule
from sdvideo.store import ResumeError

EXPECTED = (InputError, ParamsError, OptionError, ScheduleError, ResumeError, ConfigError, TritonError)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sdvideo", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    restyle = commands.add_parser("restyle", help="restyle a video or an image sequence")
    restyle.add_argument("input", help="a video file, a folder of images or a quoted glob such as 'shots/*.png'")
    restyle.add_argument("output", help="a video file (.mp4 .mov .mkv .webm) or a folder for the frames")
    restyle.add_argument(
        "--mode",
        choices=MODES,
        default="canvas",
        help="canvas: every frame fully denoised on "
        "its own (default); realtime: one stream per segment, temporally coherent, faster",
    )
    restyle.add_argument("--prompt", help="the prompt (same as --param prompt=...)")
    restyle.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model parameter as on the live pages: seed, guidance_scale, delta, t_index_list, ...",
    )
    restyle.add_argument("--params", type=Path, metavar="FILE.json", help="parameters as one JSON object")
    restyle.add_argument("--schedule", type=Path, metavar="FILE", help="JSON or YAML: seconds -> prompt")
    restyle.add_argument("--in-flight", type=int, help="calls in flight (default: video.in_flight)")
    restyle.add_argument("--segment-frames", type=int, help="realtime: frames per sequence (video.segment_frames)")
    restyle.add_argument("--warmup-frames", type=int, help="realtime: warm-up frames (video.warmup_frames)")
    restyle.add_argument("--resume", action="store_true", help="go on with the partial output of an earlier run")
    restyle.add_argument("--keep-frames", action="store_true", help="keep a video's frames in OUTPUT.parts/")
    restyle.add_argument("--config", help="YAML config (default: $SD_CONFIG or config.yaml)")
    restyle.add_argument("--url", help="Triton gRPC endpoint (default: the first of triton.urls)")
    restyle.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def job_options(args: argparse.Namespace, settings: Settings) -> JobOptions:
    video = settings.video
    in_flight = args.in_flight if args.in_flight is not None else video.in_flight
    if in_flight < 1:
        raise OptionError(f"--in-flight {in_flight}: at least 1")
    return JobOptions(
        source=args.input,
        output=Path(args.output),
        mode=args.mode,
        params=gather_params(args.params, args.param, args.prompt),
        schedule=load_schedule(args.schedule) if args.schedule else None,
        in_flight=in_flight,
        segment_frames=max(1, args.segment_frames or video.segment_frames),
        warmup_frames=args.warmup_frames if args.warmup_frames is not None else video.warmup_frames,
        jpeg_quality=video.jpeg_quality,
        resume=args.resume,
        keep_frames=args.keep_frames,
        job_id=f"restyle-{secrets.token_hex(6)}",
    )


async def connect(settings: Settings, url: str | None, mode: Mode) -> Target:
    """The gRPC client and the mode's model facts, read from the server as the frontends read them."""
    pool = TritonPool([url] if url else list(settings.triton.urls), settings.server.infer_timeout_s)
    model = settings.model_name(mode)
    facts = await FactsCache(pool, {mode: model}).get(mode)
    return Target(
        pool,
        model,
        facts,
        sequence_idle_s=settings.realtime.pipeline.sequence_idle_timeout_s,
        max_prompt_chars=settings.server.max_prompt_chars,
    )


class Bar:
    """tqdm's bar fed from the job's progress: frames done of all, frames/s and ETA."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: tqdm | None = None
        self.last: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        self.last = progress
        if self.quiet:
            return
        if self.bar is None:
            self.bar = tqdm(total=progress.total, initial=progress.done, unit="frame", dynamic_ncols=True)
        self.bar.update(progress.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def restyle(args: argparse.Namespace, bar: Bar) -> Summary:
    settings = load_settings(args.config)
    options = job_options(args, settings)
    target = await connect(settings, args.url, options.mode)
    try:
        return await RestyleJob(options, target, bar).run()
    finally:
        await target.pool.close()


def report(summary: Summary) -> None:
    first = f", first frame after {summary.first_frame_s:.2f} s" if summary.first_frame_s is not None else ""
    print(
        f"{summary.output}: {summary.frames} frames at {float(summary.info.fps):.3f} fps; "
        f"{summary.computed} made in {summary.seconds:.1f} s ({summary.fps:.2f} frames/s{first})"
    )
    for problem in summary.problems:
        print(f"warning: {problem.message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    bar = Bar(args.quiet)
    try:
        summary = asyncio.run(restyle(args, bar))
    except EXPECTED as exc:
        bar.close()
        hint = ""
        if isinstance(exc, TritonError) and exc.kind == "triton_unavailable":
            hint = "\nstart Triton with scripts/launch_triton.py, or point --url at a running one"
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        done = bar.last.done if bar.last else 0
        print(
            f"\ninterrupted: {args.output} plays with the frames done so far ({done}); "
            "run the same command with --resume to go on",
            file=sys.stderr,
        )
        return 130
    bar.close()
    report(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
