"""One realtime session's Triton sequence: the key of its stream-batch state inside the model.

The sequence id is a random 63-bit number (unique without coordination between frontend
processes). The first request carries START; disconnecting sends END with an empty IMAGE, which
frees the model's state without running it. After a failed request, or after a silence longer
than the model keeps idle state, the next frame opens a fresh sequence (new id, START): whatever
state the old id had is gone or suspect, and Triton refuses a request without START for an id
it no longer knows. The old id is ended on a best-effort basis. A request the model merely
refused as invalid (a bad parameter) leaves a started sequence as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from tritonclient.grpc import InferInput

from frontends.triton_client import Endpoint, TritonError, TritonPool
from frontends.triton_inputs import end_of_sequence_inputs

log = logging.getLogger(__name__)

END_TIMEOUT_S = 5.0
IDLE_MARGIN = 0.8
"""A sequence silent for this share of its idle limit is restarted rather than continued."""
_ID_BITS = 63


class TritonSequence:
    def __init__(
        self,
        pool: TritonPool,
        user_id: str,
        model: str,
        idle_limit_s: float,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.user_id = user_id
        self.endpoint: Endpoint = pool.pick(user_id)
        self.model = model
        self.idle_limit_s = idle_limit_s
        self._rng = rng or random.SystemRandom()
        self._clock = clock
        self.sequence_id = 0
        self._started = False
        self._last_request = 0.0
        self.restarts = 0
        self._pending_ends: set[asyncio.Task[None]] = set()

    def _new_id(self) -> int:
        return self._rng.getrandbits(_ID_BITS) or 1

    async def infer(self, inputs: list[InferInput]) -> bytes | None:
        """One frame of this sequence; START on the first frame of a (re)started sequence."""
        if self._started and self._clock() - self._last_request > self.idle_limit_s * IDLE_MARGIN:
            self._abandon()  # Triton and the model free an idle sequence; do not race their timers
        start = not self._started
        if start:  # a new sequence may go to another server: the old one may have left
            self.sequence_id = self._new_id()
            self.endpoint = self.pool.pick(self.user_id)
        self._last_request = self._clock()
        try:
            output = await self.pool.infer(
                self.endpoint, self.model, inputs, sequence_id=self.sequence_id, sequence_start=start
            )
        except TritonError as exc:
            if start or not exc.refused:
                self._abandon()
            raise
        self._started = True
        return output

    @property
    def started(self) -> bool:
        return self._started

    def _abandon(self) -> None:
        """Forget the current id (ending it in the background) so the next frame starts afresh."""
        if self.sequence_id:
            task = asyncio.get_running_loop().create_task(self._send_end(self.endpoint, self.sequence_id))
            self._pending_ends.add(task)
            task.add_done_callback(self._pending_ends.discard)
        self._started = False
        self.restarts += 1

    async def _send_end(self, endpoint: Endpoint, sequence_id: int) -> None:
        try:
            await self.pool.infer(
                endpoint,
                self.model,
                end_of_sequence_inputs(),
                sequence_id=sequence_id,
                sequence_end=True,
                timeout_s=min(END_TIMEOUT_S, self.pool.infer_timeout_s),
            )
        except TritonError as exc:
            log.debug("ending sequence %d: %s", sequence_id, exc)

    async def end(self) -> None:
        """On disconnect: end the live sequence and wait for background ends (each bounded)."""
        if self._started:
            self._started = False
            await self._send_end(self.endpoint, self.sequence_id)
        if self._pending_ends:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._pending_ends, return_exceptions=True)
