"""How a mode turns the input's frames into Triton calls: the one place realtime and canvas differ.

A unit is a run of calls with the output frame each call yields (or none). Canvas: one call per
frame, each on its own, so any number run at once and Triton batches them. Realtime: the frames
go through a Triton sequence in order, because each call advances the stream batch's state.

A realtime job is cut into segments of `segment_frames`, each its own sequence that starts
`warmup_frames` before the segment (those outputs are dropped) and runs `lag` calls past it:
the stream batch answers a call with the frame sent `lag` calls earlier (len(t_index_list) - 1).
Every segment is a pure function of its frames, so a resumed job that restarts an unfinished
segment gives exactly the output of an uninterrupted run, and segments can run side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

NO_OUTPUT = -1


@dataclass(frozen=True)
class Unit:
    number: int
    inputs: tuple[int, ...]
    """Input frame indices, sent in this order."""
    outputs: tuple[int, ...]
    """Per call: the output frame it yields, or NO_OUTPUT."""
    sequence: bool

    @property
    def kept(self) -> list[int]:
        return [index for index in self.outputs if index != NO_OUTPUT]

    def target_of_input(self, position: int, lag: int) -> int:
        """The output frame the input sent at `position` becomes (NO_OUTPUT for warm-up and tail)."""
        answer = position + lag
        return self.outputs[answer] if answer < len(self.outputs) else NO_OUTPUT


@dataclass(frozen=True)
class CanvasPlan:
    """Every frame fully denoised on its own: deterministic per seed, any order."""

    lag: int = 0

    def units(self, total: int) -> Iterator[Unit]:
        for index in range(total):
            yield Unit(index, (index,), (index,), sequence=False)

    def describe(self) -> dict[str, int | str]:
        return {"mode": "canvas"}


@dataclass(frozen=True)
class RealtimePlan:
    segment_frames: int
    warmup_frames: int
    lag: int

    def units(self, total: int) -> Iterator[Unit]:
        for number, start in enumerate(range(0, total, self.segment_frames)):
            end = min(start + self.segment_frames, total)
            first = max(0, start - self.warmup_frames)
            calls = range(first, end + self.lag)
            inputs = tuple(min(index, total - 1) for index in calls)
            outputs = tuple(index - self.lag if start <= index - self.lag < end else NO_OUTPUT for index in calls)
            yield Unit(number, inputs, outputs, sequence=True)

    def describe(self) -> dict[str, int | str]:
        return {"mode": "realtime", "segment_frames": self.segment_frames, "warmup_frames": self.warmup_frames}
