"""The load benchmark's deadline figures from /metrics deltas and the clients' own timings."""

from __future__ import annotations

from sdtools.load_benchmark import deadline_figures, parse_args
from sdtools.load_clients import ClientResult


def test_miss_rates_and_first_frame_times_of_a_phase() -> None:
    before = {"misses": 5, "shown": 10, "first_frame_s": 1.0, "first_frames": 2}
    after = {"misses": 8, "shown": 20, "first_frame_s": 1.9, "first_frames": 5}
    results = [ClientResult(first_frame_s=s) for s in (0.2, 0.4, 0.3)] + [ClientResult()]
    figures = deadline_figures(before, after, [0.1, 0.3, 0.26, 0.2], results, 250.0)
    assert figures["deadline_miss_rate"] == 0.3  # 3 of the phase's 10 results
    assert figures["client_miss_rate"] == 0.5
    assert figures["first_frame_ms"] == {"p50": 300.0, "max": 400.0}
    assert figures["server_first_frame_ms"] == 300.0


def test_a_phase_without_results_has_no_rates() -> None:
    figures = deadline_figures({}, {}, [], [ClientResult()], None)
    assert figures == {
        "deadline_miss_rate": None,
        "client_miss_rate": None,
        "first_frame_ms": None,
        "server_first_frame_ms": None,
    }


def test_session_counts_run_in_order_and_default_to_clients() -> None:
    assert parse_args(["--sessions", "1", "4", "16"]).sessions == [1, 4, 16]
    assert parse_args(["--clients", "3"]).sessions == [3]
