"""One WebSocket session: a reader that checks messages, a policy that schedules frames, the worker
steps that run them through Triton into the session's MJPEG hub (frontends/frame_steps.py).

The reader does only cheap checks (envelope, parameters, image header) so it keeps up with the
socket; decoding, the similarity filter and inference happen in the worker, only for frames the
policy actually takes. Every binary message gets an answer: accepted frames are acknowledged by
the policy's send_frame, refused ones by an error and a send_frame (a realtime client waits for it).
On shutdown the policy decides what is still answered (`shut_down_soon`); whatever it leaves is
refused by frame number before the 1001 close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from frontends import protocol
from frontends.app_keys import Services
from frontends.demo_frames import DemoFrames, demo_greeting, envelope_greeting
from frontends.facts_cache import ModelFacts
from frontends.frame_codec import parse_frame, parse_json
from frontends.frame_steps import FrameSteps
from frontends.image_intake import read_header
from frontends.incoming import Incoming
from frontends.mjpeg import StreamHub
from frontends.params import merged_params, validate_params
from frontends.policies import POLICIES
from frontends.protocol import BadMessage, CloseCode
from frontends.rate_limit import RateLimiter
from frontends.session_binding import Binding
from frontends.triton_client import TritonError
from sdconfig import Mode

log = logging.getLogger(__name__)

_CLOSE_REASON_BYTES = 120
IDLE_CHECK_S = 1.0
"""How often a quiet session checks whether it still has work in hand (which is not idleness)."""


class Session:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        mode: Mode,
        user_id: str,
        services: Services,
        binding: Binding,
        client_rate: RateLimiter | None = None,
        demo: DemoFrames | None = None,
    ) -> None:
        self.ws = ws
        self.mode = mode
        self.user_id = user_id
        self.services = services
        self.binding = binding
        """Who else may watch or replace this session: its key, or its client address (session_binding.py)."""
        self.params: dict[str, Any] = {}
        settings = services.settings
        self.limiter = RateLimiter(settings.server.max_messages_per_second)
        self.client_rate = client_rate
        """Shared by every session of this client address (server.security.max_messages_per_second_per_client)."""
        policy_type = POLICIES[mode]
        self.hub = StreamHub(policy_type.viewer_backlog(settings))
        route = policy_type.route(services, user_id)
        self.steps = FrameSteps(services, mode, self.hub, route, policy_type.publish, self.send, self.report)
        self.policy = policy_type.build(settings, self.steps)
        self.demo = demo
        """Set on the legacy routes: StreamDiffusion's demo protocol is spoken there too."""
        self._frames = 0
        self._draining = False
        """The server is shutting down: frames are still read and answered, but no longer queued."""
        self._reader: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    # lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until the client leaves, the session is closed, or it idles out; then clean up."""
        metrics = self.services.metrics
        metrics.sessions.labels(mode=self.mode).inc()
        log.info("%s session of %s opened", self.mode, self.user_id)
        worker = self._worker = asyncio.create_task(self.policy.run(), name=f"{self.mode}/{self.user_id} worker")
        worker.add_done_callback(self._worker_done)
        try:
            greeting = demo_greeting if self.demo is not None else envelope_greeting
            for text in greeting(self.binding.key):
                await self.send(text)
            self._reader = asyncio.create_task(self._read(), name=f"{self.mode}/{self.user_id} reader")
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        finally:
            self.services.registry.release(self)
            self.hub.close()
            self.policy.close()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await self.steps.route.end()
            if not self.ws.closed:
                await self.ws.close()
            metrics.sessions.labels(mode=self.mode).dec()
            log.info(
                "%s session of %s closed (code %s) after %d frames",
                self.mode,
                self.user_id,
                self.ws.close_code,
                self._frames,
            )

    def close_soon(self, code: CloseCode, reason: str) -> asyncio.Task[None]:
        """Close from outside the session (replacement, shutdown) without waiting on the client."""
        if self._closing is None:
            self._closing = asyncio.create_task(self.close(code, reason))
        return self._closing

    def shut_down_soon(self) -> asyncio.Task[None]:
        """Server shutdown: let the policy finish what it owes, refuse the rest by number, close 1001."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._shut_down())
        return self._closing

    async def _shut_down(self) -> None:
        self._draining = True
        await self.policy.drain()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.wait([self._worker])
        for frame in self.policy.take_unanswered():
            await self.report("shutting_down", protocol.not_processed_shutting_down(frame.seq))
        await self.close(CloseCode.GOING_AWAY, "server shutting down")

    async def close(self, code: CloseCode, reason: str) -> None:
        if not self.ws.closed:
            await self.ws.close(code=code, message=reason.encode()[:_CLOSE_REASON_BYTES])
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()  # it may wait for room in the canvas queue rather than on the socket

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s session of %s failed", self.mode, self.user_id, exc_info=task.exception())
            self.close_soon(CloseCode.INTERNAL_ERROR, "internal error")

    async def send(self, text: str) -> None:
        """Best effort: a client that is gone cannot be told anything."""
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionResetError):
            await self.ws.send_str(text)

    async def report(self, kind: str, text: str) -> None:
        """A problem the session survives: an error, or for a demo-protocol client a status it ignores."""
        self.services.metrics.error(self.mode, kind)
        await self.send(self.demo.problem(text) if self.demo is not None else protocol.error(text))

    # reader ---------------------------------------------------------------------------------

    async def _read(self) -> None:
        idle_s = self.services.settings.server.idle_timeout_s
        last_active = time.monotonic()
        while True:
            remaining = last_active + idle_s - time.monotonic()
            try:
                msg = await self.ws.receive(timeout=max(0.01, min(remaining, IDLE_CHECK_S)))
            except TimeoutError:
                if self.policy.busy:  # the client waits for us: idleness counts from when we are done
                    last_active = time.monotonic()
                if time.monotonic() - last_active < idle_s:
                    continue
                self.services.metrics.error(self.mode, "idle_timeout")
                await self.send(
                    protocol.timeout(
                        f"no message for {idle_s:g} s (server.idle_timeout_s); "
                        'send {"status": "ping"} now and then to stay connected'
                    )
                )
                await self.close(CloseCode.IDLE_TIMEOUT, "idle timeout")
                return
            last_active = time.monotonic()
            if msg.type is WSMsgType.BINARY:
                if await self._within_rate(binary=True):
                    await self._on_binary(msg.data)
            elif msg.type is WSMsgType.TEXT:
                if await self._within_rate(binary=False):
                    await self._on_text(msg.data)
            elif msg.type is WSMsgType.PING:  # answered here, so pings count like any message
                if await self._within_rate(binary=False):
                    with contextlib.suppress(ConnectionResetError):
                        await self.ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                pass
            else:
                if msg.type is WSMsgType.ERROR and getattr(msg.data, "code", None) == CloseCode.MESSAGE_TOO_BIG:
                    self.services.metrics.error(self.mode, "message_too_big")
                return
            if self.ws.closed:
                return

    async def _within_rate(self, binary: bool) -> bool:
        if self.limiter.allow():
            if self.client_rate is None or self.client_rate.allow():
                return True
            limiter, key, whose = self.client_rate, "server.security.max_messages_per_second_per_client", "your address"
        else:
            limiter, key, whose = self.limiter, "server.max_messages_per_second", "this session"
        rate = limiter.per_second
        if limiter.flooding():
            self.services.metrics.error(self.mode, "flooding")
            await self.send(protocol.error(f"message flood: far more than {rate:g} messages a second; closing"))
            await self.close(CloseCode.POLICY_VIOLATION, "message flood")
            return False
        await self.report(
            "rate_limited",
            f"too many messages from {whose}: at most {rate:g} a second ({key}); this one was ignored",
        )
        if binary:
            await self.send(protocol.SEND_FRAME)
        return False

    async def _facts(self) -> ModelFacts:
        return await self.services.facts.get(self.mode)

    async def _on_binary(self, data: bytes) -> None:
        received_at = time.monotonic()
        self.services.metrics.received.labels(mode=self.mode).inc()
        demo = self.demo.takes_binary(data) if self.demo is not None else None
        if demo is None:
            try:
                frame = parse_frame(data)
            except BadMessage as exc:
                await self._refuse_frame("bad_message", str(exc))
                return
            await self._accept(frame.params, frame.image, received_at)
        elif demo.image:
            await self._accept(demo.params, demo.image, received_at)
        else:  # the demo's way of saying "no frame this time"
            await self.send(protocol.SEND_FRAME)

    async def _accept(self, raw: dict[str, Any], image: bytes, received_at: float) -> None:
        server, pipeline = self.services.settings.server, self.services.settings.pipeline
        try:
            facts = await self._facts()
            params = validate_params(merged_params(raw), facts.input_params, server.max_prompt_chars)
            header = await self.services.images.run(
                read_header, image, pipeline.max_image_bytes, pipeline.max_image_pixels, pipeline.max_image_scans
            )
        except BadMessage as exc:
            await self._refuse_frame("bad_message", str(exc))
            return
        except TritonError as exc:
            await self._refuse_frame(exc.kind, str(exc))
            return
        self._frames += 1
        if self._draining:  # no await since the check: the shutdown either sees this frame or refuses it here
            await self.report("shutting_down", protocol.not_processed_shutting_down(self._frames))
            return
        await self.policy.accept(Incoming({**self.params, **params}, image, header, received_at, self._frames))
        if not self._draining:  # once shutting down, the client is not asked for more
            await self.policy.acknowledge()

    async def _refuse_frame(self, kind: str, text: str) -> None:
        """Every frame gets an answer: a refused one its reason and a request for the next."""
        await self.report(kind, text)
        await self.send(protocol.SEND_FRAME)

    async def _on_text(self, text: str) -> None:
        try:
            obj = parse_json(text, "text message")
        except BadMessage as exc:
            await self.report("bad_message", str(exc))
            return
        if not isinstance(obj, dict):
            await self.report("bad_message", f"text message must be a JSON object, got {type(obj).__name__}")
            return
        try:
            if self.demo is not None and self.demo.takes_text(obj):
                return
        except BadMessage as exc:
            await self.report("bad_message", str(exc))
            return
        status = obj.pop("status", None)
        if status == protocol.STATUS_PING:
            await self.send(protocol.PONG)
        elif status == protocol.STATUS_UPDATE_PARAMS:
            await self._update_params(obj)
        elif status == protocol.STATUS_NEXT_FRAME:
            await self.report(
                "bad_message",
                "next_frame carries an image: send it as one binary message [4-byte length][JSON][image]",
            )
        else:
            accepted = ", ".join(protocol.CLIENT_TEXT_STATUSES)
            await self.report("bad_message", f"unknown status {status!r}; text messages accept status {accepted}")

    async def _update_params(self, params: dict[str, Any]) -> None:
        try:
            facts = await self._facts()
            checked = validate_params(
                merged_params(params), facts.input_params, self.services.settings.server.max_prompt_chars
            )
        except BadMessage as exc:
            await self.report("bad_message", str(exc))
            return
        except TritonError as exc:
            await self.report(exc.kind, str(exc))
            return
        self.params.update(checked)
        await self.send(protocol.params_updated(self.params))
