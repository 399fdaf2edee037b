"""Prometheus metrics of one frontend app, in its own registry (two apps in a process never mix)."""

from __future__ import annotations

from collections import deque

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sdconfig import MODES

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
FIRST_FRAME_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
MISS_WINDOW = 100
"""Results the deadline-miss rate gauge looks back over (per mode); the counter covers all of them."""

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

    def __init__(self, targets_s: dict[str, float] | None = None) -> None:
        """`targets_s`: each mode's latency target in seconds (performance.target_latency_ms)."""
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
        self.target = Gauge(
            "frontend_latency_target_seconds",
            "The latency objective (performance.target_latency_ms)",
            ["mode"],
            registry=r,
        )
        self.misses = Counter(
            "frontend_deadline_misses",
            "Results written later than the latency target after their frame arrived",
            ["mode"],
            registry=r,
        )
        self.miss_rate = Gauge(
            "frontend_deadline_miss_rate",
            f"Share of the last {MISS_WINDOW} results that missed the latency target",
            ["mode"],
            registry=r,
        )
        self.first_frame = Histogram(
            "frontend_first_frame_seconds",
            "From a session's first frame arriving to its first result being written",
            ["mode"],
            buckets=FIRST_FRAME_BUCKETS,
            registry=r,
        )
        self._recent: dict[str, deque[bool]] = {mode: deque(maxlen=MISS_WINDOW) for mode in MODES}
        self._targets = {mode: float("inf") for mode in MODES} | (targets_s or {})
        for mode, seconds in self._targets.items():
            self.target.labels(mode=mode).set(seconds)
        for mode in MODES:  # export zeros so dashboards and benchmarks see every series from the start
            for metric in (
                self.received,
                self.skipped,
                self.dropped,
                self.processed,
                self.sessions,
                self.latency,
                self.misses,
                self.miss_rate,
                self.first_frame,
            ):
                metric.labels(mode=mode)
            for kind in ERROR_KINDS:
                self.errors.labels(mode=mode, kind=kind)

    def shown(self, mode: str, latency_s: float) -> None:
        """A result reached a viewer `latency_s` after its frame arrived: latency and deadline figures."""
        self.latency.labels(mode=mode).observe(latency_s)
        missed = latency_s > self._targets[mode]
        if missed:
            self.misses.labels(mode=mode).inc()
        recent = self._recent[mode]
        recent.append(missed)
        self.miss_rate.labels(mode=mode).set(sum(recent) / len(recent))

    def error(self, mode: str, kind: str) -> None:
        self.errors.labels(mode=mode, kind=kind).inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
