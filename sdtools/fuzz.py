"""Fuzz the wire protocol against a real frontends process (and the Triton behind it) with hypothesis.

Without --url it starts its own stack on free ports (sdtools.local_stack, tests/config.test.yaml)
with the message-rate limits raised and the similar-image filter off (so every accepted frame yields
a part and every message's outcome can be waited for). With --url the stack must be set up alike.

The cases come from sdtools.fuzz_strategies. Properties, checked after every message: the server
answers it (a binary frame with an MJPEG part or an error, a text message with pong,
params_updated or an error) within --answer-timeout, and never closes the session; after every
example the process is alive, /healthz answers, and a canary session opened at the start still
answers a ping, and every tenth example a drawing with a part. A violation stops the run with
hypothesis' smallest failing example; exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from hypothesis import HealthCheck, given, seed, settings

from frontends.client import ProtocolClient, StreamReader
from frontends.frame_codec import encode_frame
from sdtools.fuzz_strategies import Case, cases, images
from sdtools.local_stack import local_stack

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
FUZZ_OVERRIDES = {
    "SD__SERVER__MAX_MESSAGES_PER_SECOND": "100000",
    "SD__SERVER__SECURITY__MAX_MESSAGES_PER_SECOND_PER_CLIENT": "100000",
    "SD__SERVER__SECURITY__MAX_SESSIONS_PER_CLIENT": "64",
    "SD__REALTIME__PERFORMANCE__ENABLE_SIMILAR_IMAGE_FILTER": "false",
}
"""What a stack needs so that every message of a fuzz run gets an outcome that can be waited for."""
TEXT_REPLIES = ("pong", "params_updated", "error")
CANARY_FRAME_EVERY = 10
KEEPALIVE_S = 5.0


# --------------------------------------------------------------------------- running against the server


class LoopThread:
    """One event loop in a thread for the whole run, so the canary session outlives the examples."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Stats:
    examples: int = 0
    messages: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    canary_frames: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    """Binary frames' error messages, cut to their gist."""


def _gist(message: str) -> str:
    """An error message without what differs between frames (numbers, quoted values)."""
    text = re.sub(r"^frame \d+: ", "", message)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    return re.sub(r"\d+", "N", text)[:90]


