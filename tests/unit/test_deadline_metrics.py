"""The frontend's deadline figures: a result later than its mode's target is a miss, counted and
shared over the recent results; the exposition carries them with the target and first-frame times."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from frontends.metrics import MISS_WINDOW, FrontendMetrics


def samples(metrics: FrontendMetrics) -> dict[tuple[str, str], float]:
    body, _ = metrics.exposition()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if "le" not in sample.labels:
                found[(sample.name, sample.labels.get("mode", ""))] = sample.value
    return found


def test_results_later_than_the_target_are_misses_per_mode() -> None:
    metrics = FrontendMetrics({"realtime": 0.1, "canvas": 1.0})
    for latency in (0.05, 0.2, 0.1, 0.3):  # exactly on the target is in time
        metrics.shown("realtime", latency)
    metrics.shown("canvas", 0.5)
    values = samples(metrics)
    assert values[("frontend_deadline_misses_total", "realtime")] == 2
    assert values[("frontend_deadline_miss_rate", "realtime")] == 0.5
    assert values[("frontend_frame_latency_seconds_count", "realtime")] == 4
    assert values[("frontend_deadline_misses_total", "canvas")] == 0
    assert values[("frontend_latency_target_seconds", "realtime")] == 0.1
    assert values[("frontend_latency_target_seconds", "canvas")] == 1.0


def test_the_rate_looks_at_the_recent_results_only() -> None:
    metrics = FrontendMetrics({"realtime": 0.1})
    for _ in range(MISS_WINDOW):
        metrics.shown("realtime", 1.0)
    for _ in range(MISS_WINDOW // 4):
        metrics.shown("realtime", 0.01)
    values = samples(metrics)
    assert values[("frontend_deadline_miss_rate", "realtime")] == 0.75
    assert values[("frontend_deadline_misses_total", "realtime")] == MISS_WINDOW


def test_every_series_is_exported_before_the_first_frame() -> None:
    values = samples(FrontendMetrics())
    for mode in ("realtime", "canvas"):
        assert values[("frontend_deadline_misses_total", mode)] == 0
        assert values[("frontend_deadline_miss_rate", mode)] == 0
        assert values[("frontend_first_frame_seconds_count", mode)] == 0
