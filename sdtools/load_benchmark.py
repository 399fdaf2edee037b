"""Load benchmark of the running stack through the frontends' own protocol.

Per mode, one phase after the other, N protocol clients (sdtools.load_clients). Latency is from
sending a frame to receiving its part (parts come in frame order, which the counters below
confirm). Frame counters (received, processed, skipped, dropped, errors) are the frontends' own
/metrics, before and after.

CPU: the frontend process's CPU time (all threads, from /proc/PID/task/*/schedstat) per processed
frame, beside the cost of only decoding and encoding the same frames at the mode's JPEG quality,
measured in this run on this machine (the codec baseline). The frontends aim at no more than
twice that baseline at 512x512: the protocol, validation, filter and streaming cost about as much
as one decode and one encode. The process also spends a little CPU with no frames at all (gRPC's
threads, timers); that idle rate is sampled before each phase and reported, with the per-frame
figure net of it, since at a few frames a second (a CPU-only Triton) it weighs on every frame.

Latency objective: a result is a deadline miss when it comes later than the mode's
performance.target_latency_ms (read from /api/{mode}/settings). The frontends count misses
against the frame's arrival (/metrics frontend_deadline_misses_total over
frontend_frame_latency_seconds_count); the clients count them against their own send time, network
included. Time to first frame: from a session's first frame to its first part, per client
(median and worst of the phase), beside the frontends' own frontend_first_frame_seconds mean.
`--sessions 1 4 16` runs every mode at each session count in one run and ends with a table of both.

`--own-stack` starts Triton and the frontends on free loopback ports first (sdtools.local_stack,
tests/config.test.yaml with room for 64 sessions from this one address) and stops them at the end.

Loopback only: the benchmark refuses other hosts. It is bounded by --duration and --max-frames.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import statistics
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import psutil

from sdtools.load_clients import DRAIN_S, Plan, canvas_client, encode_frames, realtime_client
from sdtools.local_stack import REPO_ROOT, local_stack

OWN_STACK_OVERRIDES = {
    "SD__SERVER__MAX_SESSIONS_PER_MODE": "64",
    "SD__SERVER__SECURITY__MAX_SESSIONS_PER_CLIENT": "160",  # a session and its stream each count
    "SD__SERVER__SECURITY__MAX_MESSAGES_PER_SECOND_PER_CLIENT": "100000",
    "SD__REALTIME__PIPELINE__MAX_SEQUENCES": "128",
}


@dataclass
class PhaseReport:
    mode: str
    clients: int
    size: str
    seconds: float
    frames_sent: int
    parts_received: int
    fps_total: float
    fps_per_client: float
    latency_ms: dict[str, float]
    counters: dict[str, int]
    errors: int
    frontend_cpu_ms_per_frame: float | None
    frontend_cpu_ms_per_received_frame: float | None
    frontend_idle_cpu_ms_per_s: float | None
    frontend_net_cpu_ms_per_frame: float | None
    codec_ms_per_frame: float
    cpu_ratio: float | None
    net_cpu_ratio: float | None
    notes: list[str]
    target_latency_ms: float | None = None
    deadline_miss_rate: float | None = None
    """Frontends' count: results written later than the target after their frame arrived, over results written."""
    client_miss_rate: float | None = None
    """Clients' count: parts later than the target after their frame was sent, over parts paired with a frame."""
    first_frame_ms: dict[str, float] | None = None
    """Per client, from its first frame sent to its first part: p50 and max over the phase's clients."""
    server_first_frame_ms: float | None = None
    """The frontends' frontend_first_frame_seconds over the phase's sessions, mean."""


