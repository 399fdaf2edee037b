"""A job's progress as the command line's bar and the page show it: frames done, frames/s, ETA."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    total: int
    done: int = 0
    """Frames in the output so far, those a resumed job found already made included."""
    computed: int = 0
    """Frames this run made."""
    elapsed_s: float = 0.0
    first_frame_s: float | None = None

    @property
    def fps(self) -> float:
        return self.computed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.fps if self.fps > 0 else None

    def advance(self, fresh: bool, elapsed_s: float) -> None:
        self.elapsed_s = elapsed_s
        if fresh:
            self.computed += 1
            if self.first_frame_s is None:
                self.first_frame_s = elapsed_s
        self.done += 1 if fresh else 0

    def as_json(self) -> dict[str, float | int | None]:
        eta = self.eta_s
        return {
            "total": self.total,
            "done": self.done,
            "fps": round(self.fps, 3),
            "eta_s": None if eta is None else round(eta, 1),
            "first_frame_s": None if self.first_frame_s is None else round(self.first_frame_s, 3),
        }
