"""The served models' facts (info + input_params schema), read from Triton once and cached.

Triton is the one source: the launcher renders the facts from config.yaml into each model's config,
so `/settings` and the frontends' validation cannot drift from what the model enforces. A failed
read is not cached; the next caller tries again, which is how a frontend started before Triton
recovers by itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from frontends.triton_client import TritonPool, model_facts_from_config


@dataclass(frozen=True, slots=True)
class ModelFacts:
    info: dict[str, Any]
    input_params: dict[str, Any]


class FactsCache:
    def __init__(self, pool: TritonPool, models: dict[str, str]) -> None:
        self._pool = pool
        self._models = models
        self._facts: dict[str, ModelFacts] = {}
        self._locks = {mode: asyncio.Lock() for mode in models}

    def cached(self, mode: str) -> ModelFacts | None:
        return self._facts.get(mode)

    async def get(self, mode: str) -> ModelFacts:
        """The mode's facts; raises TritonError while Triton cannot tell them."""
        facts = self._facts.get(mode)
        if facts is not None:
            return facts
        async with self._locks[mode]:  # concurrent sessions share one fetch
            facts = self._facts.get(mode)
            if facts is None:
                raw = model_facts_from_config(await self._pool.model_config(self._models[mode]))
                facts = ModelFacts(info=raw["info"], input_params=raw["input_params"])
                self._facts[mode] = facts
        return facts
