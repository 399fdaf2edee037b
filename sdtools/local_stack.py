"""Start the whole stack on free loopback ports, the way scripts/run.sh does, for the tools that
test it (sdtools.soak, sdtools.fuzz): scripts/launch_triton.py, then `python -m frontends`
against it. Both read the same YAML plus SD__SECTION__KEY overrides; both are stopped (SIGTERM,
then SIGKILL) when the block ends, whatever happened inside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO_ROOT / "tests" / "config.test.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class LocalStack:
    base_url: str
    """The frontends, http://127.0.0.1:PORT."""
    triton_grpc: str
    triton_http: str
    triton_metrics: str
    frontend_pid: int
    launcher_pid: int
    logs: Path


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(
    condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not come up (see {log}):\n{tail}")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def local_stack(
    logs: Path, config: Path = TEST_CONFIG, overrides: Mapping[str, str] | None = None, ready_timeout_s: float = 600
) -> Iterator[LocalStack]:
    """Triton and the frontends on free ports; `overrides` are SD__SECTION__KEY values for both."""
    logs.mkdir(parents=True, exist_ok=True)
    grpc, http, metrics, web = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        **(overrides or {}),
        "SD_CONFIG": str(config),
        "SD__TRITON__GRPC_PORT": str(grpc),
        "SD__TRITON__HTTP_PORT": str(http),
        "SD__TRITON__METRICS_PORT": str(metrics),
        "SD__TRITON__URLS": f"[127.0.0.1:{grpc}]",
        "SD__TRITON__LOG_FILE": str(logs / "tritonserver.log"),
        "SD__SERVER__PORT": str(web),
        "PYTHONUNBUFFERED": "1",
    }
    launcher_log, frontend_log = logs / "launch_triton.out", logs / "frontends.out"
    with launcher_log.open("wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "scripts/launch_triton.py", "--config", str(config), "--run-dir", str(logs / "run")],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    frontends: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(
            lambda: "\nREADY " in "\n" + launcher_log.read_text(errors="replace"),
            "Triton",
            launcher,
            launcher_log,
            ready_timeout_s,
        )
        with frontend_log.open("wb") as out:
            frontends = subprocess.Popen(
                [sys.executable, "-m", "frontends", "--config", str(config)],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base_url = f"http://127.0.0.1:{web}"
        _wait_for(lambda: _answers(f"{base_url}/readyz"), "the frontends", frontends, frontend_log, 120)
        yield LocalStack(
            base_url=base_url,
            triton_grpc=f"127.0.0.1:{grpc}",
            triton_http=f"127.0.0.1:{http}",
            triton_metrics=f"127.0.0.1:{metrics}",
            frontend_pid=frontends.pid,
            launcher_pid=launcher.pid,
            logs=logs,
        )
    finally:
        if frontends is not None:
            _stop(frontends, 30)
        _stop(launcher, 60)
