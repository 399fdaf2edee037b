"""Prompt embeddings by text, least recently used dropped first: a prompt is encoded once, not per frame.

A blend of N prompts costs N text-encoder calls when it first appears and none after, whatever
the weights, and a realtime frame whose parameters did not change costs none at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch

Encoder = Callable[[str], torch.Tensor]


class PromptCache:
    """Text -> its conditional embedding [1, tokens, dim]; `encoder_calls` counts the misses."""

    def __init__(self, encode: Encoder, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the prompt cache holds at least one prompt")
        self._encode = encode
        self._capacity = capacity
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.encoder_calls = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, text: str) -> torch.Tensor:
        cached = self._items.get(text)
        if cached is not None:
            self._items.move_to_end(text)
            return cached
        embedding = self._encode(text)
        self.encoder_calls += 1
        self._items[text] = embedding
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return embedding
