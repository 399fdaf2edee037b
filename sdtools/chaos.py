"""Chaos run: realtime and canvas sessions through nginx (https/wss) into the topology of
sdtools/topology.py, while one part after another is killed and started again.

Faults, round-robin, one every `--fault-every` seconds:
  triton    SIGKILL one tritonserver (a crash), then its launcher again on the same ports;
  frontend  SIGTERM one frontend (a rolling restart: it drains its sessions with 1001), then again;
  upstream  SIGKILL the other frontend (nginx's upstream vanishes mid-stream and nginx fails over),
            start it again, then reload nginx (SIGHUP) under load.

The sessions are the soak test's (sdtools/soak_clients.py), each in a slot that reconnects, as a
user would, when its session is closed or its connection drops. Figures: sessions served; canvas
drawings sent against those answered with a part or refused with an error, those cut by a closed
connection (the client was told by the close) and those silently lost (none may be); realtime
recovery after each fault; the RSS of each process tree over time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import random
import signal
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from sdtools.soak_clients import Tally, canvas_client, drawing, encode, moving_scene, realtime_client
from sdtools.topology import Topology

REPO_ROOT = Path(__file__).resolve().parent.parent
KINDS = ("triton", "frontend", "upstream")
RETRY_S = 1.0
RSS_GROWTH_LIMIT = 1.5
"""Flat memory: after warm-up, a process's RSS ends at most this times where it started (+32 MiB)."""
UNSETTLED_S = 15.0
"""An interruption this close to the end may legitimately stay without a reconnection."""


@dataclass
class Slot:
    """One user seat: a realtime or canvas client that reconnects for the whole run."""

    mode: str
    index: int
    tally: Tally = field(default_factory=Tally)
    exceptions: collections.Counter[str] = field(default_factory=collections.Counter)
    interruptions: list[float] = field(default_factory=list)
    connected_at: list[float] = field(default_factory=list)

    def served(self) -> bool:
        return (self.tally.realtime_parts if self.mode == "realtime" else self.tally.canvas_parts) > 0

    def settled(self, deadline: float) -> bool:
        """Every interruption before the end was followed by a working session again."""
        stops = [t for t in self.interruptions + self.tally.close_times if t < deadline - UNSETTLED_S]
        if not stops:
            return True
        resumed = self.tally.part_times.get(self.index, []) if self.mode == "realtime" else self.connected_at
        return any(t > max(stops) for t in resumed)


@dataclass
class Fault:
    kind: str
    target: str
    at_s: float
    restart_s: float = 0.0
    realtime: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    t: float
    rss_mib: dict[str, tuple[int, float] | None]
    """(pid, MiB) by part: a restarted part has a new pid."""
    realtime_parts: int
    canvas_parts: int


# --------------------------------------------------------------------------- sessions


async def realtime_slot(http: aiohttp.ClientSession, base: str, slot: Slot, frames: list[bytes], args: Any) -> None:
    attempt = 0
    while time.monotonic() < args.deadline:
        attempt += 1
        try:
            await realtime_client(http, base, slot.index, frames, args, slot.tally, prefix=f"chaos{attempt}")
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            slot.exceptions[type(exc).__name__] += 1
            slot.interruptions.append(time.monotonic())
            await asyncio.sleep(RETRY_S)


async def canvas_slot(http: aiohttp.ClientSession, base: str, slot: Slot, drawings: list[bytes], args: Any) -> None:
    attempt = 0
    while time.monotonic() < args.deadline:
        attempt += 1
        before = slot.tally.canvas_sessions
        started = time.monotonic()
        try:
            ok = await canvas_client(
                http, base, slot.index, drawings, args, slot.tally, user=f"chaos-cv-{slot.index}-{attempt}"
            )
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            slot.exceptions[type(exc).__name__] += 1
            ok = False
        if slot.tally.canvas_sessions > before:
            slot.connected_at.append(started)
        if not ok:
            slot.interruptions.append(time.monotonic())
            await asyncio.sleep(RETRY_S)


# --------------------------------------------------------------------------- faults


