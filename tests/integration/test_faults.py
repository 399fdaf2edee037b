"""Real faults against real processes: a model's stub process killed, tritonserver killed and
started again on the same ports, and the frontends stopped with SIGTERM while sessions run.

What must hold: clients are told ({"status": "error"}), the frontends stay up and say they are not
ready while a model cannot serve, everything recovers without the clients reconnecting, and no
realtime sequence state is left in the model (its `streamdiffusion_live_sequences` gauge).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from frontend_helpers import live_sequences, moving_scene
from triton_calls import jpeg

from frontends.client import ProtocolClient, StreamReader
from tests.servers import FrontendServer, TritonServer, launch_frontends, launch_triton

pytestmark = pytest.mark.triton
REALTIME = "streamdiffusion_realtime"
CANVAS = "streamdiffusion_canvas"
FRONTEND_ENV = {
    "SD__TRITON__HEALTH_INTERVAL_S": "0.5",
    "SD__REALTIME__PERFORMANCE__ENABLE_SIMILAR_IMAGE_FILTER": "false",  # every frame gets a part or an error
}


# --------------------------------------------------------------------------- processes


def children(pid: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of the live children of `pid`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = [a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        state, ppid = stat[stat.rfind(")") + 2 :].split()[:2]
        if int(ppid) == pid and state != "Z" and argv:
            found.append((int(entry.name), argv))
    return found


def tritonserver_pid(triton: TritonServer) -> int:
    (pid,) = [pid for pid, argv in children(triton.server.process.pid) if argv[0].endswith("tritonserver")]
    return pid


def stub_of(triton: TritonServer, model: str) -> int:
    stubs = [
        pid
        for pid, argv in children(tritonserver_pid(triton))
        if argv[0].endswith("triton_python_backend_stub") and f"/{model}/" in argv[1]
    ]
    assert len(stubs) == 1, f"one stub for {model}, found {stubs}"
    return stubs[0]


def readyz(base_url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def healthz(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url}/healthz", timeout=10) as answer:
        return answer.status


def wait_until(condition, what: str, timeout: float = 120.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"not within {timeout:.0f} s: {what}")


def report(what: str, since: float, errors: int | None = None, at: float | None = None) -> None:
    """How long recovery took, for docs/reliability.md (shown with pytest -s; never asserted)."""
    took = (at or time.monotonic()) - since
    print(
        f"[faults] {what}: {took:.1f} s" + (f", {errors} frames answered with an error" if errors is not None else "")
    )


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    triton: TritonServer
    frontend: FrontendServer
    tmp: Path

    @property
    def ports(self) -> tuple[int, int, int]:
        return tuple(
            int(url.rsplit(":", 1)[1]) for url in (self.triton.grpc_url, self.triton.http_url, self.triton.metrics_url)
        )  # type: ignore[return-value]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Triton of its own (these tests kill it) with a fast watchdog, and frontends in front of it."""
    tmp = tmp_path_factory.mktemp("faults")
    triton = launch_triton(tmp / "first", extra_env={"SD__TRITON__WATCHDOG_INTERVAL_S": "1"})
    frontend = launch_frontends(triton, FRONTEND_ENV)
    state = Stack(triton, frontend, tmp)
    yield state
    state.frontend.server.stop()
    state.triton.server.stop()


# --------------------------------------------------------------------------- clients


