"""The one place that maps a mode to its policy; everything a mode does differently hangs off that class."""

from __future__ import annotations

from typing import Protocol

from frontends.app_keys import Services
from frontends.canvas_policy import CanvasPolicy
from frontends.frame_steps import FrameSteps, Route
from frontends.incoming import Incoming
from frontends.mjpeg import Part, StreamHub
from frontends.realtime_policy import RealtimePolicy
from sdconfig import Mode, Settings


class Policy(Protocol):
    busy: bool

    async def accept(self, frame: Incoming) -> None:
        """Take a checked frame from the reader (may wait: back-pressure)."""

    async def acknowledge(self) -> None:
        """What the client hears once its frame is accepted."""

    async def run(self) -> None:
        """The worker loop: schedule accepted frames onto the steps."""

    async def drain(self) -> None:
        """Shutdown: finish what the mode owes its client, within the mode's budget."""

    def take_unanswered(self) -> list[Incoming]:
        """After the worker stopped: the accepted frames the client must be told were not processed."""

    def close(self) -> None: ...


class PolicyType(Protocol):
    @staticmethod
    def route(services: Services, user_id: str) -> Route: ...

    @staticmethod
    async def publish(hub: StreamHub, part: Part) -> None: ...

    @staticmethod
    def viewer_backlog(settings: Settings) -> int: ...

    def build(self, settings: Settings, steps: FrameSteps) -> Policy: ...


POLICIES: dict[Mode, PolicyType] = {"realtime": RealtimePolicy, "canvas": CanvasPolicy}  # type: ignore[dict-item]
