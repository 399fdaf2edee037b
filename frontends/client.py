"""A Python client of the protocol: a WebSocket session and its MJPEG stream.

What the load benchmark and the tests speak, and a reference for anyone writing a client in
another language: open `WS /api/{mode}/ws/{user_id}`, wait for "connected", open
`GET /api/{mode}/stream/{user_id}?session_key=<its session_key>`, then send binary frames
(realtime: one per "send_frame"). A reconnect that should replace a session still open passes
that session's key on the WebSocket URL too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

from frontends.frame_codec import encode_frame
from frontends.session_binding import SESSION_KEY_PARAM


async def read_parts(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Yield each part's body from a `multipart/x-mixed-replace; boundary=frame` body, until EOF."""
    while True:
        line = await content.readline()
        if not line:
            return
        if line.rstrip(b"\r\n") != b"--frame":
            continue
        length = None
        while True:
            header = await content.readline()
            if not header:
                return
            if header in (b"\r\n", b"\n"):
                break
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise ValueError("MJPEG part without Content-Length")
        try:
            body = await content.readexactly(length)
        except asyncio.IncompleteReadError:
            return
        yield body


class ProtocolClient:
    """One user's session. Server messages are queued in arrival order; `expect` takes them."""

    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, mode: str, user_id: str, session_key: str | None = None
    ) -> None:
        """`session_key`: of a session of this user_id still open that this connection should replace."""
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.mode = mode
        self.user_id = user_id
        self.session_key = session_key
        """Before connect: the key to present; after: this session's own, from its connected message."""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def ws_url(self) -> str:
        return self.with_key(f"{self.base_url}/api/{self.mode}/ws/{self.user_id}")

    @property
    def stream_url(self) -> str:
        return self.with_key(f"{self.base_url}/api/{self.mode}/stream/{self.user_id}")

    def with_key(self, url: str) -> str:
        if self.session_key is None:
            return url
        return str(URL(url).update_query({SESSION_KEY_PARAM: self.session_key}))

    async def connect(self, **ws_options: Any) -> dict[str, Any]:
        """Open the WebSocket; return the first message (normally {"status": "connected", "session_key": ...})."""
        self.ws = await self.http.ws_connect(self.ws_url, **ws_options)
        self._pump = asyncio.create_task(self._receive())
        first = await self.messages.get()
        if first.get("status") == "connected" and isinstance(first.get("session_key"), str):
            self.session_key = first["session_key"]
        return first

    async def _receive(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await self.messages.put(json.loads(msg.data))
        self.close_code = self.ws.close_code
        await self.messages.put({"status": "closed", "code": self.close_code})

    async def expect(self, *statuses: str, wait_s: float = 60.0) -> dict[str, Any]:
        """The next message whose status is one of `statuses`; others are skipped."""
        async with asyncio.timeout(wait_s):
            while True:
                message = await self.messages.get()
                if message["status"] in statuses or message["status"] == "closed":
                    return message

    async def next_message(self, wait_s: float = 60.0) -> dict[str, Any]:
        async with asyncio.timeout(wait_s):
            return await self.messages.get()

    def drain(self) -> list[dict[str, Any]]:
        """The messages received and not taken yet, without waiting."""
        taken = []
        while not self.messages.empty():
            taken.append(self.messages.get_nowait())
        return taken

    async def send_frame(self, image: bytes, **params: Any) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(encode_frame(params, image))

    async def send_json(self, obj: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(obj))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._pump is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    async def __aenter__(self) -> ProtocolClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class StreamReader:
    """Reads a user's MJPEG stream in the background into a queue of part bodies (None at the end)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.parts: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.response: aiohttp.ClientResponse | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> aiohttp.ClientResponse:
        self.response = await self.http.get(self.url)
        if self.response.status == 200:
            self._task = asyncio.create_task(self._read())
        return self.response

    async def _read(self) -> None:
        assert self.response is not None
        try:
            async for body in read_parts(self.response.content):
                await self.parts.put(body)
        except aiohttp.ClientError:
            pass
        finally:
            await self.parts.put(None)

    async def next_part(self, wait_s: float = 60.0) -> bytes | None:
        async with asyncio.timeout(wait_s):
            return await self.parts.get()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.response is not None:
            self.response.close()
