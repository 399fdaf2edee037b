"""Soak test: many concurrent sessions of both modes for minutes, loopback only, bounded.

Without --url it starts its own stack on free ports (sdtools.local_stack) with
tests/config.test.yaml, the small random model at 128x128, raising the limits that would
otherwise refuse so many sessions from one address (max_sessions_per_mode, the per-client limits,
the realtime model's max_sequences). With --url it drives a stack already running (scripts/run.sh);
that stack's limits must then admit the sessions. The sessions themselves: sdtools.soak_clients.

Reported: errors by message (none are expected), unexpected closes, canvas drawings sent vs MJPEG
parts received (every drawing must get exactly one part: "lost" must be 0), realtime parts, the
frontends' RSS over time, Triton's `streamdiffusion_live_sequences` during the run and how long it
takes to return to 0 after the last session closed, and the frontends' own counters. Exit status
0 when nothing was lost, no error or unexpected close happened, the live sequences returned to 0
and the RSS stayed bounded; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import random
import statistics
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sdtools.local_stack import local_stack
from sdtools.soak_clients import Tally, canvas_client, drawing, encode, moving_scene, realtime_client

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_SESSIONS = 200
MAX_DURATION_S = 3600
SAMPLE_EVERY_S = 5.0
RSS_GROWTH_LIMIT = 1.5
"""Bounded memory: the RSS at the end is at most this times the RSS after the first minute (+32 MiB)."""
STACK_OVERRIDES = {
    "SD__SERVER__MAX_SESSIONS_PER_MODE": "128",
    "SD__SERVER__SECURITY__MAX_SESSIONS_PER_CLIENT": "256",
    "SD__SERVER__SECURITY__MAX_MESSAGES_PER_SECOND_PER_CLIENT": "100000",
    "SD__REALTIME__PIPELINE__MAX_SEQUENCES": "128",
}


# --------------------------------------------------------------------------- monitoring


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def prometheus(url: str) -> dict[str, float]:
    """name{labels} -> value, for the lines of a Prometheus text exposition."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


def live_sequences(metrics_url: str) -> float:
    values = prometheus(f"http://{metrics_url}/metrics")
    return sum(v for k, v in values.items() if k.startswith("streamdiffusion_live_sequences{"))


def frontend_counters(base_url: str) -> dict[str, float]:
    values = prometheus(f"{base_url}/metrics")
    return {k: v for k, v in values.items() if k.startswith("frontend_") and "_bucket" not in k and "created" not in k}


@dataclass
class Sample:
    t: float
    rss_mib: float | None
    live_sequences: float | None
    realtime_sessions: float
    canvas_sessions: float


async def monitor(
    base: str, triton_metrics: str | None, pid: int | None, started: float, samples: list[Sample]
) -> None:
    while True:
        counters = await asyncio.to_thread(frontend_counters, base)
        rss = await asyncio.to_thread(rss_bytes, pid) if pid else None
        live = await asyncio.to_thread(live_sequences, triton_metrics) if triton_metrics else None
        samples.append(
            Sample(
                t=round(time.monotonic() - started, 1),
                rss_mib=round(rss / 2**20, 1) if rss else None,
                live_sequences=live,
                realtime_sessions=counters.get('frontend_sessions{mode="realtime"}', 0.0),
                canvas_sessions=counters.get('frontend_sessions{mode="canvas"}', 0.0),
            )
        )
        await asyncio.sleep(SAMPLE_EVERY_S)


# --------------------------------------------------------------------------- the run


def require_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"soak_test: {url} is not a loopback address; this test only runs against this machine")


async def run(args: argparse.Namespace, base: str, triton_metrics: str | None, pid: int | None) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/realtime/settings") as answer:
        info = (await answer.json())["info"]
    width, height = int(info["width"]), int(info["height"])
    rng = random.Random(7)
    frames = [encode(moving_scene(t, width, height), "jpg") for t in range(60)]
    drawings = [encode(drawing(rng, width, height), "png" if i % 2 else "jpg") for i in range(40)]
    counters_before = frontend_counters(base)
    tally = Tally()
    samples: list[Sample] = []
    started = time.monotonic()
    args.deadline = started + args.duration
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as http:
        watcher = asyncio.create_task(monitor(base, triton_metrics, pid, started, samples))
        clients = [realtime_client(http, base, i, frames, args, tally) for i in range(args.realtime)]
        clients += [canvas_client(http, base, i, drawings, args, tally) for i in range(args.canvas)]
        await asyncio.gather(*clients)
        ended = time.monotonic()
        zero_after = None
        if triton_metrics:
            while time.monotonic() - ended < 60:
                if await asyncio.to_thread(live_sequences, triton_metrics) == 0:
                    zero_after = round(time.monotonic() - ended, 2)
                    break
                await asyncio.sleep(0.2)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    counters_after = frontend_counters(base)
    return summarize(args, tally, samples, counters_before, counters_after, zero_after, ended - started)


