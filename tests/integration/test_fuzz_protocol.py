"""A short fuzz run of the wire protocol (sdtools.fuzz) against a real frontends process
and the session's tritonserver: random and mutated frames and control messages; the server must
answer every one, keep every session open, stay up, and leave a canary session unaffected.

The long run is the script itself: `.venv/bin/python scripts/fuzz_protocol.py --examples 2000`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sdtools.fuzz import FUZZ_OVERRIDES, fuzz
from tests.servers import FrontendServer, TritonServer, launch_frontends

pytestmark = pytest.mark.triton
EXAMPLES = 60


@pytest.fixture(scope="module")
def fuzzed_frontend(triton_server: TritonServer) -> Iterator[FrontendServer]:
    """Its own process: if fuzzing kills it, the other tests' frontends are not the casualty."""
    server = launch_frontends(triton_server, FUZZ_OVERRIDES)
    yield server
    server.server.stop()


def test_random_and_mutated_messages_are_all_answered(fuzzed_frontend: FrontendServer):
    process = fuzzed_frontend.server.process
    stats = fuzz(
        fuzzed_frontend.base_url, EXAMPLES, seed_value=1, answer_timeout=120, alive=lambda: process.poll() is None
    )
    assert stats.examples >= EXAMPLES
    assert stats.messages["binary"] > 0 and stats.messages["text"] > 0
    assert stats.outcomes["part"] > 0, "some frames went all the way through Triton"
    assert stats.outcomes["error"] > 0
    assert stats.canary_frames >= EXAMPLES // 10
    assert process.poll() is None
    tracebacks = [n for n, line in enumerate(fuzzed_frontend.server.lines) if "Traceback" in line]
    assert not tracebacks, "\n".join(fuzzed_frontend.server.lines[tracebacks[0] - 5 : tracebacks[0] + 30])
