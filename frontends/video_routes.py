"""The /video page's API: upload a clip, follow its job, see the newest frame, download the result.

    POST /api/video/jobs                 multipart: clip (the file), mode, prompt, seed -> 201 {id, ...}
    GET  /api/video/jobs/{job_id}        the job's state and progress
    GET  /api/video/jobs/{job_id}/preview  the newest finished frame (JPEG); 204 before the first
    GET  /api/video/jobs/{job_id}/result the restyled clip, once done
    GET  /api/video/settings             the limits and modes the page offers

The upload is streamed to the job's folder and cut off past video.max_upload_bytes (413); the
clip is probed before any job starts, so a file that is no video, too long or uncroppable gets
its reason at once (400/413). Beyond video.max_concurrent_jobs running jobs an upload gets 429.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from frontends.app_keys import CONFIG_FILE_KEY, SERVICES_KEY, SETTINGS_KEY, VIDEO_JOBS_KEY
from frontends.http_errors import json_error
from frontends.triton_client import TritonError
from frontends.video_jobs import UPLOAD_SUFFIXES, VideoJob, VideoJobs, make_target, sweep_forever, upload_suffix
from sdconfig import Mode
from sdvideo.frames_in import FrameSource, InputError
from sdvideo.job import ParamsError, RestyleJob

CHUNK = 256 * 1024
TEXT_FIELD_BYTES = 8192


def add_video_routes(app: web.Application, modes: tuple[Mode, ...]) -> None:
    """The API routes and the jobs' lifetime; the page itself is added with the others (pages.py)."""
    app.cleanup_ctx.append(_jobs_context)
    router = app.router
    router.add_post("/api/video/jobs", create_job)
    router.add_get("/api/video/jobs/{job_id}", job_state)
    router.add_get("/api/video/jobs/{job_id}/preview", job_preview)
    router.add_get("/api/video/jobs/{job_id}/result", job_result)
    router.add_get("/api/video/settings", video_settings)


async def _jobs_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    root = Path(settings.video.jobs_dir)
    if not root.is_absolute():
        root = app[CONFIG_FILE_KEY].parent / root
    jobs = VideoJobs(settings.video, root)
    await asyncio.to_thread(jobs.sweep_leftovers)
    app[VIDEO_JOBS_KEY] = jobs
    sweeper = asyncio.create_task(sweep_forever(jobs))
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await jobs.close()


async def video_settings(request: web.Request) -> web.Response:
    services = request.app[SERVICES_KEY]
    video = services.settings.video
    return web.json_response(
        {
            "modes": list(services.modes),
            "max_upload_bytes": video.max_upload_bytes,
            "max_duration_s": video.max_duration_s,
            "max_frames": video.max_frames,
            "max_concurrent_jobs": video.max_concurrent_jobs,
            "job_ttl_s": video.job_ttl_s,
            "suffixes": list(UPLOAD_SUFFIXES),
            "default_prompt": services.settings.pipeline.default_prompt,
        }
    )


def _job_of(request: web.Request) -> VideoJob:
    job = request.app[VIDEO_JOBS_KEY].get(request.match_info["job_id"])
    if job is None:
        raise web.HTTPNotFound(
            text='{"status": "error", "message": "no such video job: it ended long ago and was cleaned up, '
            'or the server restarted; upload the clip again"}',
            content_type="application/json",
        )
    return job


async def job_state(request: web.Request) -> web.Response:
    return web.json_response(_job_of(request).as_json(), headers={"Cache-Control": "no-store"})


