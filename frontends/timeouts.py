"""The rule that keeps no sequence state behind, checked against the Triton the frontends talk to.

Realtime stream-batch state is freed by END (a session closes, the frontends drain on SIGTERM) or,
when no END comes (a frontend crashed, the network broke), by Triton's sequence batcher and the
model itself after `realtime.pipeline.sequence_idle_timeout_s` without a request. So the state's
longest life is that one value, whatever the frontends' own timeouts are.

The frontends must agree with Triton on it: they start a fresh sequence once theirs has been
silent for 0.8 of it (frontends/triton_sequence.py), before Triton forgets it. If Triton was launched with
a shorter value than the frontends read, a frame after a pause between the two finds its sequence
gone and is answered with an error. At start the frontends read Triton's value from the realtime
model's config (`sequence_batching.max_sequence_idle_microseconds`, rendered by the launcher from
the same key) and log a warning naming both when they differ.

`server.idle_timeout_s` needs no relation to it: a session idle that long is closed and its END
sent; a quieter sequence inside a live session is freed by the model and restarted on the next frame.

`server.infer_timeout_s` does: a frame may wait in Triton's queue that long, and if the model frees
its sequence meanwhile (idle by the model's clock, which cannot see the queue) the frame fails and
the sequence restarts. So the idle time should exceed the inference timeout (defaults 60 s and
30 s); the frontends warn at start when it does not.
"""

from __future__ import annotations

import logging

from frontends.triton_client import TritonError, TritonPool
from sdconfig import Settings

log = logging.getLogger(__name__)


def idle_mismatch(settings: Settings, model_config: dict) -> str | None:
    """A warning when Triton's sequence idle time differs from this config's, else None."""
    raw = model_config.get("sequence_batching", {}).get("max_sequence_idle_microseconds")
    if raw is None:
        return None
    triton_s = int(raw) / 1_000_000
    ours = settings.realtime.pipeline.sequence_idle_timeout_s
    if abs(triton_s - ours) < 1e-3:
        return None
    return (
        f"Triton forgets an idle realtime sequence after {triton_s:g} s but this config says "
        f"realtime.pipeline.sequence_idle_timeout_s: {ours:g}; start both from the same YAML "
        + ("(frames after a pause may be answered with an error)" if triton_s < ours else "(harmless, wasteful)")
    )


def idle_below_infer_timeout(settings: Settings) -> str | None:
    """A warning when a queued frame could outlive its sequence's state, else None."""
    idle, infer = settings.realtime.pipeline.sequence_idle_timeout_s, settings.server.infer_timeout_s
    if idle > infer:
        return None
    return (
        f"realtime.pipeline.sequence_idle_timeout_s ({idle:g} s) is not above server.infer_timeout_s ({infer:g} s): "
        "under load a frame waiting in Triton's queue can find its sequence freed and fail"
    )


async def check_sequence_idle(pool: TritonPool, settings: Settings) -> None:
    """Log what disagrees, if anything; Triton not answering yet is not an error here."""
    rule = idle_below_infer_timeout(settings)
    if rule:
        log.warning("%s", rule)
    try:
        config = await pool.model_config(settings.triton.realtime_model)
    except TritonError as exc:
        log.info("sequence idle time not checked against Triton: %s", exc)
        return
    warning = idle_mismatch(settings, config)
    if warning:
        log.warning("%s", warning)
