"""The finished frames of a job on disk, and what the job was, so that `--resume` can go on where it stopped.

A video output keeps its frames in `<output>.parts/`; an image-folder output is its own store.
The manifest records the input, mode, parameters and schedule: resuming with anything else
would splice two different restylings, so it is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

MANIFEST = ".restyle.json"
FRAME_NAME = "frame_{:06d}.jpg"


class ResumeError(Exception):
    """`--resume` without a matching partial output."""


class FrameStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def for_output(cls, output: Path, video: bool) -> FrameStore:
        return cls(output.with_name(output.name + ".parts") if video else output)

    def path(self, index: int) -> Path:
        return self.folder / FRAME_NAME.format(index)

    def has(self, index: int) -> bool:
        return self.path(index).is_file()

    def read(self, index: int) -> bytes:
        return self.path(index).read_bytes()

    def write(self, index: int, jpeg: bytes) -> None:
        """Written aside and renamed, so an interrupt never leaves half a frame behind."""
        partial = self.folder / f".{index}.tmp"
        partial.write_bytes(jpeg)
        partial.replace(self.path(index))

    def count(self) -> int:
        return sum(1 for _ in self.folder.glob("frame_*.jpg"))

    def start(self, manifest: dict[str, Any], resume: bool) -> None:
        """A fresh store, or with `resume` the existing one when its manifest matches."""
        if resume:
            found = self._manifest()
            if found is None:
                raise ResumeError(f"{self.folder}: nothing to resume (no {MANIFEST}); run without --resume")
            if found != manifest:
                changed = sorted(key for key in {*found, *manifest} if found.get(key) != manifest.get(key))
                raise ResumeError(
                    f"{self.folder}: the partial output was made with other {', '.join(changed)}; "
                    "run without --resume to start over"
                )
            return
        if self.folder.is_dir():
            for stale in [*self.folder.glob("frame_*.jpg"), *self.folder.glob(".*.tmp")]:
                stale.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))

    def _manifest(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
