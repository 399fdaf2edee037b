"""The README's before/after strip: the project's clip, and the same frames restyled by both modes.

Runs a real restyle of each mode against a tritonserver (--url, or one started from the config)
and lays out a few frames of the input (as the model saw it: cropped and resized) above the
outputs, each row labelled.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from sdconfig import load_settings
from sdtools.bench_video import PROMPT, server
from sdtools.local_stack import TEST_CONFIG
from sdtools.video_clip import write_clip
from sdvideo.__main__ import connect
from sdvideo.frames_in import fit
from sdvideo.job import JobOptions, RestyleJob

LABEL_W = 150
GAP = 4


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


async def restyle(settings, url: str, clip: Path, out: Path, mode: str) -> None:
    target = await connect(settings, url, mode)
    try:
        await RestyleJob(JobOptions(str(clip), out, mode, {"prompt": PROMPT}), target).run()
    finally:
        await target.pool.close()


def strip(rows: list[tuple[str, list[np.ndarray]]], picks: list[int]) -> Image.Image:
    tile_h, tile_w = rows[0][1][0].shape[:2]
    width = LABEL_W + len(picks) * (tile_w + GAP)
    sheet = Image.new("RGB", (width, len(rows) * (tile_h + GAP) + 22), (24, 26, 32))
    draw = ImageDraw.Draw(sheet)
    for column, index in enumerate(picks):
        draw.text((LABEL_W + column * (tile_w + GAP) + 4, 4), f"frame {index}", fill=(200, 200, 210))
    for row, (label, frames) in enumerate(rows):
        top = 22 + row * (tile_h + GAP)
        draw.text((8, top + tile_h // 2 - 6), label, fill=(235, 235, 240))
        for column, index in enumerate(picks):
            sheet.paste(Image.fromarray(frames[index]), (LABEL_W + column * (tile_w + GAP), top))
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=TEST_CONFIG)
    parser.add_argument("--url", help="an already running Triton's gRPC address (default: start one)")
    parser.add_argument("--out", type=Path, default=Path("docs/video_strip.png"))
    args = parser.parse_args()
    settings = load_settings(args.config)
    size = (settings.pipeline.width, settings.pipeline.height)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        clip = write_clip(work / "clip.mp4", frames=48, fps=12)
        with server(args, work / "logs") as url:
            for mode in ("canvas", "realtime"):
                asyncio.run(restyle(settings, url, clip, work / f"{mode}.mp4", mode))
        inputs = [fit(Image.fromarray(frame), *size) for frame in frames_of(clip)]
        rows = [
            ("input (cropped)", inputs),
            ("canvas", frames_of(work / "canvas.mp4")),
            ("realtime", frames_of(work / "realtime.mp4")),
        ]
    picks = [0, 9, 19, 28, 38, 47]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip(rows, picks).save(args.out, optimize=True)
    print(f"{args.out}: prompt {PROMPT!r}")
    return 0
