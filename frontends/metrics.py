"""Prometheus metrics of one frontend app, in its own registry (two apps in a process never mix)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sdconfig import MODES

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)

ERROR_KINDS = (
    "bad_message",
    "rate_limited",
    "flooding",
    "message_too_big",
    "triton_unavailable",
    "triton_timeout",
    "model_error",
    "session_full",
    "duplicate_user",
    "idle_timeout",
    "client_limit",
    "origin_refused",
)


class FrontendMetrics:
    """Counters of what happened to frames, by mode; see README.md for how to read them together."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("frontend_frames_received", "Frames (drawings) received", ["mode"], registry=r)
        self.skipped = Counter(
            "frontend_frames_skipped", "Frames skipped by the similar-image filter", ["mode"], registry=r
        )
        self.dropped = Counter(
            "frontend_frames_dropped", "Frames superseded by a newer one before processing", ["mode"], registry=r
        )
        self.processed = Counter("frontend_frames_processed", "Frames answered by Triton", ["mode"], registry=r)
        self.sessions = Gauge("frontend_sessions", "Open WebSocket sessions", ["mode"], registry=r)
        self.latency = Histogram(
            "frontend_frame_latency_seconds",
            "From a frame's arrival to its result's MJPEG part being written",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("frontend_errors", "Errors by kind", ["mode", "kind"], registry=r)
        for mode in MODES:  # export zeros so dashboards and benchmarks see every series from the start
            for metric in (self.received, self.skipped, self.dropped, self.processed, self.sessions, self.latency):
                metric.labels(mode=mode)
            for kind in ERROR_KINDS:
                self.errors.labels(mode=mode, kind=kind)

    def error(self, mode: str, kind: str) -> None:
        self.errors.labels(mode=mode, kind=kind).inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
