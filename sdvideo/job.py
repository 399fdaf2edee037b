"""One restyle job: frames in, Triton calls in flight, frames out in order, resumable.

The command line and the /video page run this same class. It speaks to Triton through the
frontends' client (TritonPool, TritonSequence, build_inputs) and validates parameters against the
model facts the server declares, exactly as the live modes do. A call that fails is retried once
(a realtime segment from its start, since its state went with the failure); if it fails again
the input frame stands in for the missing output, the problem is reported, and the job goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from frontends.facts_cache import ModelFacts
from frontends.params import validate_params
from frontends.protocol import BadMessage
from frontends.triton_client import TritonError, TritonPool
from frontends.triton_inputs import build_inputs
from frontends.triton_sequence import TritonSequence
from sdconfig import Mode
from sdvideo.frame_window import FrameWindow
from sdvideo.frames_in import FrameSource, InputInfo
from sdvideo.frames_out import VideoWriter, is_video_output
from sdvideo.plan import NO_OUTPUT, CanvasPlan, RealtimePlan, Unit
from sdvideo.progress import Progress
from sdvideo.schedule import PromptSchedule
from sdvideo.store import FrameStore

log = logging.getLogger(__name__)

SEQUENCE_IDLE_S = 60.0
WINDOW_SLACK = 8


class ParamsError(ValueError):
    """Parameters the model facts refuse; the message names the parameter."""


@dataclass(frozen=True)
class JobOptions:
    source: str
    output: Path
    mode: Mode
    params: dict[str, Any] = field(default_factory=dict)
    schedule: PromptSchedule | None = None
    in_flight: int = 4
    segment_frames: int = 96
    warmup_frames: int = 8
    jpeg_quality: int = 95
    resume: bool = False
    keep_frames: bool = False
    job_id: str = "restyle"


@dataclass(frozen=True)
class Target:
    """Where the job's calls go: the pool, the model of the mode and its declared facts."""

    pool: TritonPool
    model: str
    facts: ModelFacts
    sequence_idle_s: float = SEQUENCE_IDLE_S
    max_prompt_chars: int = 1000


@dataclass(frozen=True)
class Problem:
    frame: int
    message: str