def inject(topology: Topology, number: int) -> tuple[str, str]:
    """Fault `number` (0, 1, ...): kill a part and start it again; returns (kind, target)."""
    kind = KINDS[number % len(KINDS)]
    turn = number // len(KINDS)
    if kind == "triton":
        part = topology.tritons[turn % 2]
        topology.kill_triton(part)
        topology.start_triton(part)
    elif kind == "frontend":
        part = topology.frontends[turn % 2]
        topology.stop_frontend(part, signal.SIGTERM)
        topology.start_frontend(part)
    else:
        part = topology.frontends[(turn + 1) % 2]
        topology.stop_frontend(part, signal.SIGKILL)
        topology.start_frontend(part)
        topology.reload_nginx()
    return kind, part.name


def realtime_recovery(slots: list[Slot], at: float) -> dict[str, Any]:
    """For each realtime slot, the wait from the fault to its next part; "affected" are those whose wait
    is over three times their usual gap between parts (and over a second)."""
    waits, affected, without = [], [], 0
    for slot in slots:
        times = slot.tally.part_times.get(slot.index, [])
        after = [t for t in times if t > at]
        if not after:
            without += 1
            continue
        gaps = [b - a for a, b in itertools.pairwise(times)]
        usual = statistics.median(gaps) if gaps else 1.0
        wait = after[0] - at
        waits.append(wait)
        if wait > max(1.0, 3 * usual):
            affected.append(wait)
    return {
        "sessions_affected": len(affected),
        "recovery_median_s": round(statistics.median(affected), 2) if affected else 0.0,
        "recovery_max_s": round(max(affected), 2) if affected else 0.0,
        "next_part_median_s": round(statistics.median(waits), 2) if waits else None,
        "next_part_max_s": round(max(waits), 2) if waits else None,
        "sessions_without_a_later_part": without,
    }


async def fault_loop(topology: Topology, args: Any, started: float, faults: list[Fault]) -> None:
    number = 0
    while True:
        next_at = started + args.fault_every * (number + 1)
        if next_at > args.deadline - args.fault_every / 3:
            return
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        t0 = time.monotonic()
        kind, target = await asyncio.to_thread(inject, topology, number)
        fault = Fault(kind, target, round(t0 - started, 1), round(time.monotonic() - t0, 1))
        faults.append(fault)
        topology.say(f"[chaos] t={fault.at_s:.0f}s {kind} fault on {target}: back after {fault.restart_s} s")
        number += 1


async def monitor(topology: Topology, slots: list[Slot], started: float, every_s: float, out: list[Sample]) -> None:
    while True:
        out.append(
            Sample(
                t=round(time.monotonic() - started, 1),
                rss_mib=await asyncio.to_thread(topology.memory),
                realtime_parts=sum(s.tally.realtime_parts for s in slots),
                canvas_parts=sum(s.tally.canvas_parts for s in slots),
            )
        )
        await asyncio.sleep(every_s)


# --------------------------------------------------------------------------- the run


async def run(topology: Topology, args: argparse.Namespace) -> dict[str, Any]:
    base = topology.base_url
    connector = aiohttp.TCPConnector(limit=0, ssl=topology.client_ssl())
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        async with http.get(f"{base}/api/realtime/settings") as answer:
            info = (await answer.json())["info"]
        width, height = int(info["width"]), int(info["height"])
        rng = random.Random(7)
        frames = [encode(moving_scene(t, width, height), "jpg") for t in range(60)]
        drawings = [encode(drawing(rng, width, height), "png" if i % 2 else "jpg") for i in range(40)]
        realtime_count = args.sessions // 2
        slots = [Slot("realtime", i) for i in range(realtime_count)]
        slots += [Slot("canvas", i) for i in range(args.sessions - realtime_count)]
        started = time.monotonic()
        args.deadline = started + args.duration
        faults: list[Fault] = []
        samples: list[Sample] = []
        watcher = asyncio.create_task(monitor(topology, slots, started, args.sample_every, samples))
        chaos = asyncio.create_task(fault_loop(topology, args, started, faults))
        sessions = [
            realtime_slot(http, base, s, frames, args)
            if s.mode == "realtime"
            else canvas_slot(http, base, s, drawings, args)
            for s in slots
        ]
        await asyncio.gather(*sessions)
        await chaos
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        samples.append(Sample(round(time.monotonic() - started, 1), topology.memory(), 0, 0))
    realtime_slots = [s for s in slots if s.mode == "realtime"]
    for fault in faults:
        fault.realtime = realtime_recovery(realtime_slots, started + fault.at_s)
    return summarize(args, slots, faults, samples, time.monotonic() - started)


