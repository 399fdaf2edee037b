"""What a prompt change costs a realtime frame, in process (no Triton), against a frame that changes nothing.

    python scripts/bench_prompt_change.py [--config config.yaml] [--rounds 15] [--threads N]

Drives the realtime service (sdbackend.service.RealtimeService over the configured model) with one
sequence. Each round runs, one after another, a frame of each kind:

- normal: the same parameters as the frame before;
- new prompt: a prompt never seen before (one text-encoder call);
- cached prompt: back to a prompt seen before (no encoder call: the embedding is cached);
- new blend of 2: two prompts never seen before, blended (two encoder calls);
- in transition: a frame of a prompt transition under way (no encoder call);
- and, for scale, one text-encoder call on its own (a prompt never seen, through the cache);

so that a busy machine slows them alike. Each frame is timed around `RealtimeService.handle`
(what the model does per request, JPEG encode included); the medians over --rounds rounds after a
warm-up round are printed side by side, with the text-encoder calls each kind made per frame.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sdbackend.requests import CheckedRequest, GenerationParams, GenerationRequest, RequestLimits
from sdbackend.service import RealtimeService, build_service
from sdconfig import Settings, config_path, load_settings

KINDS = ("normal", "new prompt", "cached prompt", "new blend of 2", "in transition", "one text-encoder call alone")
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "gray")
SHAPES = ("circle", "square", "star", "triangle", "line")
TRANSITION_FRAMES = 4


def fresh_prompts() -> Iterator[str]:
    """Prompts in the demo model's words, none repeated."""
    for count, colour, shape in itertools.product(range(1, 100), COLOURS, SHAPES):
        yield f"{count} {colour} {shape}s on a white background"


class Driver:
    """One realtime sequence fed frame by frame, each frame timed and its encoder calls counted."""

    def __init__(self, service: RealtimeService, settings: Settings, image: np.ndarray) -> None:
        self.service, self.image = service, image
        self.defaults = RequestLimits.from_settings(settings, "realtime", 77).defaults
        self.params = self.defaults
        self.sequence, self.started = 1, False

    def frame(self, params: GenerationParams | None = None, transition: int = 0) -> tuple[float, int]:
        """(seconds, encoder calls) of one frame carrying `params` (None: the last ones again)."""
        self.params = params or self.params
        request = GenerationRequest(self.image, self.params, jpeg_quality=85, transition_frames=transition)
        calls = self.service.generator.prompts.encoder_calls
        started = time.perf_counter()
        (outcome,) = self.service.handle([CheckedRequest(self.sequence, not self.started, False, request)])
        elapsed = time.perf_counter() - started
        if isinstance(outcome, Exception):
            raise outcome
        self.started = True
        return elapsed, self.service.generator.prompts.encoder_calls - calls

    def prompt(self, text: str) -> GenerationParams:
        return replace(self.params, prompts=((text, 1.0),))

    def blend(self, first: str, second: str) -> GenerationParams:
        return replace(self.params, prompts=((first, 0.5), (second, 0.5)))


def one_round(driver: Driver, prompts: Iterator[str], seen: str) -> dict[str, tuple[float, int]]:
    """A frame of each kind, with normal frames between so that each change stands alone."""
    measured = {"normal": driver.frame()}
    measured["new prompt"] = driver.frame(driver.prompt(next(prompts)))
    driver.frame()
    measured["cached prompt"] = driver.frame(driver.prompt(seen))
    driver.frame()
    measured["new blend of 2"] = driver.frame(driver.blend(next(prompts), next(prompts)))
    driver.frame(driver.prompt(seen), transition=TRANSITION_FRAMES)
    measured["in transition"] = driver.frame()
    for _ in range(TRANSITION_FRAMES):
        driver.frame()
    started = time.perf_counter()
    driver.service.generator.prompts.get(next(prompts))
    measured["one text-encoder call alone"] = (time.perf_counter() - started, 1)
    return measured


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    config_file = (args.config or config_path()).resolve()
    settings = load_settings(config_file)
    service = build_service(settings, config_file, "realtime")
    assert isinstance(service, RealtimeService)
    size = settings.pipeline.width
    image = np.random.default_rng(0).integers(0, 256, (settings.pipeline.height, size, 3), dtype=np.uint8)
    driver, prompts = Driver(service, settings, image), fresh_prompts()
    seen = settings.pipeline.default_prompt
    print(
        f"{settings.model.model_id} {size}x{settings.pipeline.height} on {service.generator.device}, "
        f"{args.threads} threads, t_index_list {list(settings.realtime.pipeline.t_index_list)}, "
        f"cfg {settings.realtime.pipeline.cfg_type}, {args.rounds} rounds after one warm-up round"
    )
    one_round(driver, prompts, seen)
    rounds = [one_round(driver, prompts, seen) for _ in range(args.rounds)]
    normal = statistics.median(r["normal"][0] for r in rounds)
    print("| frame | median ms | vs normal | text-encoder calls per frame |")
    print("|---|---:|---:|---:|")
    for kind in KINDS:
        median = statistics.median(r[kind][0] for r in rounds)
        calls = statistics.mean(r[kind][1] for r in rounds)
        print(f"| {kind} | {median * 1000:.1f} | {median / normal:.2f}x | {calls:g} |")
    print(f"text-encoder calls in all: {service.generator.prompts.encoder_calls}")
