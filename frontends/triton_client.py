"""The frontends' only way to Triton: one gRPC aio client per endpoint, shared by every session.

A gRPC channel multiplexes any number of concurrent calls, so one client per endpoint per process
is both enough and cheapest. Every call carries a client-side deadline (server.infer_timeout_s for
inferences, a short one for health probes) so a stuck server turns into an error message instead
of a hung session. Errors are reduced to three kinds a session can act on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tritonclient.grpc import InferInput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from frontends.routing import rendezvous
from frontends.triton_inputs import IMAGE_OUTPUT, requested_outputs

log = logging.getLogger(__name__)

ErrorKind = Literal["triton_unavailable", "triton_timeout", "model_error"]
PROBE_TIMEOUT_S = 2.0
STUB_FAILURE = "Stub process"
"""Start of Triton's error for a Python-backend model whose stub process died ("... is not healthy")."""
STUB_FAILURE_HOLD_S = 60.0


class TritonError(Exception):
    """A failed Triton call; `kind` says whether retrying later can help.

    `refused` marks a request the model turned down as invalid (INVALID_ARGUMENT): nothing ran,
    so a realtime sequence's state is intact and the sequence can go on.
    """

    def __init__(self, kind: ErrorKind, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.refused = refused


def _translate(exc: InferenceServerException, url: str, what: str) -> TritonError:
    status = str(exc.status() or "")
    detail = exc.message() or str(exc)
    if "UNAVAILABLE" in status:
        return TritonError(
            "triton_unavailable", f"Triton at {url} is unreachable ({what}); will retry on the next frame"
        )
    if "DEADLINE_EXCEEDED" in status:
        return TritonError("triton_timeout", f"Triton at {url} did not answer in time ({what})")
    # Triton itself answers INVALID_ARGUMENT for a sequence it does not know (no START): that is
    # not the model refusing a parameter, and the sequence must restart.
    unknown_sequence = "START" in detail and "sequence" in detail
    refused = "INVALID_ARGUMENT" in status and not unknown_sequence
    return TritonError("model_error", f"{what} failed: {detail}", refused=refused)


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    client: InferenceServerClient


class TritonPool:
    """The clients of every configured endpoint, which of them are healthy, and who goes where.

    An endpoint is healthy while its server answers and every served model is ready there; the
    app's health task probes each `triton.health_interval_s`, and a call that finds a server
    unreachable marks it down at once, so new sessions avoid it before the next probe.
    """

    def __init__(self, urls: Sequence[str], infer_timeout_s: float) -> None:
        self.endpoints = [Endpoint(url, InferenceServerClient(url)) for url in urls]
        self.infer_timeout_s = infer_timeout_s
        self._by_url = {endpoint.url: endpoint for endpoint in self.endpoints}
        self.healthy: set[str] = {endpoint.url for endpoint in self.endpoints}
        self._stub_failed: dict[tuple[str, str], float] = {}
        """(url, model) -> when a call found the model's stub process dead (see readiness)."""

    def pick(self, key: str) -> Endpoint:
        """The endpoint for `key` (a user_id) among the healthy ones; see frontends/routing.py."""
        candidates = [url for url in self._by_url if url in self.healthy] or list(self._by_url)
        return self._by_url[rendezvous(key, candidates)]

    def mark_down(self, url: str) -> None:
        if url in self.healthy:
            log.warning("Triton at %s is unhealthy: new sessions go elsewhere", url)
        self.healthy.discard(url)

    async def refresh_health(self, models: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Probe every endpoint and update `healthy`; returns the readiness report."""
        report = await self.readiness(models)
        for url, entry in report.items():
            up = entry["reachable"] and all(entry["models"].values())
            if up and url not in self.healthy:
                log.info("Triton at %s is healthy again", url)
                self.healthy.add(url)
            elif not up:
                self.mark_down(url)
        return report

    async def close(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.client.close()

    async def infer(
        self,
        endpoint: Endpoint,
        model: str,
        inputs: list[InferInput],
        *,
        sequence_id: int = 0,
        sequence_start: bool = False,
        sequence_end: bool = False,
        timeout_s: float | None = None,
    ) -> bytes | None:
        """Run one request; return the IMAGE output's bytes (None when the model sent none)."""
        try:
            result = await endpoint.client.infer(
                model,
                inputs,
                outputs=requested_outputs(),
                sequence_id=sequence_id,
                sequence_start=sequence_start,
                sequence_end=sequence_end,
                client_timeout=timeout_s or self.infer_timeout_s,
            )
        except InferenceServerException as exc:
            error = _translate(exc, endpoint.url, f"inference on {model}")
            if error.kind == "triton_unavailable":
                self.mark_down(endpoint.url)
            elif STUB_FAILURE in str(error):
                log.warning("%s on %s lost its stub process; it is unready until reloaded", model, endpoint.url)
                self._stub_failed[(endpoint.url, model)] = time.monotonic()
                self.mark_down(endpoint.url)
            raise error from None
        self._stub_failed.pop((endpoint.url, model), None)
        output = result.as_numpy(IMAGE_OUTPUT)
        if output is None or output.size == 0:
            return None
        return bytes(output.reshape(-1)[0])

    async def model_config(self, model: str) -> dict[str, Any]:
        """The model's config as JSON, from the first endpoint that answers."""
        failure: TritonError | None = None
        for endpoint in self.endpoints:
            try:
                answer = await endpoint.client.get_model_config(model, as_json=True, client_timeout=PROBE_TIMEOUT_S)
            except InferenceServerException as exc:
                failure = _translate(exc, endpoint.url, f"reading the config of {model}")
                continue
            return answer.get("config", answer)
        assert failure is not None
        raise failure

    async def readiness(self, models: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per endpoint: reachable or not, and each model's readiness.

        Triton 2.51 still calls a model ready after its stub process died, so a model a call found
        in that state counts as unready here until Triton itself reports it unready (the reload has
        begun; from then on its readiness is followed), a call succeeds, or STUB_FAILURE_HOLD_S pass.
        """
        report: dict[str, dict[str, Any]] = {}
        for endpoint in self.endpoints:
            entry: dict[str, Any] = {"reachable": True, "models": {}}
            try:
                await endpoint.client.is_server_live(client_timeout=PROBE_TIMEOUT_S)
                for model in models:
                    ready = await endpoint.client.is_model_ready(model, client_timeout=PROBE_TIMEOUT_S)
                    lost = self._stub_lost(endpoint.url, model, ready)
                    entry["models"][model] = ready and not lost
            except InferenceServerException as exc:
                entry = {"reachable": False, "error": exc.message() or str(exc), "models": dict.fromkeys(models, False)}
            report[endpoint.url] = entry
        return report

    def _stub_lost(self, url: str, model: str, ready: bool) -> bool:
        since = self._stub_failed.get((url, model))
        if since is None:
            return False
        if not ready or time.monotonic() - since > STUB_FAILURE_HOLD_S:
            del self._stub_failed[(url, model)]
            return False
        return True


def model_facts_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Parse the `model_facts` parameter (a JSON string the launcher renders into the config)."""
    raw = config.get("parameters", {}).get("model_facts", {}).get("string_value")
    if not raw:
        raise TritonError("model_error", f"model {config.get('name')!r} has no model_facts parameter in its config")
    try:
        facts = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TritonError("model_error", f"model {config.get('name')!r}: model_facts is not JSON: {exc}") from None
    if not isinstance(facts, dict) or "info" not in facts or "input_params" not in facts:
        raise TritonError("model_error", f"model {config.get('name')!r}: model_facts lacks info or input_params")
    return facts
