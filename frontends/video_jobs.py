"""The /video page's background jobs: one restyle per upload, each in its own random-named folder.

A job runs sdvideo's RestyleJob, the command line's code, against the app's Triton pool. Its
files are `input<suffix>` (the upload), `result<suffix>` and the frames beside it; every name is
fixed here and the job id comes from `secrets`, so no path is ever built from what a client sent.
At most `video.max_concurrent_jobs` run at once; a finished job's folder is deleted
`video.job_ttl_s` after it ended, and folders a previous process left are swept at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sdconfig.schema import VideoConfig
from sdvideo.job import JobOptions, RestyleJob, Target
from sdvideo.progress import Progress

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
UPLOAD_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv")
SWEEP_INTERVAL_S = 30.0
State = Literal["running", "done", "failed", "cancelled"]


@dataclass
class VideoJob:
    id: str
    folder: Path
    suffix: str
    mode: str
    prompt: str
    state: State = "running"
    progress: Progress | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    ended: float | None = None
    restyle: RestyleJob | None = None
    task: asyncio.Task[None] | None = None

    @property
    def upload(self) -> Path:
        return self.folder / f"input{self.suffix}"

    @property
    def result(self) -> Path:
        return self.folder / f"result{self.suffix}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "mode": self.mode,
            "prompt": self.prompt,
            "progress": self.progress.as_json() if self.progress else None,
            "error": self.error,
            "problems": self.problems[-20:],
            "has_preview": bool(self.restyle and self.restyle.latest),
        }


def upload_suffix(filename: str | None) -> str | None:
    """The container suffix of an uploaded name, from a fixed list (the name itself is never used)."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix in UPLOAD_SUFFIXES else None


class VideoJobs:
    def __init__(self, config: VideoConfig, root: Path) -> None:
        self.config = config
        self.root = root
        self.jobs: dict[str, VideoJob] = {}

    def running(self) -> int:
        return sum(1 for job in self.jobs.values() if job.state == "running")

    def get(self, job_id: str) -> VideoJob | None:
        return self.jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None

    def new_folder(self, suffix: str) -> VideoJob:
        """A job slot with its folder; the caller fills the upload, then `start`s or `discard`s it."""
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        folder.mkdir(parents=True)  # the root too, on the first upload: no folder until a job needs one
        return VideoJob(job_id, folder, suffix, mode="", prompt="")

    def discard(self, job: VideoJob) -> None:
        shutil.rmtree(job.folder, ignore_errors=True)

    def start(self, job: VideoJob, restyle: RestyleJob) -> None:
        job.restyle = restyle
        self.jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, restyle))

    def options(self, job: VideoJob, mode: str, params: dict[str, Any], in_flight: int) -> JobOptions:
        config = self.config
        return JobOptions(
            source=str(job.upload),
            output=job.result,
            mode=mode,  # type: ignore[arg-type]
            params=params,
            in_flight=in_flight,
            segment_frames=config.segment_frames,
            warmup_frames=config.warmup_frames,
            jpeg_quality=config.jpeg_quality,
            keep_frames=False,
            job_id=f"video-{job.id[:12]}",
        )

    async def _run(self, job: VideoJob, restyle: RestyleJob) -> None:
        def progressed(progress: Progress) -> None:
            job.progress = progress

        restyle.on_progress = progressed
        try:
            summary = await restyle.run()
        except asyncio.CancelledError:
            job.state, job.error = "cancelled", "the server stopped before the job was done"
            raise
        except Exception as exc:
            log.warning("video job %s failed: %s", job.id, exc)
            job.state, job.error = "failed", str(exc).replace(str(job.folder) + "/", "")
        else:
            job.state = "done"
            job.problems = [problem.message for problem in summary.problems]
        finally:
            job.ended = time.monotonic()

    def sweep(self, now: float | None = None) -> list[str]:
        """Forget and delete the jobs that ended more than job_ttl_s ago."""
        now = time.monotonic() if now is None else now
        expired = [j.id for j in self.jobs.values() if j.ended is not None and now - j.ended > self.config.job_ttl_s]
        for job_id in expired:
            self.discard(self.jobs.pop(job_id))
        return expired

    def sweep_leftovers(self) -> None:
        """Folders of jobs an earlier process ran: nobody can reach them any more."""
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if JOB_ID.fullmatch(folder.name) and folder.name not in self.jobs:
                shutil.rmtree(folder, ignore_errors=True)

    async def close(self) -> None:
        tasks = [job.task for job in self.jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def sweep_forever(jobs: VideoJobs) -> None:
    while True:
        await asyncio.sleep(min(SWEEP_INTERVAL_S, jobs.config.job_ttl_s / 4))
        try:
            await asyncio.to_thread(jobs.sweep)
        except Exception:  # the sweep must never end
            log.exception("sweeping video jobs failed")


def make_target(pool: Any, model: str, facts: Any, settings: Any) -> Target:
    return Target(
        pool,
        model,
        facts,
        sequence_idle_s=settings.realtime.pipeline.sequence_idle_timeout_s,
        max_prompt_chars=settings.server.max_prompt_chars,
    )
