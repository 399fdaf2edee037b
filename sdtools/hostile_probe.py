"""Does one client sending costly images slow anybody else? Measured on a running stack.

For each hostile input (sdtools.hostile_images) two phases run back to back, each with N
ordinary realtime sessions (sdtools.load_clients): one without, then one while one more client,
from another loopback address (127.0.0.2, so the per-address limits do not mix the two), sends
that input again and again, each time waiting for its answer, at --hostile-fps (default 100 a
second: just under server.max_messages_per_second, 120, so that no frame is refused for its rate
alone; a client sending faster is closed for flooding, 1008, within a fraction of a second).
Throughout, /healthz is polled every 50 ms. So "with" and "without" are measured side by side,
minutes apart at most, in one run on one machine; the ratio of their p95 is the figure to read.
On a small machine the probe's own sending competes for the CPU with the server, which the
ratio includes.

Reported per phase: the worst /healthz answer time, the p50/p95 frame latency of the ordinary
sessions (from sending a frame to its MJPEG part), their answered frames, and what the hostile
client was told. Loopback only. Starts its own stack (tests/config.test.yaml) unless given --url.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from frontends.client import ProtocolClient
from sdtools.hostile_images import HostileImage, probe_inputs
from sdtools.load_benchmark import fetch_json, require_loopback
from sdtools.load_clients import STALLED, Plan, encode_frames, realtime_client
from sdtools.local_stack import REPO_ROOT, TEST_CONFIG, local_stack

HEALTH_EVERY_S = 0.05
HOSTILE_ADDRESS = "127.0.0.2"


@dataclass
class PhaseResult:
    phase: str
    healthz_worst_ms: float
    healthz_polls: int
    p50_ms: float | None
    p95_ms: float | None
    frames_answered: int
    hostile_sent: int = 0
    hostile_refused: int = 0
    hostile_said: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    """Ordinary sessions that heard nothing for the whole phase and its drain (a frozen server)."""


async def watch_health(base: str, stop: asyncio.Event) -> list[float]:
    """Answer times of /healthz, polled until `stop`; a poll still waiting when it is set counts too."""
    times: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        while not stop.is_set():
            started = time.monotonic()
            async with http.get(f"{base}/healthz") as response:
                await response.read()
            times.append(time.monotonic() - started)
            await asyncio.sleep(HEALTH_EVERY_S)
    return times


async def send_hostile(base: str, image: HostileImage, deadline: float, fps: float, result: PhaseResult) -> None:
    """Send `image` as often as the server answers (at most `fps` a second), until the deadline."""
    connector = aiohttp.TCPConnector(local_addr=(HOSTILE_ADDRESS, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        client = ProtocolClient(http, base, image.mode, f"hostile-{int(time.time() * 1000) % 10**9}")
        first = await client.connect()
        if first["status"] != "connected":
            result.hostile_said.append(f"not connected: {first}")
            return
        try:
            while time.monotonic() < deadline:
                sent_at = time.monotonic()
                await client.send_frame(image.data)
                result.hostile_sent += 1
                while (message := await client.next_message(wait_s=300))["status"] != "send_frame":
                    if message["status"] == "closed":
                        result.hostile_said.append(f"closed {message['code']}")
                        return
                    if message["status"] == "error":
                        result.hostile_refused += 1
                        if message["message"] not in result.hostile_said:
                            result.hostile_said.append(message["message"])
                if fps > 0:
                    await asyncio.sleep(max(0.0, sent_at + 1 / fps - time.monotonic()))
        finally:
            await client.close()


def _ms(value: float | None) -> float | None:
    return round(value * 1000, 1) if value is not None else None


async def run_phase(
    base: str, name: str, clients: int, seconds: float, image: HostileImage | None, fps: float
) -> PhaseResult:
    settings = fetch_json(f"{base}/api/realtime/settings")
    frames = encode_frames(settings["info"]["width"], settings["info"]["height"])
    stop = asyncio.Event()
    health = asyncio.create_task(watch_health(base, stop))
    started = time.monotonic()
    result = PhaseResult(name, 0.0, 0, None, None, 0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        plan = Plan(http, base, frames, started + seconds, max_frames=100_000)
        sessions = [realtime_client(plan, f"probe-{name[:8].replace(' ', '-')}-{i}", 5.0) for i in range(clients)]
        hostile = [send_hostile(base, image, started + seconds, fps, result)] if image is not None else []
        outcomes = await asyncio.gather(*sessions, *hostile)
    stop.set()
    polls = await health
    latencies = sorted(x for outcome in outcomes[:clients] for x in outcome.latencies)
    result.stalled = [error for outcome in outcomes[:clients] for error in outcome.errors if error.startswith(STALLED)]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else None
    result.healthz_worst_ms = _ms(max(polls)) or 0.0
    result.healthz_polls = len(polls)
    result.p50_ms = _ms(cuts[49]) if cuts else None
    result.p95_ms = _ms(cuts[94]) if cuts else None
    result.frames_answered = sum(outcome.parts for outcome in outcomes[:clients])
    return result


async def probe(base: str, clients: int, seconds: float, fps: float) -> list[tuple[PhaseResult, PhaseResult]]:
    """Per hostile input: (the phase without it, the phase with it)."""
    info = fetch_json(f"{base}/api/canvas/settings")["info"]
    print(f"building the hostile inputs (model {info['width']}x{info['height']})...", flush=True)
    inputs = probe_inputs(info["width"], info["height"])
    pairs = []
    for number, image in enumerate(inputs, 1):
        name = f"{image.name} ({len(image.data) // 1000} KB, {image.mode})"
        print(f"input {number}/{len(inputs)}: {name}: {seconds:g} s without, {seconds:g} s with...", flush=True)
        without = await run_phase(base, "without", clients, seconds, None, fps)
        pairs.append((without, await run_phase(base, name, clients, seconds, image, fps)))
    return pairs


def print_table(pairs: list[tuple[PhaseResult, PhaseResult]], clients: int) -> None:
    print(f"\n{clients} realtime sessions per phase; latency (ms) = frame sent to its MJPEG part; without|with")
    header = (
        f"{'hostile input':50s} {'healthz worst':>15s} {'p50':>15s} {'p95':>15s} {'p95 ratio':>9s} "
        f"{'frames':>11s} {'sent/refused':>13s}"
    )
    print(header)
    print("-" * len(header))
    for without, with_ in pairs:
        ratio = f"{with_.p95_ms / without.p95_ms:.2f}" if with_.p95_ms and without.p95_ms else "-"
        frames = f"{without.frames_answered}|{with_.frames_answered}"
        hostile = f"{with_.hostile_sent}/{with_.hostile_refused}"
        print(
            f"{with_.phase[:50]:50s} {_pair(without.healthz_worst_ms, with_.healthz_worst_ms):>15s} "
            f"{_pair(without.p50_ms, with_.p50_ms):>15s} {_pair(without.p95_ms, with_.p95_ms):>15s} {ratio:>9s} "
            f"{frames:>11s} {hostile:>13s}"
        )
    print("\nwhat the hostile client was told, and sessions that waited past the drain:")
    for _, with_ in pairs:
        for said in with_.hostile_said[:2] + with_.stalled[:1]:
            print(f"  {with_.phase[:40]}: {said[:150]}")


def _pair(without: float | None, with_: float | None) -> str:
    return f"{_cell(without)}|{_cell(with_)}"


def _cell(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def _second_loopback_works() -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOSTILE_ADDRESS, 0))
        except OSError:
            return False
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running stack's frontends (loopback); default: start one")
    parser.add_argument("--config", type=Path, default=TEST_CONFIG, help="config of the stack it starts")
    parser.add_argument("--clients", type=int, default=4, help="ordinary realtime sessions per phase (1-7)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase (2-300)")
    parser.add_argument(
        "--hostile-fps", type=float, default=100.0, help="hostile frames a second at most (0: as fast as answered)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--logs", type=Path, default=REPO_ROOT / "logs" / "hostile_probe", help="the started stack's logs"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 7 or not 2 <= args.seconds <= 300:
        parser.error("--clients 1-7 (the per-address session limit is 8), --seconds 2-300")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not _second_loopback_works():
        print(
            f"hostile_probe: cannot bind {HOSTILE_ADDRESS}; this probe needs Linux's 127.0.0.0/8 loopback",
            file=sys.stderr,
        )
        return 2
    if args.url:
        require_loopback(args.url)
        results = asyncio.run(probe(args.url.rstrip("/"), args.clients, args.seconds, args.hostile_fps))
    else:
        print(f"starting Triton and the frontends ({args.config}); logs in {args.logs}", flush=True)
        with local_stack(args.logs, args.config) as stack:
            results = asyncio.run(probe(stack.base_url, args.clients, args.seconds, args.hostile_fps))
    if args.json:
        args.json.write_text(json.dumps([{"without": asdict(a), "with": asdict(b)} for a, b in results], indent=2))
    print_table(results, args.clients)
    return 0
