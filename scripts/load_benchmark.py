#!/usr/bin/env python3
"""Load benchmark of the running stack through the frontends' own protocol.

    .venv/bin/python scripts/load_benchmark.py [--url http://127.0.0.1:8000] [--modes realtime,canvas]
        [--clients 2] [--duration 20] [--max-frames 300] [--canvas-window 2] [--size WxH]
        [--frontend-pid PID] [--json FILE]

Per mode, one phase after the other, N protocol clients:
- realtime clients answer every `send_frame` with the next frame of a synthetic moving scene
  (a camera that never stands still, so the similar-image filter lets every frame through);
- canvas clients send drawings back to back, keeping `--canvas-window` drawings unanswered.
Each client reads its own MJPEG stream. Latency is from sending a frame to receiving its part
(parts come in frame order, which the counters below confirm). Frame counters (received,
processed, skipped, dropped, errors) are the frontends' own /metrics, before and after.

CPU: the frontend process's CPU time (all threads, from /proc/PID/task/*/schedstat) per processed
frame, beside the cost of only decoding and encoding the same frames at the mode's JPEG quality,
measured in this run on this machine (the codec baseline). The frontends aim at no more than
twice that baseline at 512x512: the protocol, validation, filter and streaming cost about as much
as one decode and one encode. The process also spends a little CPU with no frames at all (gRPC's
threads, timers); that idle rate is sampled before each phase and reported, with the per-frame
figure net of it, since at a few frames a second (a CPU-only Triton) it weighs on every frame.

Loopback only: the benchmark refuses other hosts. It is bounded by --duration and --max-frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import ipaddress
import json
import socket
import statistics
import sys
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import aiohttp  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from frontends.client import ProtocolClient, StreamReader  # noqa: E402

SCENE_FRAMES = 60
DRAIN_S = 15.0
"""After the deadline, how long results of frames already sent are still awaited."""


@dataclass
class ClientResult:
    sent: int = 0
    parts: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


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


def moving_scene(t: int, width: int, height: int) -> np.ndarray:
    """A camera-like frame: a fixed textured background, a bright square that moves far each step,
    and a little sensor noise, so it compresses like a webcam picture rather than a flat drawing."""
    background = _background(width, height)
    noise = np.random.default_rng(t).integers(-2, 3, background.shape, dtype=np.int16)
    image = np.clip(background.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    side = min(width, height) // 3
    x = (t * width // 7) % (width - side)
    y = (t * height // 5) % (height - side)
    image[y : y + side, x : x + side] = 255 - image[y : y + side, x : x + side]
    return image


@functools.cache
def _background(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    detail = rng.integers(-6, 7, (height, width, 3), dtype=np.int16)
    return np.clip(smooth.astype(np.int16) + detail, 0, 255).astype(np.uint8)


def encode_frames(width: int, height: int, still: bool = False, quality: int = 90) -> list[bytes]:
    """The scene's frames as JPEG; a still scene is one frame, sent again and again."""
    return [
        cv2.imencode(".jpg", moving_scene(t, width, height), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        for t in range(1 if still else SCENE_FRAMES)
    ]


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


@contextlib.asynccontextmanager
async def connected(
    http: aiohttp.ClientSession, base: str, mode: str, user: str, result: ClientResult
) -> AsyncIterator[tuple[ProtocolClient, InFlight]]:
    """A protocol session with its MJPEG stream read in the background into `result`."""
    client = ProtocolClient(http, base, mode, user)
    await client.connect()
    stream = StreamReader(http, client.stream_url)
    await stream.start()
    in_flight = InFlight()
    reader = asyncio.create_task(in_flight.collect(stream, result))
    try:
        yield client, in_flight
    finally:
        reader.cancel()
        await client.close()
        await stream.stop()


async def realtime_client(
    http: aiohttp.ClientSession,
    base: str,
    user: str,
    frames: list[bytes],
    deadline: float,
    max_frames: int,
    drain_s: float,
) -> ClientResult:
    result = ClientResult()
    async with connected(http, base, "realtime", user, result) as (client, in_flight):
        while time.monotonic() < deadline and result.sent < max_frames:
            message = await client.next_message(wait_s=max(1.0, deadline - time.monotonic() + DRAIN_S))
            if message["status"] == "error":
                result.errors.append(message["message"])
            elif message["status"] == "closed":
                break
            elif message["status"] == "send_frame":
                in_flight.sent()
                await client.send_frame(frames[result.sent % len(frames)], prompt="a watercolor street")
                result.sent += 1
        await in_flight.wait_below(1, drain_s)
    return result


async def canvas_client(
    http: aiohttp.ClientSession,
    base: str,
    user: str,
    frames: list[bytes],
    deadline: float,
    max_frames: int,
    window: int,
) -> ClientResult:
    result = ClientResult()
    async with connected(http, base, "canvas", user, result) as (client, in_flight):
        while time.monotonic() < deadline and result.sent < max_frames:
            await in_flight.wait_below(window, max(0.0, deadline - time.monotonic()))
            if len(in_flight) >= window:
                break
            in_flight.sent()
            await client.send_frame(frames[result.sent % len(frames)], prompt="a pencil sketch", seed=3)
            result.sent += 1
        await in_flight.wait_below(1, DRAIN_S)
        result.errors += [m["message"] for m in client.drain() if m["status"] == "error"]
    return result


class InFlight:
    """Send times of frames whose part has not arrived yet, oldest first."""

    def __init__(self) -> None:
        self.sent_at: deque[float] = deque()
        self.answered = asyncio.Event()

    def __len__(self) -> int:
        return len(self.sent_at)

    def sent(self) -> None:
        self.sent_at.append(time.monotonic())

    async def collect(self, stream: StreamReader, result: ClientResult) -> None:
        """Parts arrive in frame order: each one answers the oldest frame still waiting."""
        while await stream.next_part(wait_s=3600) is not None:
            now = time.monotonic()
            result.parts += 1
            if self.sent_at:
                result.latencies.append(now - self.sent_at.popleft())
            self.answered.set()

    async def wait_below(self, count: int, wait_s: float) -> None:
        """Wait until fewer than `count` frames are unanswered (at most `wait_s`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while len(self.sent_at) >= count:
                    self.answered.clear()
                    await self.answered.wait()


async def run_phase(args: argparse.Namespace, mode: str, pid: int | None) -> PhaseReport:
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
    deadline = started + args.duration
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        if mode == "realtime":
            drain_s = 0.0 if args.scene == "still" else DRAIN_S
            tasks = [
                realtime_client(http, base, f"bench-rt-{i}", frames, deadline, args.max_frames, drain_s)
                for i in range(args.clients)
            ]
        else:
            tasks = [
                canvas_client(http, base, f"bench-cv-{i}", frames, deadline, args.max_frames, args.canvas_window)
                for i in range(args.clients)
            ]
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
    return PhaseReport(
        mode=mode,
        clients=args.clients,
        size=f"{width}x{height}",
        seconds=round(seconds, 2),
        frames_sent=sum(r.sent for r in results),
        parts_received=parts,
        fps_total=round(parts / seconds, 2),
        fps_per_client=round(parts / seconds / args.clients, 2),
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
    )


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
    for note in report.notes:
        print(f"   note: {note}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the frontends' base URL (loopback)")
    parser.add_argument("--modes", default="realtime,canvas", help="phases to run, in order")
    parser.add_argument("--clients", type=int, default=2, help="protocol clients per mode (1-64)")
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
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 1 <= args.duration <= 600 or not 1 <= args.max_frames <= 100_000:
        parser.error("--clients 1-64, --duration 1-600, --max-frames 1-100000")
    if args.size:
        w, _, h = args.size.lower().partition("x")
        args.size = (int(w), int(h))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_loopback(args.url)
    port = urllib.parse.urlsplit(args.url).port or 80
    pid = args.frontend_pid or find_listener_pid(port)
    if pid is None:
        print(f"load_benchmark: no process found listening on port {port}; CPU will not be reported", file=sys.stderr)
    reports = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        report = asyncio.run(run_phase(args, mode, pid))
        print_report(report)
        reports.append(report)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
