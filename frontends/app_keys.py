"""What every handler and session of one app shares, reached through typed app keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from frontends.client_limits import ClientLimits
from frontends.facts_cache import FactsCache
from frontends.image_pool import ImagePool
from frontends.metrics import FrontendMetrics
from frontends.registry import SessionRegistry
from frontends.triton_client import TritonPool
from frontends.video_jobs import VideoJobs
from sdconfig import Mode, Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    modes: tuple[Mode, ...]
    pool: TritonPool
    facts: FactsCache
    metrics: FrontendMetrics
    registry: SessionRegistry
    images: ImagePool


SETTINGS_KEY = web.AppKey("settings", Settings)
METRICS_KEY = web.AppKey("metrics", FrontendMetrics)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)
CLIENTS_KEY = web.AppKey("clients", ClientLimits)
"""Per-client-address session, stream and message limits (server.security)."""
SERVICES_KEY = web.AppKey("services", Services)
"""Set by the Triton client's cleanup context once the event loop runs (gRPC channels bind to it)."""
DEPRECATED_KEY = web.RequestKey("deprecated_successor", str)
"""On a request through a legacy alias: the path that replaces it (sets the Deprecation header)."""
CONFIG_FILE_KEY = web.AppKey("config_file", Path)
"""The settings' file: relative paths in it (video.jobs_dir) are taken from its folder."""
VIDEO_JOBS_KEY = web.AppKey("video_jobs", VideoJobs)
"""The /video page's jobs (frontends/video_jobs.py); set by its cleanup context."""