def memory_summary(samples: list[Sample], warm_up_s: float) -> dict[str, dict[str, Any]]:
    """Per part: RSS first, after warm-up, max and last; flat when every process of that part that
    lived past its warm-up ended within RSS_GROWTH_LIMIT of its own post-warm-up RSS."""
    names = sorted({name for s in samples for name in s.rss_mib})
    summary = {}
    for name in names:
        series = [(s.t, *s.rss_mib[name]) for s in samples if s.rss_mib.get(name)]  # type: ignore[misc]
        values = [rss for _, _, rss in series]
        lives: dict[int, list[tuple[float, float]]] = {}
        for t, pid, rss in series:
            lives.setdefault(pid, []).append((t, rss))
        warm_values, flat = [], True
        for life in lives.values():
            warm = [rss for t, rss in life if t >= life[0][0] + warm_up_s]
            if warm:
                warm_values.append(warm[0])
                flat = flat and warm[-1] <= warm[0] * RSS_GROWTH_LIMIT + 32
        summary[name] = {
            "first": values[0] if values else None,
            "after_warm_up": warm_values[0] if warm_values else None,
            "max": max(values, default=None),
            "last": values[-1] if values else None,
            "processes": len(lives),
            "flat": flat,
        }
    return summary


def summarize(
    args: argparse.Namespace, slots: list[Slot], faults: list[Fault], samples: list[Sample], elapsed: float
) -> dict[str, Any]:
    total = Tally()
    exceptions: collections.Counter[str] = collections.Counter()
    for slot in slots:
        for name in ("realtime_sessions", "realtime_frames", "realtime_parts", "canvas_sessions", "canvas_sent"):
            setattr(total, name, getattr(total, name) + getattr(slot.tally, name))
        for name in ("canvas_parts", "canvas_errors", "canvas_cut", "canvas_silent", "canvas_surplus", "canvas_waits"):
            setattr(total, name, getattr(total, name) + getattr(slot.tally, name))
        total.stream_refused += slot.tally.stream_refused
        total.errors.update(slot.tally.errors)
        total.unexpected_closes.update(slot.tally.unexpected_closes)
        exceptions.update(slot.exceptions)
    unserved = [f"{s.mode}-{s.index}" for s in slots if not s.served()]
    unsettled = [f"{s.mode}-{s.index}" for s in slots if not s.settled(args.deadline)]
    memory = memory_summary(samples, args.warm_up)
    report: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k not in ("deadline", "folder", "json")},
        "elapsed_s": round(elapsed, 1),
        "sessions": {
            "slots": len(slots),
            "served": len(slots) - len(unserved),
            "not_served": unserved,
            "told_and_reconnected": len(slots) - len(unsettled),
            "not_reconnected": unsettled,
            "realtime_connections": total.realtime_sessions,
            "canvas_connections": total.canvas_sessions,
        },
        "canvas": {
            "drawings_sent": total.canvas_sent,
            "answered_with_a_part": total.canvas_parts,
            "refused_with_an_error": total.canvas_errors,
            "cut_by_a_closed_connection": total.canvas_cut,
            "silently_lost": total.canvas_silent,
            "surplus_parts": total.canvas_surplus,
            "wait_messages": total.canvas_waits,
        },
        "realtime": {
            "frames_sent": total.realtime_frames,
            "parts": total.realtime_parts,
            "parts_per_s": round(total.realtime_parts / max(elapsed, 1e-9), 2),
        },
        "faults": [asdict(f) for f in faults],
        "closes": {str(k): v for k, v in total.unexpected_closes.most_common()},
        "client_exceptions": dict(exceptions.most_common()),
        "stream_refused": total.stream_refused,
        "errors": dict(total.errors.most_common(20)),
        "memory_mib": memory,
        "samples": [asdict(s) for s in samples],
    }
    report["passed"] = bool(
        total.canvas_silent == 0
        and total.canvas_surplus == 0
        and not unserved
        and not unsettled
        and all(m["flat"] for m in memory.values())
    )
    return report


