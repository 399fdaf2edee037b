"""StreamDiffusion's demo protocol, spoken on the legacy routes: three messages make one frame.

    text   {"status": "next_frame"}          (a nested "params" object is read too)
    text   {...parameters...}                no "status" key
    binary the image (JPEG from a canvas); an empty message means "no frame this time"

A legacy session is told apart from this service's binary envelope by its first message: a
binary message first means the envelope, for the whole session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from frontends import protocol
from frontends.params import merged_params


def envelope_greeting(session_key: str) -> tuple[str, ...]:
    return (protocol.connected(session_key), protocol.SEND_FRAME)


def demo_greeting(session_key: str) -> tuple[str, ...]:
    """What the demo's own server sends on connect, with the session key its pages ignore."""
    return (protocol.connected(session_key, message="Connected"), protocol.WAIT, protocol.SEND_FRAME)


@dataclass(frozen=True, slots=True)
class DemoFrame:
    params: dict[str, Any]
    image: bytes
    """Empty when the client had no frame to send."""


class DemoFrames:
    def __init__(self) -> None:
        self.dialect: Literal["undecided", "demo", "envelope"] = "undecided"
        self._expect: Literal["next_frame", "params", "image"] = "next_frame"
        self._params: dict[str, Any] = {}

    @property
    def speaks_demo(self) -> bool:
        return self.dialect == "demo"

    def problem(self, text: str) -> str:
        """The demo pages stop on "error": a problem the session survives gets a status they ignore."""
        return protocol.message("warning", message=text) if self.speaks_demo else protocol.error(text)

    def takes_text(self, message: dict[str, Any]) -> bool:
        """Whether this text message is part of a demo frame (kept here) rather than a protocol message."""
        if self.dialect == "envelope":
            return False
        if self._expect == "params" and "status" not in message:
            self._params.update(message)
            self._expect = "image"
            return True
        if message.get("status") == protocol.STATUS_NEXT_FRAME:
            fields = dict(message)
            fields.pop("status")
            self._params = merged_params(fields)
            self._expect = "params"
            self.dialect = "demo"
            return True
        return False

    def takes_binary(self, data: bytes) -> DemoFrame | None:
        """The completed frame when a demo frame's image arrives; None when it is an envelope."""
        if self.dialect == "undecided":
            self.dialect = "envelope"
        if self.dialect == "envelope":
            return None
        frame = DemoFrame(self._params, data)
        self._params, self._expect = {}, "next_frame"
        return frame
