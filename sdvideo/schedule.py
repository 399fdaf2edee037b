"""A prompt schedule: from given times (seconds into the input) on, another prompt.

The file is JSON or YAML, either a mapping `{"0": "a red circle ...", "2.5": "..."}` or a list of
`{"time": 2.5, "prompt": "..."}`. Before the first time the job's own prompt holds.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ScheduleError(Exception):
    """A schedule file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class PromptSchedule:
    times: tuple[float, ...]
    prompts: tuple[str, ...]

    def prompt_at(self, seconds: float, default: str | None) -> str | None:
        place = bisect.bisect_right(self.times, seconds) - 1
        return self.prompts[place] if place >= 0 else default

    def as_json(self) -> list[dict[str, Any]]:
        return [{"time": t, "prompt": p} for t, p in zip(self.times, self.prompts, strict=True)]


def parse_schedule(data: Any, source: str) -> PromptSchedule:
    entries = _entries(data, source)
    if not entries:
        raise ScheduleError(f"{source}: the schedule names no prompt")
    pairs: dict[float, str] = {}
    for raw_time, prompt in entries:
        time = _seconds(raw_time, source)
        if not isinstance(prompt, str) or not prompt.strip():
            raise ScheduleError(f"{source}: the prompt at {raw_time!r} s must be non-empty text, got {prompt!r}")
        if time in pairs:
            raise ScheduleError(f"{source}: two prompts at {time} s")
        pairs[time] = prompt
    times = tuple(sorted(pairs))
    return PromptSchedule(times, tuple(pairs[t] for t in times))


def load_schedule(path: Path) -> PromptSchedule:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleError(f"{path}: cannot read the schedule ({exc})") from None
    as_json = path.suffix.lower() == ".json"
    try:
        data = json.loads(text) if as_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ScheduleError(f"{path}: not valid {'JSON' if as_json else 'YAML'}: {exc}") from None
    return parse_schedule(data, str(path))


def _entries(data: Any, source: str) -> list[tuple[Any, Any]]:
    if isinstance(data, dict):
        return list(data.items())
    if isinstance(data, list):
        entries = []
        for index, item in enumerate(data):
            if not isinstance(item, dict) or set(item) != {"time", "prompt"}:
                raise ScheduleError(f"{source}: entry {index} must be {{time: seconds, prompt: text}}, got {item!r}")
            entries.append((item["time"], item["prompt"]))
        return entries
    raise ScheduleError(f"{source}: a schedule maps times in seconds to prompts, got {type(data).__name__}")


def _seconds(value: Any, source: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ScheduleError(f"{source}: {value!r} is no time in seconds") from None
    if not 0 <= seconds < 1e7:
        raise ScheduleError(f"{source}: time {value!r} must be zero or more seconds")
    return seconds