def codec_baseline_ms(frames: list[bytes], quality: int, samples: int = 300) -> float:
    """CPU milliseconds to decode one of `frames` and encode it again at `quality`."""
    rounds = max(1, samples // len(frames))
    for data in frames[:3]:  # warm up (first calls allocate)
        cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    start = time.process_time()
    for _ in range(rounds):
        for data in frames:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return (time.process_time() - start) * 1000 / (rounds * len(frames))


def fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


DEADLINE_SERIES = {
    "frontend_deadline_misses_total": "misses",
    "frontend_frame_latency_seconds_count": "shown",
    "frontend_first_frame_seconds_sum": "first_frame_s",
    "frontend_first_frame_seconds_count": "first_frames",
}


def frame_counters(base_url: str, mode: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=30) as response:
        text = response.read().decode()
    counters: dict[str, float] = {"errors": 0.0}
    for line in text.splitlines():
        if line.startswith("#") or f'mode="{mode}"' not in line:
            continue
        name, value = line.rsplit(" ", 1)
        for kind in ("received", "processed", "skipped", "dropped"):
            if name.startswith(f"frontend_frames_{kind}_total"):
                counters[kind] = float(value)
        for series, key in DEADLINE_SERIES.items():
            if name.startswith(f"{series}{{"):
                counters[key] = float(value)
        if name.startswith("frontend_errors_total"):
            counters["errors"] += float(value)
    return counters


def find_listener_pid(port: int) -> int | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid`: nanoseconds from schedstat where Linux has it, else ticks."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks.iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system


def require_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"load_benchmark: {url} is not a loopback address; this benchmark only runs locally")


async def run_phase(args: argparse.Namespace, mode: str, pid: int | None, clients: int) -> PhaseReport:
    base = args.url.rstrip("/")
    settings = fetch_json(f"{base}/api/{mode}/settings")
    width, height = args.size or (settings["info"]["width"], settings["info"]["height"])
    quality = int(settings["performance"]["jpeg_quality"])
    frames = encode_frames(width, height, still=args.scene == "still")
    codec_ms = codec_baseline_ms(frames, quality)

    idle_rate = idle_cpu_rate(pid, args.idle_sample) if pid else None
    before = frame_counters(base, mode)
    cpu_before = cpu_seconds(pid) if pid else None
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        plan = Plan(http, base, frames, started + args.duration, args.max_frames)
        if mode == "realtime":
            drain_s = 0.0 if args.scene == "still" else DRAIN_S
            tasks = [realtime_client(plan, f"bench-rt-{clients}-{i}", drain_s) for i in range(clients)]
        else:
            tasks = [canvas_client(plan, f"bench-cv-{clients}-{i}", args.canvas_window) for i in range(clients)]
        results = await asyncio.gather(*tasks)
    seconds = time.monotonic() - started
    after = frame_counters(base, mode)
    cpu_after = cpu_seconds(pid) if pid else None

    counters = {k: int(after.get(k, 0) - before.get(k, 0)) for k in ("received", "processed", "skipped", "dropped")}
    errors = int(after["errors"] - before["errors"])
    latencies = sorted(x for r in results for x in r.latencies)
    parts = sum(r.parts for r in results)
    notes = []
    if args.scene == "still" and mode == "realtime":
        latencies = []
        notes.append("still scene: most frames are skipped on purpose, so no latency is paired with them")
    elif counters["skipped"] or counters["dropped"]:
        notes.append("frames were skipped or dropped: latencies pair parts with frames in order and are approximate")
    for r in results:
        notes += sorted(set(r.errors))[:3]
    cpu_ms = net_ms = per_received_ms = None
    if cpu_before is not None and cpu_after is not None and counters["received"]:
        per_received_ms = (cpu_after - cpu_before) * 1000 / counters["received"]
    if cpu_before is not None and cpu_after is not None and counters["processed"]:
        cpu_ms = (cpu_after - cpu_before) * 1000 / counters["processed"]
        if idle_rate is not None:
            net_ms = max(0.0, (cpu_after - cpu_before - idle_rate * seconds) * 1000 / counters["processed"])
    target_ms = settings["performance"].get("target_latency_ms")
    deadline = deadline_figures(before, after, latencies, results, target_ms)
    return PhaseReport(
        mode=mode,
        clients=clients,
        size=f"{width}x{height}",
        seconds=round(seconds, 2),
        frames_sent=sum(r.sent for r in results),
        parts_received=parts,
        fps_total=round(parts / seconds, 2),
        fps_per_client=round(parts / seconds / clients, 2),
        latency_ms=_percentiles(latencies),
        counters=counters,
        errors=errors,
        frontend_cpu_ms_per_frame=_round(cpu_ms, 3),
        frontend_cpu_ms_per_received_frame=_round(per_received_ms, 3),
        frontend_idle_cpu_ms_per_s=_round(idle_rate * 1000 if idle_rate is not None else None, 2),
        frontend_net_cpu_ms_per_frame=_round(net_ms, 3),
        codec_ms_per_frame=round(codec_ms, 3),
        cpu_ratio=_round(cpu_ms / codec_ms if cpu_ms is not None else None, 2),
        net_cpu_ratio=_round(net_ms / codec_ms if net_ms is not None else None, 2),
        notes=notes,
        target_latency_ms=target_ms,
        **deadline,
    )


def deadline_figures(
    before: dict[str, float], after: dict[str, float], latencies: list[float], results: list, target_ms: float | None
) -> dict[str, Any]:
    """The phase's deadline-miss rates (frontends' and clients') and times to first frame."""
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in DEADLINE_SERIES.values()}
    firsts = sorted(r.first_frame_s for r in results if r.first_frame_s is not None)
    figures: dict[str, Any] = {
        "deadline_miss_rate": round(delta["misses"] / delta["shown"], 4) if delta["shown"] else None,
        "client_miss_rate": None,
        "first_frame_ms": {"p50": round(statistics.median(firsts) * 1000, 1), "max": round(firsts[-1] * 1000, 1)}
        if firsts
        else None,
        "server_first_frame_ms": round(delta["first_frame_s"] / delta["first_frames"] * 1000, 1)
        if delta["first_frames"]
        else None,
    }
    if target_ms is not None and latencies:
        figures["client_miss_rate"] = round(sum(x * 1000 > target_ms for x in latencies) / len(latencies), 4)
    return figures


def _round(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def idle_cpu_rate(pid: int, seconds: float) -> float | None:
    """The frontend's CPU seconds per second with no frames flowing (gRPC and event-loop housekeeping)."""
    if seconds <= 0:
        return None
    start = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - start) / seconds


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {"p50": round(values[0] * 1000, 1), "p95": round(values[0] * 1000, 1), "p99": round(values[0] * 1000, 1)}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49] * 1000, 1), "p95": round(cuts[94] * 1000, 1), "p99": round(cuts[98] * 1000, 1)}


def print_report(report: PhaseReport) -> None:
    lat = report.latency_ms
    print(f"\n== {report.mode}: {report.clients} client(s), {report.size}, {report.seconds} s")
    print(f"   frames sent {report.frames_sent}, parts received {report.parts_received}, errors {report.errors}")
    print(f"   fps {report.fps_total} total, {report.fps_per_client} per client")
    if lat:
        print(f"   latency ms  p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}")
    c = report.counters
    print(
        f"   frontend counters: received {c['received']} processed {c['processed']} "
        f"skipped {c['skipped']} dropped {c['dropped']}"
    )
    if report.frontend_cpu_ms_per_frame is not None:
        print(
            f"   frontend CPU {report.frontend_cpu_ms_per_frame} ms/processed frame; codec baseline "
            f"(decode + encode) {report.codec_ms_per_frame} ms; ratio {report.cpu_ratio} (target <= 2)"
        )
        print(
            f"   frontend CPU per received frame (skipped and dropped ones included) "
            f"{report.frontend_cpu_ms_per_received_frame} ms"
        )
        if report.frontend_net_cpu_ms_per_frame is not None:
            print(
                f"   net of the idle background ({report.frontend_idle_cpu_ms_per_s} ms/s): "
                f"{report.frontend_net_cpu_ms_per_frame} ms/processed frame; ratio {report.net_cpu_ratio}"
            )
    else:
        print(f"   codec baseline (decode + encode) {report.codec_ms_per_frame} ms; frontend CPU unknown (no pid)")
    if report.target_latency_ms is not None:
        print(
            f"   deadline {report.target_latency_ms:g} ms: missed by {_share(report.deadline_miss_rate)} of results "
            f"(frontends), {_share(report.client_miss_rate)} (clients)"
        )
    if report.first_frame_ms:
        print(
            f"   time to first frame ms  p50 {report.first_frame_ms['p50']}  max {report.first_frame_ms['max']} "
            f"(clients); frontends' mean {report.server_first_frame_ms}"
        )
    for note in report.notes:
        print(f"   note: {note}")


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def print_summary(reports: list[PhaseReport]) -> None:
    """One row per mode and session count: what the latency objective looks like as load grows."""
    print(
        "\n| mode | sessions | fps total | latency p50 / p95 (ms) | target (ms) | deadline misses (frontends) "
        "| deadline misses (clients) | time to first frame p50 / max (ms) |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---|")
    for r in reports:
        lat = f"{r.latency_ms['p50']} / {r.latency_ms['p95']}" if r.latency_ms else "n/a"
        first = f"{r.first_frame_ms['p50']} / {r.first_frame_ms['max']}" if r.first_frame_ms else "n/a"
        target = f"{r.target_latency_ms:g}" if r.target_latency_ms is not None else "n/a"
        print(
            f"| {r.mode} | {r.clients} | {r.fps_total} | {lat} | {target} | {_share(r.deadline_miss_rate)} "
            f"| {_share(r.client_miss_rate)} | {first} |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the frontends' base URL (loopback)")
    parser.add_argument("--modes", default="realtime,canvas", help="phases to run, in order")
    parser.add_argument("--clients", type=int, default=2, help="protocol clients per mode (1-64)")
    parser.add_argument(
        "--sessions",
        type=int,
        nargs="+",
        help="session counts to run one after another, e.g. 1 4 16 (each 1-64; default: --clients)",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of sending per mode (1-600)")
    parser.add_argument("--max-frames", type=int, default=300, help="frames per client at most (1-100000)")
    parser.add_argument("--canvas-window", type=int, default=2, help="canvas drawings unanswered at most")
    parser.add_argument(
        "--scene",
        choices=("moving", "still"),
        default="moving",
        help="realtime: a moving camera (every frame processed) or a still one (the filter skips frames)",
    )
    parser.add_argument("--size", help="frame size WxH (default: the model's, from /settings)")
    parser.add_argument("--frontend-pid", type=int, help="the frontend process (default: whoever listens on the port)")
    parser.add_argument(
        "--idle-sample", type=float, default=5.0, help="seconds to sample the frontend's idle CPU before each phase"
    )
    parser.add_argument("--json", type=Path, help="also write the reports as JSON here")
    parser.add_argument(
        "--own-stack", action="store_true", help="start Triton and the frontends on free ports first (ignores --url)"
    )
    parser.add_argument("--logs", type=Path, default=REPO_ROOT / "logs" / "load_benchmark", help="the own stack's logs")
    args = parser.parse_args(argv)
    args.sessions = args.sessions or [args.clients]
    if not all(1 <= n <= 64 for n in [args.clients, *args.sessions]):
        parser.error("--clients and --sessions take 1-64 sessions")
    if not 1 <= args.duration <= 600 or not 1 <= args.max_frames <= 100_000:
        parser.error("--duration 1-600, --max-frames 1-100000")
    if args.size:
        w, _, h = args.size.lower().partition("x")
        args.size = (int(w), int(h))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.own_stack:
        return run_all(args)
    print(f"load_benchmark: starting Triton and the frontends (logs in {args.logs})", flush=True)
    with local_stack(args.logs, overrides=OWN_STACK_OVERRIDES) as stack:
        args.url, args.frontend_pid = stack.base_url, stack.frontend_pid
        return run_all(args)


def run_all(args: argparse.Namespace) -> int:
    require_loopback(args.url)
    port = urllib.parse.urlsplit(args.url).port or 80
    pid = args.frontend_pid or find_listener_pid(port)
    if pid is None:
        print(f"load_benchmark: no process found listening on port {port}; CPU will not be reported", file=sys.stderr)
    reports = []
    for clients in args.sessions:
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            report = asyncio.run(run_phase(args, mode, pid, clients))
            print_report(report)
            reports.append(report)
    if len(reports) > 1:
        print_summary(reports)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2))
    return 0