async def job_preview(request: web.Request) -> web.Response:
    job = _job_of(request)
    latest = job.restyle.latest if job.restyle else None
    if latest is None:
        return web.Response(status=204)
    return web.Response(body=latest, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def job_result(request: web.Request) -> web.StreamResponse:
    job = _job_of(request)
    if job.state != "done":
        return json_error(409, f"the job is {job.state}; the result can be downloaded once it is done")
    headers = {"Content-Disposition": f'attachment; filename="restyled{job.suffix}"'}
    return web.FileResponse(job.result, headers=headers)


async def create_job(request: web.Request) -> web.Response:
    jobs = request.app[VIDEO_JOBS_KEY]
    limits = jobs.config
    if jobs.running() >= limits.max_concurrent_jobs:
        return json_error(
            429, f"{jobs.running()} video jobs are running, the most this server takes; try again when one is done"
        )
    if request.content_length is not None and request.content_length > limits.max_upload_bytes + TEXT_FIELD_BYTES:
        return _too_large(limits.max_upload_bytes)
    if not request.content_type.startswith("multipart/"):
        return json_error(400, "send the clip as multipart/form-data with a 'clip' file field")
    fields: dict[str, str] = {}
    job: VideoJob | None = None
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                return json_error(400, "nested multipart bodies are not accepted")
            if part.name == "clip":
                if job is not None:
                    return json_error(400, "send one clip per job")
                suffix = upload_suffix(part.filename)
                if suffix is None:
                    return json_error(400, f"upload a video file: {', '.join(UPLOAD_SUFFIXES)}")
                job = jobs.new_folder(suffix)
                if not await _save(part, job.upload, limits.max_upload_bytes):
                    return _too_large(limits.max_upload_bytes)
            elif part.name in ("mode", "prompt", "seed"):
                text = await _text_field(part)
                if text is None:
                    return json_error(413, f"the field {part.name!r} is longer than {TEXT_FIELD_BYTES} bytes")
                fields[part.name] = text
            else:
                return json_error(400, f"unknown field {str(part.name)[:40]!r}: send clip, mode, prompt and seed")
        if job is None:
            return json_error(400, "no clip in the upload: send the file in a field named 'clip'")
        answer = await _start(request, job, fields)
    finally:
        if job is not None and job.id not in jobs.jobs:
            await asyncio.to_thread(jobs.discard, job)
    return answer


async def _save(part: BodyPartReader, path: Path, limit: int) -> bool:
    """Stream the part to `path`; False as soon as it passes `limit` bytes."""
    written = 0
    with path.open("wb") as out:
        while chunk := await part.read_chunk(CHUNK):
            written += len(chunk)
            if written > limit:
                return False
            await asyncio.to_thread(out.write, chunk)
    return True


async def _text_field(part: BodyPartReader) -> str | None:
    """The field's text, or None past TEXT_FIELD_BYTES (read no further than that)."""
    data = bytearray()
    while chunk := await part.read_chunk(TEXT_FIELD_BYTES):
        data += chunk
        if len(data) > TEXT_FIELD_BYTES:
            return None
    return data.decode("utf-8", "replace")


def _too_large(limit: int) -> web.Response:
    return json_error(
        413, f"the clip is larger than {limit} bytes, the most this server takes (video.max_upload_bytes)"
    )


async def _start(request: web.Request, job: VideoJob, fields: dict[str, str]) -> web.Response:
    services = request.app[SERVICES_KEY]
    jobs = request.app[VIDEO_JOBS_KEY]
    mode = fields.get("mode", "canvas")
    if mode not in services.modes:
        return json_error(400, f"mode {mode[:40]!r} is not served here; choose one of {', '.join(services.modes)}")
    try:
        facts = await services.facts.get(mode)
    except TritonError as exc:
        return json_error(503, f"the {mode} model is not available: {exc}")
    width, height = int(facts.info["width"]), int(facts.info["height"])
    try:
        source = await asyncio.to_thread(FrameSource, str(job.upload), width, height)
    except InputError as exc:
        return json_error(400, str(exc).replace(str(job.folder) + "/", "uploaded clip "))
    refusal = _over_limits(source.info.frames, float(source.info.frames / source.info.fps), jobs)
    if refusal:
        return json_error(413, refusal)
    params: dict[str, Any] = {key: fields[key] for key in ("prompt", "seed") if fields.get(key, "").strip()}
    job.mode, job.prompt = mode, params.get("prompt", services.settings.pipeline.default_prompt)
    target = make_target(services.pool, services.settings.model_name(mode), facts, services.settings)
    try:
        restyle = RestyleJob(jobs.options(job, mode, params, jobs.config.in_flight), target)
    except ParamsError as exc:
        return json_error(400, str(exc))
    if jobs.running() >= jobs.config.max_concurrent_jobs:  # another upload finished first
        return json_error(429, "the server took another video job meanwhile; try again when one is done")
    jobs.start(job, restyle)
    return web.json_response(job.as_json(), status=201)


def _over_limits(frames: int, seconds: float, jobs: VideoJobs) -> str | None:
    limits = jobs.config
    if seconds > limits.max_duration_s:
        return f"the clip lasts {seconds:.1f} s; this server takes at most {limits.max_duration_s:g} s " + (
            "(video.max_duration_s)"
        )
    if frames > limits.max_frames:
        return f"the clip has {frames} frames; this server takes at most {limits.max_frames} (video.max_frames)"
    return None
