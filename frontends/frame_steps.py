"""The worker's steps for one session's frames: small decode, fit, infer on the policy's route, publish.

The policies schedule; these steps do the work, and report what went wrong to the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import numpy as np
from tritonclient.grpc import InferInput

from frontends.app_keys import Services
from frontends.image_intake import decode_small, fit_image
from frontends.incoming import Incoming
from frontends.mjpeg import Part, StreamHub
from frontends.protocol import BadMessage
from frontends.triton_client import TritonError
from frontends.triton_inputs import build_inputs
from sdconfig import Mode

Report = Callable[[str, str], Awaitable[None]]
Publish = Callable[[StreamHub, Part], Awaitable[None]]


class Route(Protocol):
    """Where a session's frames go in Triton: its own sequence (realtime) or one request each (canvas)."""

    async def infer(self, inputs: list[InferInput]) -> bytes | None: ...

    async def end(self) -> None: ...


class StatelessRoute:
    """One independent request per frame, on the server rendezvous hashing picks for the user."""

    def __init__(self, services: Services, user_id: str, model: str) -> None:
        self._pool, self._user_id, self._model = services.pool, user_id, model

    async def infer(self, inputs: list[InferInput]) -> bytes | None:
        return await self._pool.infer(self._pool.pick(self._user_id), self._model, inputs)

    async def end(self) -> None:
        """Nothing is held between requests."""


class FrameSteps:
    def __init__(
        self,
        services: Services,
        mode: Mode,
        hub: StreamHub,
        route: Route,
        publish: Publish,
        send: Callable[[str], Awaitable[None]],
        report: Report,
    ) -> None:
        self.services, self.mode, self.hub, self.route = services, mode, hub, route
        self._publish, self.send, self._report = publish, send, report
        self._quality = services.settings.performance(mode).jpeg_quality
        self._first_frame_at: float | None = None

    def count(self, event: Literal["dropped", "skipped"]) -> None:
        counter = self.services.metrics.dropped if event == "dropped" else self.services.metrics.skipped
        counter.labels(mode=self.mode).inc()

    async def decode(self, frame: Incoming) -> np.ndarray | None:
        try:
            return await self.services.images.run(decode_small, frame.image, frame.header)
        except BadMessage as exc:
            await self._report("bad_message", f"frame {frame.seq}: {exc}")
            return None

    async def process(self, frame: Incoming) -> bool:
        """Fit the image if needed, run it through Triton, publish the result by the policy's rule."""
        if self._first_frame_at is None:
            self._first_frame_at = frame.received_at
        try:
            jpeg = await self._infer(frame)
        except BadMessage as exc:
            await self._report("bad_message", f"frame {frame.seq}: {exc}")
            return False
        except TritonError as exc:
            await self._report(exc.kind, f"frame {frame.seq}: {exc}")
            return False
        if not jpeg:
            await self._report("model_error", f"frame {frame.seq}: the model returned no image")
            return False
        self.services.metrics.processed.labels(mode=self.mode).inc()
        await self._publish(self.hub, Part(jpeg, frame.received_at, session_started_at=self._first_frame_at))
        return True

    async def _infer(self, frame: Incoming) -> bytes | None:
        facts = await self.services.facts.get(self.mode)
        width, height = int(facts.info["width"]), int(facts.info["height"])
        image = frame.image
        if (frame.header.width, frame.header.height) != (width, height):
            image = await self.services.images.run(fit_image, image, width, height, self._quality)
        return await self.route.infer(build_inputs(image, frame.params, facts.input_params, self._quality))