def print_report(report: dict[str, Any]) -> None:
    s, c, r = report["sessions"], report["canvas"], report["realtime"]
    print(f"\nchaos run: {report['config']['sessions']} sessions for {report['elapsed_s']:.0f} s")
    rows = [
        ("sessions served", f"{s['served']} / {s['slots']}"),
        ("sessions told and reconnected", f"{s['told_and_reconnected']} / {s['slots']}"),
        ("connections (realtime + canvas)", f"{s['realtime_connections']} + {s['canvas_connections']}"),
        ("drawings sent", c["drawings_sent"]),
        ("  answered with a part", c["answered_with_a_part"]),
        ("  refused with an error", c["refused_with_an_error"]),
        ("  cut by a closed connection", c["cut_by_a_closed_connection"]),
        ("  silently lost", c["silently_lost"]),
        ("realtime parts (per s)", f"{r['parts']} ({r['parts_per_s']})"),
        ("closes by code", report["closes"] or "-"),
        ("client exceptions", report["client_exceptions"] or "-"),
    ]
    for name, value in rows:
        print(f"  {name:<34} {value}")
    print("\n  fault                        at s  back s  rt affected  recovery median/max s  next part median/max s")
    for f in report["faults"]:
        rt = f["realtime"]
        print(
            f"  {f['kind'] + ' ' + f['target']:<28} {f['at_s']:>5.0f}  {f['restart_s']:>6.1f}  "
            f"{rt['sessions_affected']:>11}  {rt['recovery_median_s']:>8.2f} / {rt['recovery_max_s']:<8.2f}"
            f"  {rt['next_part_median_s']} / {rt['next_part_max_s']}"
        )
    print("\n  RSS MiB      first   warm    max   last  processes  flat")
    for name, m in report["memory_mib"].items():
        print(
            f"  {name:<11} {m['first']!s:>6} {m['after_warm_up']!s:>6} {m['max']!s:>6} {m['last']!s:>6}"
            f"  {m['processes']:>9}  {m['flat']}"
        )
    if report["errors"]:
        print("\n  errors told to clients:")
        for message, count in report["errors"].items():
            print(f"    {count:>6}  {message}")
    print("\nPASSED" if report["passed"] else "\nFAILED")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100, help="half realtime, half canvas (%(default)s)")
    parser.add_argument("--duration", type=float, default=1800, help="seconds of load (default: %(default)s)")
    parser.add_argument("--fault-every", type=float, default=300, help="seconds between faults (%(default)s)")
    parser.add_argument("--draw-every", type=float, default=5.0, help="seconds between drawings (%(default)s)")
    parser.add_argument("--churn-every", type=float, default=60.0, help="seconds a realtime user stays (%(default)s)")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to await queued drawings (%(default)s)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples (%(default)s)")
    parser.add_argument("--warm-up", type=float, default=120.0, help="seconds before memory must stay flat")
    parser.add_argument("--folder", type=Path, default=REPO_ROOT / "logs" / "chaos", help="logs and nginx files")
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args(argv)
    if not 2 <= args.sessions <= 400:
        parser.error("--sessions must be between 2 and 400")
    if not 0 < args.fault_every < args.duration:
        parser.error("--fault-every must be positive and shorter than --duration")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    topology = Topology(args.folder, say=lambda line: print(line, flush=True))
    try:
        topology.start()
        print(
            f"[chaos] {args.sessions} sessions through {topology.base_url} for {args.duration:g} s, "
            f"a fault every {args.fault_every:g} s",
            flush=True,
        )
        report = asyncio.run(run(topology, args))
        report["exited_on_their_own"] = topology.check_alive()
    finally:
        topology.stop()
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"report: {args.json}")
    return 0 if report["passed"] else 1