class Fuzzer:
    def __init__(self, base_url: str, answer_timeout: float, alive: Callable[[], bool]) -> None:
        self.base_url = base_url.rstrip("/")
        self.answer_timeout = answer_timeout
        self.alive = alive
        self.stats = Stats()
        self.http: aiohttp.ClientSession | None = None
        self.canary: ProtocolClient | None = None
        self.canary_stream: StreamReader | None = None
        self.pictures: list[bytes] = []
        self.size = 0
        self.last_error = ""
        self._keepalive: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # no total timeout: aiohttp's default (5 minutes) would end the canary's MJPEG stream mid-run
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        async with self.http.get(f"{self.base_url}/api/canvas/settings") as answer:
            assert answer.status == 200, f"the stack is not ready: /api/canvas/settings answered {answer.status}"
            self.size = int((await answer.json())["info"]["width"])
        self.pictures = images(self.size)
        self.canary = ProtocolClient(self.http, self.base_url, "canvas", "fuzz-canary")
        assert (await self.canary.connect())["status"] == "connected"
        self.canary_stream = StreamReader(self.http, self.canary.stream_url)
        assert (await self.canary_stream.start()).status == 200
        self._keepalive = asyncio.create_task(self._keep_canary_alive())
        await self.check_canary(with_frame=True)

    async def _keep_canary_alive(self) -> None:
        """A ping now and then, so a slow example does not idle the canary out (it would hide the cause)."""
        assert self.canary is not None
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            if self.canary.ws is not None and not self.canary.ws.closed:
                await self.canary.send_json({"status": "ping"})

    async def stop(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self.canary is not None:
            await self.canary.close()
        if self.canary_stream is not None:
            await self.canary_stream.stop()
        if self.http is not None:
            await self.http.close()

    async def check_canary(self, with_frame: bool) -> None:
        assert self.canary is not None and self.canary_stream is not None
        self.canary.drain()
        await self.canary.send_json({"status": "ping"})
        reply = await self.canary.expect("pong", wait_s=self.answer_timeout)
        assert reply["status"] == "pong", f"the canary session got {reply} instead of a pong"
        if with_frame:
            self.canary.drain()
            outcome = await self.answer(
                self.canary, self.canary_stream, encode_frame({"seed": self.stats.canary_frames}, self.pictures[0])
            )
            assert outcome == "part", f"the canary's drawing got {self.last_error!r} instead of its picture"
            self.stats.canary_frames += 1

    async def run_case(self, case: Case) -> None:
        assert self.http is not None
        number = self.stats.examples = self.stats.examples + 1
        client = ProtocolClient(self.http, self.base_url, case.mode, f"fuzz-{number}")
        stream = StreamReader(self.http, client.stream_url)
        try:
            assert (await client.connect())["status"] == "connected"
            assert (await stream.start()).status == 200
            for message in case.messages:
                client.drain()  # send_frame and wait only pace; they answer nothing
                outcome = await self.answer(client, stream, message)
                self.stats.messages["binary" if isinstance(message, bytes) else "text"] += 1
                self.stats.outcomes[outcome] += 1
        finally:
            await client.close()
            await stream.stop()
        assert self.alive(), "the frontends process died"
        async with self.http.get(f"{self.base_url}/healthz") as answer:
            assert answer.status == 200, f"/healthz answered {answer.status}"
        await self.check_canary(with_frame=number % CANARY_FRAME_EVERY == 0)

    async def answer(self, client: ProtocolClient, stream: StreamReader, message: bytes | str) -> str:
        """The outcome of one message: 'part', 'error', 'pong' or 'params_updated'."""
        if isinstance(message, str):
            await client.ws.send_str(message)  # type: ignore[union-attr]
            reply = await client.expect(*TEXT_REPLIES, wait_s=self.answer_timeout)
            assert reply["status"] != "closed", f"the server closed the session ({reply}) after text {message!r:.200}"
            return str(reply["status"])
        await client.ws.send_bytes(message)  # type: ignore[union-attr]
        part = asyncio.ensure_future(stream.next_part(wait_s=self.answer_timeout))
        error = asyncio.ensure_future(client.expect("error", wait_s=self.answer_timeout))
        done, pending = await asyncio.wait([part, error], return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        finished = done.pop()
        result = finished.result()  # a TimeoutError here: the frame got no answer
        if finished is part:
            assert result is not None, f"the stream ended after binary {message[:120]!r}"
            return "part"
        assert result["status"] == "error", f"the server closed the session ({result}) after binary {message[:120]!r}"
        self.last_error = str(result.get("message", ""))
        self.stats.errors[_gist(self.last_error)] += 1
        return "error"


def fuzz(base_url: str, examples: int, seed_value: int, answer_timeout: float, alive: Callable[[], bool]) -> Stats:
    """Run `examples` hypothesis examples against the frontends at `base_url`; raises on a violation."""
    loop = LoopThread()
    fuzzer = Fuzzer(base_url, answer_timeout, alive)
    budget = answer_timeout * 10
    try:
        loop.run(fuzzer.start(), budget)

        @seed(seed_value)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases(fuzzer.pictures))
        def property_holds(case: Case) -> None:
            try:
                loop.run(fuzzer.run_case(case), budget)
            except BaseException as exc:
                print(f"[fuzz] example {fuzzer.stats.examples} failed with {exc!r}: {case!r:.3000}", flush=True)
                raise

        property_holds()
        loop.run(fuzzer.check_canary(with_frame=True), budget)
    finally:
        try:
            loop.run(fuzzer.stop(), 30)
        finally:
            loop.close()
    return fuzzer.stats


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="hypothesis examples (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed, for a reproducible run")
    parser.add_argument("--answer-timeout", type=float, default=120.0, help="seconds a message may wait for its answer")
    parser.add_argument(
        "--url", help="frontends of a running stack (set up as FUZZ_OVERRIDES says); default: start one"
    )
    parser.add_argument("--logs", type=Path, default=REPO_ROOT / "logs" / "fuzz", help="where the own stack logs")
    args = parser.parse_args(argv)
    if not 0 < args.examples <= 1_000_000:
        parser.error("--examples must be between 1 and 1000000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        if args.url:
            stats = fuzz(args.url, args.examples, args.seed, args.answer_timeout, lambda: True)
        else:
            print(f"[fuzz] starting Triton and the frontends (logs in {args.logs})", flush=True)
            with local_stack(args.logs, overrides=FUZZ_OVERRIDES) as stack:
                pid = stack.frontend_pid
                print(f"[fuzz] {args.examples} examples against {stack.base_url}", flush=True)
                stats = fuzz(stack.base_url, args.examples, args.seed, args.answer_timeout, lambda: _running(pid))
    except Exception as exc:  # hypothesis may wrap the failure (FlakyFailure) when a replay differs
        print(f"[fuzz] FAILED after {time.monotonic() - started:.0f} s: {exc!r}", flush=True)
        return 1
    print(
        json.dumps(
            {
                "examples": stats.examples,
                "messages": dict(stats.messages),
                "outcomes": dict(stats.outcomes),
                "canary_frames": stats.canary_frames,
                "frame_errors": dict(stats.errors.most_common(25)),
                "elapsed_s": round(time.monotonic() - started, 1),
            },
            indent=2,
        )
    )
    print("PASSED: no crash, no hang, every message answered, the canary unaffected")
    return 0


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
