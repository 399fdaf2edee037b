"""A frontends process a test may stop and start again, and reading the frontends' /metrics."""

from __future__ import annotations

import re
import sys
import urllib.request
from dataclasses import dataclass, field

from tests.servers import ServerProcess, TritonServer, start_process, wait_until_healthy


def metric(base_url: str, name: str, mode: str) -> float:
    """One sample labelled with `mode` from the frontends' /metrics, 0 when absent."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(rf'^{re.escape(name)}\{{[^}}]*mode="{mode}"[^}}]*\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@dataclass
class OwnFrontend:
    """`python -m frontends` on a fixed port, so that a page can find it again after a restart."""

    triton: TritonServer
    port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    server: ServerProcess | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        env = {**self.triton.env, "SD__SERVER__PORT": str(self.port), **self.extra_env}
        args = [sys.executable, "-m", "frontends", "--config", str(self.triton.config_file)]
        self.server = start_process(args, env)
        wait_until_healthy(self.server, self.base_url, timeout)

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops it: open sessions are closed with 1001."""
        if self.server is not None:
            self.server.stop()
            self.server = None
