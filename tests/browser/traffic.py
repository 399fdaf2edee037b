"""What a page says over its WebSocket, as Chromium saw it (Playwright's websocket events).

Playwright delivers these events only while the test is inside a Playwright call, so waiting is
done with `wait_until`, which keeps calling into the page while it polls.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Page, WebSocket


@dataclass(frozen=True)
class SentFrame:
    """One binary message: the JSON header and the image bytes behind it."""

    header: dict[str, Any]
    image: bytes


def split_frame(payload: bytes) -> SentFrame:
    (length,) = struct.unpack_from(">I", payload)
    header = json.loads(payload[4 : 4 + length].decode())
    return SentFrame(header=header, image=payload[4 + length :])


@dataclass
class Traffic:
    """Every API WebSocket a page opens, with what went each way."""

    sockets: list[WebSocket] = field(default_factory=list)
    frames: list[SentFrame] = field(default_factory=list)
    texts_sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    closed: list[WebSocket] = field(default_factory=list)

    @classmethod
    def watch(cls, page: Page) -> Traffic:
        traffic = cls()
        page.on("websocket", traffic._on_socket)
        return traffic

    def _on_socket(self, socket: WebSocket) -> None:
        if "/api/" not in socket.url:
            return
        self.sockets.append(socket)
        socket.on("framesent", self._on_sent)
        socket.on("framereceived", self._on_received)
        socket.on("close", lambda closed: self.closed.append(closed))

    def _on_sent(self, payload: bytes | str) -> None:
        if isinstance(payload, bytes):
            self.frames.append(split_frame(payload))
        else:
            self.texts_sent.append(json.loads(payload))

    def _on_received(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            self.received.append(json.loads(payload))

    def statuses(self, status: str) -> list[dict[str, Any]]:
        return [message for message in self.received if message.get("status") == status]


def wait_until(page: Page, condition: Callable[[], Any], what: str, timeout_s: float = 90) -> Any:
    """Poll `condition` (keeping Playwright's events flowing) until it is truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout_s:.0f} s")
        page.wait_for_timeout(100)
