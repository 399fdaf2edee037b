"""A frame that passed the reader's cheap checks and waits for a policy to schedule it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from frontends.image_intake import ImageHeader


@dataclass(frozen=True, slots=True)
class Incoming:
    params: dict[str, Any]
    """This frame's effective parameters: the session's (update_params) overlaid with the frame's own."""
    image: bytes
    header: ImageHeader
    received_at: float
    """time.monotonic() at arrival; the latency histogram measures from here."""
    seq: int
    """Arrival number within the session (1, 2, ...), for ordering and logs."""
