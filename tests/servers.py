"""Starting the real servers the way an operator does (scripts/launch_triton.py and
`python -m frontends`), on free loopback ports, with tests/config.test.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sdconfig import Settings, load_settings
from sdtools.local_stack import free_port

ROOT = Path(__file__).resolve().parent.parent
TEST_CONFIG = ROOT / "tests" / "config.test.yaml"


@dataclass
class ServerProcess:
    """A child process whose output is kept (and shown when a test needs it)."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines[-80:])

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_process(args: list[str], env: dict[str, str]) -> ServerProcess:
    process = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    server = ServerProcess(process)
    threading.Thread(target=server.pump, daemon=True).start()
    return server


@dataclass
class TritonServer:
    grpc_url: str
    http_url: str
    metrics_url: str
    config_file: Path
    settings: Settings
    env: dict[str, str]
    server: ServerProcess
    log_file: Path


def launch_triton(
    tmp: Path,
    config_file: Path = TEST_CONFIG,
    timeout: float = 420,
    ports: tuple[int, int, int] | None = None,
    extra_env: dict[str, str] | None = None,
) -> TritonServer:
    """Start the launcher and wait for its READY line.

    `ports` (gRPC, HTTP, metrics) start it where an earlier one ran, as a restart does.
    """
    grpc, http, metrics = ports or (free_port(), free_port(), free_port())
    log_file = tmp / "tritonserver.log"
    overrides = {
        "SD_CONFIG": str(config_file),
        "SD__TRITON__GRPC_PORT": str(grpc),
        "SD__TRITON__HTTP_PORT": str(http),
        "SD__TRITON__METRICS_PORT": str(metrics),
        "SD__TRITON__URLS": f"[127.0.0.1:{grpc}]",
        "SD__TRITON__LOG_FILE": str(log_file),
    }
    env = {**os.environ, **overrides, **(extra_env or {}), "PYTHONUNBUFFERED": "1"}
    server = start_process(
        [sys.executable, "scripts/launch_triton.py", "--config", str(config_file), "--run-dir", str(tmp / "run")], env
    )
    deadline = time.monotonic() + timeout
    while not any(line.startswith("READY") for line in server.lines):
        if server.process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            log = log_file.read_text()[-4000:] if log_file.exists() else ""
            pytest.fail(f"tritonserver did not become ready:\n{server.output()}\n--- server log ---\n{log}")
        time.sleep(0.2)
    return TritonServer(
        grpc_url=f"127.0.0.1:{grpc}",
        http_url=f"127.0.0.1:{http}",
        metrics_url=f"127.0.0.1:{metrics}",
        config_file=config_file,
        settings=load_settings(config_file, env=env),
        env=env,
        server=server,
        log_file=log_file,
    )


@dataclass
class FrontendServer:
    base_url: str
    port: int
    triton: TritonServer
    server: ServerProcess


def launch_frontends(
    triton: TritonServer, extra_env: dict[str, str] | None = None, timeout: float = 60
) -> FrontendServer:
    """Start `python -m frontends` against `triton` and wait for /healthz."""
    port = free_port()
    env = {**triton.env, "SD__SERVER__PORT": str(port), **(extra_env or {})}
    server = start_process([sys.executable, "-m", "frontends", "--config", str(triton.config_file)], env)
    base_url = f"http://127.0.0.1:{port}"
    wait_until_healthy(server, base_url, timeout)
    return FrontendServer(base_url=base_url, port=port, triton=triton, server=server)


def wait_until_healthy(server: ServerProcess, base_url: str, timeout: float) -> None:
    """Until the frontends at `base_url` answer /healthz; a process that exits or a timeout fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2):
                return
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"frontends did not start:\n{server.output()}")
            time.sleep(0.2)