class User:
    """One protocol client and its MJPEG viewer; each frame is followed by its part or its error."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, mode: str, user_id: str, size: int) -> None:
        self.client = ProtocolClient(http, base_url, mode, user_id)
        self.stream = StreamReader(http, self.client.stream_url)
        self.size = size
        self.t = 0

    async def open(self) -> None:
        assert (await self.client.connect())["status"] == "connected"
        assert (await self.stream.start()).status == 200

    async def frame(self) -> str:
        """'part', or the error message the frame got."""
        self.t += 1
        self.client.drain()
        await self.client.send_frame(jpeg(moving_scene(self.t, self.size)), seed=self.t)
        part = asyncio.ensure_future(self.stream.next_part(wait_s=300))
        error = asyncio.ensure_future(self.client.expect("error", wait_s=300))
        done, pending = await asyncio.wait([part, error], return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if part in done:
            assert part.result() is not None, "the stream ended"
            return "part"
        return error.result().get("message", str(error.result()))

    async def until_part(self, others: tuple[User, ...] = (), tries: int = 600) -> list[str]:
        """Frames until one yields a part; returns the errors seen on the way. `others` are kept
        from idling out meanwhile (a ping each try)."""
        errors = []
        for _ in range(tries):
            outcome = await self.frame()
            if outcome == "part":
                return errors
            errors.append(outcome)
            for other in others:
                await other.client.send_json({"status": "ping"})
            await asyncio.sleep(0.25)
        pytest.fail(f"no part after {tries} frames: {errors[-3:]}")

    async def close(self) -> None:
        await self.client.close()
        await self.stream.stop()


# --------------------------------------------------------------------------- tests


def test_a_dead_model_stub_is_reported_and_reloaded_by_the_launcher(stack: Stack):
    base = stack.frontend.base_url
    size = stack.triton.settings.pipeline.width
    observed: dict[str, object] = {}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            canvas = User(http, base, "canvas", "stub-canvas", size)
            realtime = User(http, base, "realtime", "stub-realtime", size)
            for user in (canvas, realtime):
                await user.open()
                assert await user.frame() == "part"

            os.kill(stub_of(stack.triton, CANVAS), signal.SIGKILL)
            killed = time.monotonic()
            observed["error"] = await canvas.frame()
            assert await realtime.frame() == "part", "the other model is unaffected"

            _, unready = await asyncio.to_thread(
                wait_until, lambda: (r := readyz(base))[0] == 503 and r, "/readyz says not ready", 60, 0.05
            )
            observed["unready"] = unready
            observed["errors while reloading"] = await canvas.until_part(others=(realtime,))
            report("stub killed -> canvas results again", killed, len(observed["errors while reloading"]))
            assert await realtime.frame() == "part"
            for user in (canvas, realtime):
                await user.close()

    asyncio.run(scenario())
    assert observed["error"] != "part", "a drawing sent to the dead stub is answered with an error"
    endpoint = next(iter(observed["unready"]["triton"].values()))  # type: ignore[index]
    assert endpoint["models"][CANVAS] is False and endpoint["models"][REALTIME] is True
    wait_until(lambda: readyz(base)[0] == 200, "/readyz ready again after the reload")
    lines = stack.triton.server.lines
    assert any(f"watchdog: the stub of {CANVAS}" in line and "died; reloading" in line for line in lines)
    assert any(f"watchdog: {CANVAS} reloaded" in line for line in lines)
    assert healthz(base) == 200


def test_triton_killed_mid_session_then_back_on_the_same_ports(stack: Stack):
    base = stack.frontend.base_url
    size = stack.triton.settings.pipeline.width
    ports = stack.ports
    outcome: dict[str, object] = {}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            users = [User(http, base, mode, f"survivor-{mode}", size) for mode in ("realtime", "canvas")]
            for user in users:
                await user.open()
                assert await user.frame() == "part"

            os.kill(tritonserver_pid(stack.triton), signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.to_thread(stack.triton.server.process.wait, 60)  # the launcher notices and exits
            outcome["errors"] = [await user.frame() for user in users]
            outcome["health while down"] = await asyncio.to_thread(healthz, base)
            outcome["ready while down"] = (await asyncio.to_thread(readyz, base))[0]

            stack.triton = await asyncio.to_thread(
                launch_triton, stack.tmp / "second", ports=ports, extra_env={"SD__TRITON__WATCHDOG_INTERVAL_S": "1"}
            )
            restarted = time.monotonic()
            outcome["errors on the way back"] = [
                await user.until_part(others=tuple(u for u in users if u is not user)) for user in users
            ]
            report("tritonserver killed -> restarted and ready", killed, at=restarted)
            report("restarted -> results in both modes", restarted, sum(map(len, outcome["errors on the way back"])))
            outcome["live during"] = live_sequences(stack.triton.metrics_url, REALTIME)
            for user in users:
                await user.close()

    asyncio.run(scenario())
    for error in outcome["errors"]:  # type: ignore[union-attr]
        assert "unreachable" in error or "did not answer" in error, error
    assert outcome["health while down"] == 200, "the frontends stay up"
    assert outcome["ready while down"] == 503
    assert outcome["live during"] == 1, "the realtime session started a fresh sequence on the new server"
    wait_until(lambda: live_sequences(stack.triton.metrics_url, REALTIME) == 0, "the sequence ended on close", 30)
    wait_until(lambda: readyz(base)[0] == 200, "/readyz ready again")


def test_sigterm_drains_sessions_with_1001_and_ends_their_sequences(triton_server: TritonServer):
    frontend = launch_frontends(triton_server, FRONTEND_ENV)
    size = triton_server.settings.pipeline.width
    wait_until(lambda: live_sequences(triton_server.metrics_url, REALTIME) == 0, "earlier tests' sequences gone", 30)
    seen: dict[str, object] = {}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            users = [User(http, frontend.base_url, "realtime", f"drained-{i}", size) for i in range(3)]
            users.append(User(http, frontend.base_url, "canvas", "drained-canvas", size))
            for user in users:
                await user.open()
                assert await user.frame() == "part"
            seen["live during"] = live_sequences(triton_server.metrics_url, REALTIME)
            frontend.server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            seen["closes"] = [(await user.client.expect("closed", wait_s=60))["code"] for user in users]
            seen["stream ends"] = [await user.stream.next_part(wait_s=60) for user in users]
            report("SIGTERM -> every session closed with 1001", signalled)
            for user in users:
                await user.close()

    try:
        asyncio.run(scenario())
        seen["exit"] = frontend.server.process.wait(60)
    finally:
        frontend.server.stop()
    assert seen["live during"] == 3
    assert seen["closes"] == [1001] * 4
    assert seen["stream ends"] == [None] * 4
    assert seen["exit"] == 0
    # the drain ended the sequences before the process exited: nothing left for the idle timer
    assert live_sequences(triton_server.metrics_url, REALTIME) == 0
