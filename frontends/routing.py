"""Which Triton server a user's work goes to.

Rendezvous (highest-random-weight) hashing of the user_id over the healthy endpoints: a user keeps
landing on the same server while it is healthy (its realtime state lives there), users spread
evenly, and when a server leaves only its own users move; when it returns, they move back on their
next new sequence. With no healthy endpoint known (start-up, or all down), every endpoint is a
candidate, so the first call's error says what is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _weight(key: str, candidate: str) -> int:
    digest = hashlib.blake2b(f"{candidate}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(key: str, candidates: Sequence[str]) -> str:
    """The candidate with the highest weight for `key`; stable under adding or removing others."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    return max(candidates, key=lambda candidate: _weight(key, candidate))
