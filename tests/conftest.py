"""Real servers for the tests: one tritonserver and one frontends process per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import FrontendServer, TritonServer, launch_frontends, launch_triton


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    server = launch_triton(tmp_path_factory.mktemp("triton"))
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def frontend_server(triton_server: TritonServer) -> Iterator[FrontendServer]:
    server = launch_frontends(triton_server)
    yield server
    server.server.stop()
