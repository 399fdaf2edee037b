"""The tritonserver process: its command line, its environment, its ports, starting and stopping it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sdlauncher.report import say
from sdlauncher.triton_install import TritonInstall

ADMIN_HEADER = "sd-admin-key"
"""The HTTP header Triton wants on every restricted call (load, unload, index, ...); over gRPC the
metadata key is `triton-grpc-protocol-` followed by it."""
RESTRICTED_APIS = "model-repository,logging,trace,shared-memory"
"""What only the key opens: model load/unload and the index, log and trace settings (verbose logs would
show correlation ids; traces write files), shared-memory regions. Left open, as the frontends and the
tools need them: health, metadata, model config, inference, statistics."""
ADMIN_KEY_ENV = "SD_TRITON_ADMIN_KEY"
"""Where an operator who needs to load or unload models by hand gives the key; else it is random per launch."""
PORT_KEYS = {"grpc": "triton.grpc_port", "http": "triton.http_port", "metrics": "triton.metrics_port"}


@dataclass(frozen=True)
class Endpoints:
    host: str
    grpc_port: int
    http_port: int
    metrics_port: int

    @property
    def client_host(self) -> str:
        """Where a client on this machine connects: a wildcard bind address is reached via loopback."""
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "::", "[::]") else self.host

    def url(self, port: int) -> str:
        host = self.client_host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_command(
    install: TritonInstall,
    *,
    model_repository: Path,
    backend_directory: Path,
    endpoints: Endpoints,
    models: Sequence[str],
    admin_key: str,
    log_verbose: int = 0,
) -> list[str]:
    """tritonserver's argument list: explicit model control so only the named models load.

    Model control, the repository index and the other RESTRICTED_APIS answer only requests that
    carry `admin_key` in the ADMIN_HEADER, over HTTP and gRPC alike: the launcher's watchdog
    reloads models with it, a client that can reach the ports cannot. `--exit-on-error=false` keeps
    the server up when a model fails to load, so the launcher can ask the repository index for that
    model's own reason before stopping it.
    """
    host = endpoints.host
    return [
        str(install.server),
        f"--model-repository={model_repository}",
        f"--backend-directory={backend_directory}",
        "--model-control-mode=explicit",
        *(f"--load-model={name}" for name in models),
        f"--http-restricted-api={RESTRICTED_APIS}:{ADMIN_HEADER}={admin_key}",
        f"--grpc-restricted-protocol={RESTRICTED_APIS}:{ADMIN_HEADER}={admin_key}",
        f"--grpc-address={host}",
        f"--grpc-port={endpoints.grpc_port}",
        f"--http-address={host}",
        f"--http-port={endpoints.http_port}",
        "--allow-metrics=true",
        f"--metrics-address={host}",
        f"--metrics-port={endpoints.metrics_port}",
        f"--log-verbose={log_verbose}",
        "--exit-on-error=false",
    ]


def admin_key(env: Mapping[str, str]) -> str:
    """The operator's key from ADMIN_KEY_ENV, else a fresh random one that only this launcher holds
    (with the watchdog off it is used for nothing after start-up, so nobody can load or unload)."""
    given = env.get(ADMIN_KEY_ENV, "").strip()
    if given and not all(c.isalnum() or c in "-_." for c in given):
        raise ValueError(f"{ADMIN_KEY_ENV} may hold only letters, digits, '-', '_' and '.' (it goes into a header)")
    return given or secrets.token_urlsafe(24)


def _prepend(paths: Sequence[Path | str], existing: str | None) -> str:
    items = [str(p) for p in paths]
    if existing:
        items.append(existing)
    return os.pathsep.join(items)


def server_environment(base: Mapping[str, str], install: TritonInstall, *, config_file: Path) -> dict[str, str]:
    """The environment tritonserver (and through it each model's stub) runs with.

    The stub takes its Python environment from the first `python3` on PATH: the launcher's own,
    where the project is installed (`pip install -e .`), so PYTHONPATH stays as the operator set it.
    """
    env = dict(base)
    env["SD_CONFIG"] = str(config_file.resolve())
    if install.bin_dirs:
        env["PATH"] = _prepend(install.bin_dirs, base.get("PATH"))
    if install.lib_dirs:
        env["LD_LIBRARY_PATH"] = _prepend(install.lib_dirs, base.get("LD_LIBRARY_PATH"))
    return env


def cpu_threads(env: Mapping[str, str], device: str, stubs: int, configured: int = 0) -> dict[str, str]:
    """OMP_NUM_THREADS for the stubs on a CPU-only machine: triton.cpu_threads_per_model where set,
    else the operator's OMP_NUM_THREADS, else the cores divided among the models.

    Each model runs in its own stub process, and torch gives each one thread per core. With both
    models busy, the cores are oversubscribed and OpenMP's spinning threads starve each other: on 2
    cores, 26 realtime plus 26 canvas sessions got 2.9 realtime results a second and inference
    timeouts; with one thread per stub, 34 a second and none (sdtools/soak.py). A machine that
    serves one mode at a time does better with every core per model (docs/benchmarks.md).
    """
    if device != "cpu":
        return {}
    if configured:
        return {"OMP_NUM_THREADS": str(configured)}
    if "OMP_NUM_THREADS" in env:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, stubs)))}


# --------------------------------------------------------------------------- ports


def port_problem(host: str, port: int) -> str | None:
    """Why `port` cannot be bound on `host` (tritonserver binds with SO_REUSEADDR too), or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def check_ports(endpoints: Endpoints) -> list[str]:
    ports = {"grpc": endpoints.grpc_port, "http": endpoints.http_port, "metrics": endpoints.metrics_port}
    problems = []
    if len(set(ports.values())) < len(ports):
        problems.append(f"the gRPC, HTTP and metrics ports must differ, got {ports}")
    for kind, port in ports.items():
        why = port_problem(endpoints.host, port)
        if why:
            env = "SD__" + PORT_KEYS[kind].upper().replace(".", "__")
            problems.append(
                f"{kind} port {port} on {endpoints.host} is not free ({why}): choose another with "
                f"--{kind}-port, {PORT_KEYS[kind]} in the YAML, or {env}"
            )
    return problems


# --------------------------------------------------------------------------- the process


def _die_with_parent() -> None:
    """Runs in the child before exec: if the launcher is killed outright, tritonserver gets SIGTERM."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_server(command: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a terminal's Ctrl-C reaches the launcher only; it stops the server in order
        preexec_fn=_die_with_parent,
    )


def stop_server(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    """SIGTERM (tritonserver finishes in-flight requests and unloads), then SIGKILL for the group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            say(f"tritonserver did not stop within {timeout_s:.0f} s; killing it")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stubs left behind by a killed server
    return proc.wait()