def summarize(
    args: argparse.Namespace,
    tally: Tally,
    samples: list[Sample],
    before: dict[str, float],
    after: dict[str, float],
    zero_after: float | None,
    elapsed: float,
) -> dict[str, Any]:
    delta = {
        k: round(after.get(k, 0.0) - before.get(k, 0.0), 3) for k in after if not k.startswith("frontend_sessions")
    }
    delta = {k: v for k, v in delta.items() if v}
    rss = [s.rss_mib for s in samples if s.rss_mib is not None]
    warm = [s.rss_mib for s in samples if s.rss_mib is not None and s.t >= 60] or rss
    live = [s.live_sequences for s in samples if s.live_sequences is not None]
    concurrent = [s.realtime_sessions + s.canvas_sessions for s in samples]
    lost = tally.canvas_sent - tally.canvas_parts
    rss_bounded = not rss or rss[-1] <= warm[0] * RSS_GROWTH_LIMIT + 32
    report = {
        "config": {k: v for k, v in vars(args).items() if k not in ("deadline",)},
        "elapsed_s": round(elapsed, 1),
        "sessions": {
            "concurrent_max": max(concurrent, default=0),
            "concurrent_median": statistics.median(concurrent) if concurrent else 0,
            "realtime_sessions_opened": tally.realtime_sessions,
        },
        "realtime": {
            "frames_sent": tally.realtime_frames,
            "parts": tally.realtime_parts,
            "parts_per_s": round(tally.realtime_parts / max(elapsed, 1e-9), 2),
        },
        "canvas": {
            "drawings_sent": tally.canvas_sent,
            "parts": tally.canvas_parts,
            "lost": lost,
            "surplus_parts": tally.canvas_surplus,
            "errors": tally.canvas_errors,
            "wait_messages": tally.canvas_waits,
            "drawings_per_s": round(tally.canvas_sent / max(elapsed, 1e-9), 2),
        },
        "errors": dict(tally.errors.most_common()),
        "unexpected_closes": {str(k): v for k, v in tally.unexpected_closes.items()},
        "frontend_rss_mib": {
            "first": rss[0] if rss else None,
            "after_1_min": warm[0] if warm else None,
            "max": max(rss, default=None),
            "last": rss[-1] if rss else None,
            "bounded": rss_bounded,
        },
        "triton_live_sequences": {"max": max(live, default=None), "zero_after_s": zero_after},
        "frontend_counters_delta": delta,
        "samples": [asdict(s) for s in samples],
    }
    report["passed"] = bool(
        lost == 0
        and tally.canvas_surplus == 0
        and not tally.errors
        and not tally.unexpected_closes
        and rss_bounded
        and (zero_after is not None or args.triton_metrics_missing)
    )
    return report


def print_report(report: dict[str, Any]) -> None:
    shown = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(shown, indent=2, default=str))
    print("frontend RSS (MiB) and Triton live sequences over time:")
    for sample in report["samples"][:: max(1, len(report["samples"]) // 20)]:
        print(
            f"  t={sample['t']:>6}s  rss={sample['rss_mib']}  live_sequences={sample['live_sequences']}  "
            f"sessions={int(sample['realtime_sessions'])}+{int(sample['canvas_sessions'])}"
        )
    print("PASSED" if report["passed"] else "FAILED")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--realtime", type=int, default=26, help="realtime sessions (default: %(default)s)")
    parser.add_argument("--canvas", type=int, default=26, help="canvas sessions (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=300, help="seconds of load (default: %(default)s)")
    parser.add_argument("--draw-every", type=float, default=3.0, help="seconds between drawings (default: %(default)s)")
    parser.add_argument(
        "--churn-every", type=float, default=60.0, help="seconds a realtime user stays (default: %(default)s)"
    )
    parser.add_argument(
        "--drain", type=float, default=180.0, help="seconds to await queued drawings (default: %(default)s)"
    )
    parser.add_argument("--url", help="frontends of a running stack (loopback); default: start one")
    parser.add_argument("--triton-metrics", help="Triton's metrics HOST:PORT, with --url")
    parser.add_argument("--frontend-pid", type=int, help="the frontends' pid for RSS, with --url")
    parser.add_argument("--logs", type=Path, default=REPO_ROOT / "logs" / "soak", help="where the own stack logs")
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args(argv)
    if not 0 < args.realtime + args.canvas <= MAX_SESSIONS or min(args.realtime, args.canvas) < 0:
        parser.error(f"between 1 and {MAX_SESSIONS} sessions in all")
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S}]")
    args.triton_metrics_missing = bool(args.url and not args.triton_metrics)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.url:
        require_loopback(args.url)
        report = asyncio.run(run(args, args.url.rstrip("/"), args.triton_metrics, args.frontend_pid))
    else:
        print(f"[soak] starting Triton and the frontends (logs in {args.logs})", flush=True)
        with local_stack(args.logs, overrides=STACK_OVERRIDES) as stack:
            print(
                f"[soak] {args.realtime} realtime + {args.canvas} canvas sessions for {args.duration:g} s", flush=True
            )
            report = asyncio.run(run(args, stack.base_url, stack.triton_metrics, stack.frontend_pid))
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0 if report["passed"] else 1