@dataclass
class Summary:
    frames: int
    computed: int
    seconds: float
    first_frame_s: float | None
    problems: list[Problem]
    output: Path
    info: InputInfo

    @property
    def fps(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def checked_params(params: dict[str, Any], schedule: PromptSchedule | None, target: Target) -> dict[str, Any]:
    """The live modes' validation: the facts' schema, the prompt length; each scheduled prompt too."""
    schema = target.facts.input_params
    try:
        checked = validate_params(params, schema, target.max_prompt_chars)
        for prompt in schedule.prompts if schedule else ():
            validate_params({**checked, "prompt": prompt}, schema, target.max_prompt_chars)
    except BadMessage as exc:
        raise ParamsError(str(exc)) from None
    return checked


def encode_png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class RestyleJob:
    def __init__(
        self, options: JobOptions, target: Target, on_progress: Callable[[Progress], None] | None = None
    ) -> None:
        self.options = options
        self.target = target
        self.on_progress = on_progress or (lambda progress: None)
        info = target.facts.info
        self.size = (int(info["width"]), int(info["height"]))
        self.params = checked_params(options.params, options.schedule, target)
        steps = self.params.get("t_index_list") or info.get("t_index_list") or [0]
        self.plan = (
            RealtimePlan(options.segment_frames, options.warmup_frames, lag=len(steps) - 1)
            if options.mode == "realtime"
            else CanvasPlan()
        )
        self.video_out = is_video_output(options.output)
        self.store = FrameStore.for_output(options.output, self.video_out)
        self.problems: list[Problem] = []
        self.latest: bytes | None = None
        """The newest finished frame (JPEG): the page's preview."""
        self._results: dict[int, bytes] = {}
        self._arrived = asyncio.Event()
        self._next_input: dict[int, int] = {}
        """Per running unit, its first input: the window holds a unit's frames until it is done, so
        a retry or a stand-in can read them again."""
        self._existing: set[int] = set()
        self._have: set[int] = set()
        """Frames in the store: found there at the start, or delivered by this run."""

    # ---- the run ------------------------------------------------------------------------------

    async def run(self) -> Summary:
        source = await asyncio.to_thread(FrameSource, self.options.source, *self.size)
        info = source.info
        await asyncio.to_thread(self.store.start, self._manifest(info), self.options.resume)
        self._existing = await asyncio.to_thread(lambda: {i for i in range(info.frames) if self.store.has(i)})
        self._have = set(self._existing)
        units = [u for u in self.plan.units(info.frames) if not self._have.issuperset(u.kept)]
        capacity = self._window_capacity(units)
        window = FrameWindow(source.frames(), info.frames, capacity)
        writer = await asyncio.to_thread(self._open_writer, info)
        progress = Progress(total=info.frames, done=len(self._existing))
        started = time.monotonic()
        decoder = asyncio.create_task(window.decode())
        workers = asyncio.create_task(self._run_units(units, window, info))
        workers.add_done_callback(lambda _: self._arrived.set())  # the writer learns why frames stopped
        complete = False
        try:
            complete = await self._write_in_order(writer, info, progress, started, workers)
            await workers
        finally:
            for task in (workers, decoder):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await asyncio.shield(window.close())
            if writer is not None:
                await asyncio.shield(asyncio.to_thread(writer.close, complete))
        if window.decoded < info.frames:
            self.problems.append(
                Problem(window.decoded, f"the input declares {info.frames} frames but only {window.decoded} decode")
            )
        if complete and self.video_out and not self.options.keep_frames:
            await asyncio.to_thread(self.store.remove)
        return Summary(
            info.frames,
            progress.computed,
            time.monotonic() - started,
            progress.first_frame_s,
            self.problems,
            self.options.output,
            info,
        )

    def _manifest(self, info: InputInfo) -> dict[str, Any]:
        stat = info.path.stat() if info.is_video else None
        return {
            "input": str(info.path.resolve()),
            "input_bytes": stat.st_size if stat else None,
            "frames": info.frames,
            "plan": self.plan.describe(),
            "params": self.params,
            "schedule": self.options.schedule.as_json() if self.options.schedule else None,
            "model": {"name": self.target.model, "width": self.size[0], "height": self.size[1]},
            "jpeg_quality": self.options.jpeg_quality,
        }

    def _window_capacity(self, units: list[Unit]) -> int:
        longest = max((len(unit.inputs) for unit in units), default=1)
        return longest * max(1, self.options.in_flight) + WINDOW_SLACK

    def _open_writer(self, info: InputInfo) -> VideoWriter | None:
        if not self.video_out:
            return None
        return VideoWriter(self.options.output, info.fps, self.size, info.path if info.has_audio else None)

    async def _write_in_order(
        self,
        writer: VideoWriter | None,
        info: InputInfo,
        progress: Progress,
        started: float,
        workers: asyncio.Task[None],
    ) -> bool:
        """Frames to the output as soon as every earlier one is there; True once all are written."""
        for index in range(info.frames):
            while index not in self._results and index not in self._existing:
                if workers.done():
                    workers.result()  # raises what ended the workers early
                    if index not in self._results:
                        raise RuntimeError(f"frame {index} was never produced")
                self._arrived.clear()
                await self._arrived.wait()
            jpeg = self._results.pop(index, None)
            fresh = jpeg is not None
            if jpeg is None:
                jpeg = await asyncio.to_thread(self.store.read, index)
            if writer is not None:
                await asyncio.to_thread(writer.write, jpeg)
            progress.advance(fresh, time.monotonic() - started)
            self.on_progress(progress)
        return True

    # ---- the units ----------------------------------------------------------------------------

    async def _run_units(self, units: list[Unit], window: FrameWindow, info: InputInfo) -> None:
        slots = asyncio.Semaphore(max(1, self.options.in_flight))
        running: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []

        def finished(task: asyncio.Task[None]) -> None:
            slots.release()
            running.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]

        try:
            for position, unit in enumerate(units):
                await slots.acquire()
                if failures:
                    raise failures[0]
                self._next_input[unit.number] = unit.inputs[0]
                later = units[position + 1].inputs[0] if position + 1 < len(units) else info.frames
                await self._release(window, later)
                task = asyncio.create_task(self._run_unit(unit, window, info))
                running.add(task)
                task.add_done_callback(finished)
            if running:
                await asyncio.gather(*running)
            if failures:
                raise failures[0]
        finally:
            for task in running:
                task.cancel()

    async def _release(self, window: FrameWindow, upcoming: int) -> None:
        await window.release_below(min([*self._next_input.values(), upcoming]))

    async def _run_unit(self, unit: Unit, window: FrameWindow, info: InputInfo) -> None:
        try:
            for attempt in (1, 2):
                try:
                    await self._calls(unit, window, info, attempt)
                    return
                except TritonError as exc:
                    if attempt == 1:
                        log.warning("unit %d failed (%s); retrying once", unit.number, exc)
                        continue
                    await self._stand_in(unit, window, str(exc))
        finally:
            self._next_input.pop(unit.number, None)

    async def _calls(self, unit: Unit, window: FrameWindow, info: InputInfo, attempt: int) -> None:
        if not unit.sequence:
            (index,), (output,) = unit.inputs, unit.outputs
            frame = await window.get(index)
            jpeg = await self._call(await asyncio.to_thread(self._inputs, frame, index, info.fps))
            if output not in self._have:
                await self._deliver(output, jpeg)
            return
        sequence = TritonSequence(
            self.target.pool,
            f"{self.options.job_id}-{unit.number}-{attempt}",
            self.target.model,
            self.target.sequence_idle_s,
        )
        try:
            await self._stream(unit, sequence, window, info)
        finally:
            await sequence.end()

    async def _stream(self, unit: Unit, sequence: TritonSequence, window: FrameWindow, info: InputInfo) -> None:
        """The unit's frames through its sequence. The stream batch answers each accepted frame with
        the frame accepted `lag` frames before, so outputs are matched by accepted frames; a refused
        frame stands in for itself, and the last frames are flushed with repeats if refusals left
        them inside the stream."""
        lag = self.plan.lag
        inside: deque[int] = deque()
        """Output frames of the inputs accepted so far whose answers have not come yet."""
        calls = [(unit.inputs[p], unit.target_of_input(p, lag)) for p in range(len(unit.inputs))]
        flushes, last_accepted = 0, unit.inputs[-1]
        while calls or (max(inside, default=NO_OUTPUT) != NO_OUTPUT and flushes < 2 * lag + 2):
            if calls:
                index, target = calls.pop(0)
            else:  # a refusal held the stream back: repeat the last accepted frame until the kept ones are out
                index, target, flushes = last_accepted, NO_OUTPUT, flushes + 1
            frame = await window.get(index)
            jpeg = await self._call_in_sequence(sequence, await asyncio.to_thread(self._inputs, frame, index, info.fps))
            if jpeg is None:  # refused twice; the stream's state is as it was
                if target != NO_OUTPUT and target not in self._have:
                    await self._stand_in_frame(target, frame, "the model refused it twice")
                continue
            inside.append(target)
            last_accepted = index
            if len(inside) > lag:
                done = inside.popleft()
                if done != NO_OUTPUT and done not in self._have:
                    await self._deliver(done, jpeg)
        for left in inside:  # only after repeated refusals at the very end
            if left != NO_OUTPUT and left not in self._have:
                await self._stand_in_frame(left, await window.get(left), "the stream ended early")

    async def _call(self, inputs: list) -> bytes:
        endpoint = self.target.pool.pick(self.options.job_id)
        jpeg = await self.target.pool.infer(endpoint, self.target.model, inputs)
        if jpeg is None:
            raise TritonError("model_error", "the model answered without an image")
        return jpeg

    async def _call_in_sequence(self, sequence: TritonSequence, inputs: list) -> bytes | None:
        """One frame of a sequence. A frame the model refuses changes no state (before START, the
        next frame starts the sequence), so it is sent once more and then skipped (None); any
        other failure loses the state and ends the unit."""
        for attempt in (1, 2):
            started, restarts = sequence.started, sequence.restarts
            try:
                jpeg = await sequence.infer(inputs)
            except TritonError as exc:
                if not exc.refused:
                    raise
                if attempt == 2:
                    return None
                continue
            if started and sequence.restarts != restarts:
                raise TritonError("model_error", "the sequence was restarted: its state is gone")
            if jpeg is None:
                raise TritonError("model_error", "the model answered without an image")
            return jpeg
        return None

    def _inputs(self, frame: np.ndarray, index: int, fps: Fraction) -> list:
        params = dict(self.params)
        if self.options.schedule is not None:
            prompt = self.options.schedule.prompt_at(float(index / fps), params.get("prompt"))
            if prompt is not None:
                params["prompt"] = prompt
        return build_inputs(encode_png(frame), params, self.target.facts.input_params, self.options.jpeg_quality)

    async def _deliver(self, index: int, jpeg: bytes) -> None:
        self._have.add(index)
        await asyncio.to_thread(self.store.write, index, jpeg)
        self._results[index] = jpeg
        self.latest = jpeg
        self._arrived.set()

    async def _stand_in(self, unit: Unit, window: FrameWindow, reason: str) -> None:
        """After the retry failed too: the input frame takes each missing output's place."""
        for index in unit.kept:
            if index not in self._have:
                await self._stand_in_frame(index, await window.get(index), reason)

    async def _stand_in_frame(self, index: int, frame: np.ndarray, reason: str) -> None:
        message = f"frame {index} failed twice ({reason}); the input frame stands in"
        log.warning(message)
        self.problems.append(Problem(index, message))
        await self._deliver(index, await asyncio.to_thread(encode_jpeg, frame, self.options.jpeg_quality))
