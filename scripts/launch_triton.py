#!/usr/bin/env python3
"""Start tritonserver with both StreamDiffusion models, wait until they are ready, and keep it running.

    .venv/bin/python scripts/launch_triton.py [--config FILE] [--grpc-port N --http-port N --metrics-port N]
                                              [--log-file F] [--run-dir DIR] [--check]

It assembles run/backends (the Python backend plus the shared model.py), renders
run/model_repository from model_repository/ and the YAML file, starts tritonserver with explicit
model control so only the two configured models load, and prints progress until both are ready.
Then it prints one line `READY grpc=HOST:PORT http=HOST:PORT metrics=HOST:PORT` (for scripts
that wait on it) and stays in the foreground until Ctrl-C or SIGTERM, which stop the server.
The server's own output goes to `triton.log_file`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
for _root in (REPO_ROOT / "backends" / "streamdiffusion", REPO_ROOT):
    if str(_root) not in sys.path:
        sys.path.insert(0, str(_root))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sysconfig  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from typing import IO  # noqa: E402

from sdbackend.repository import (  # noqa: E402
    BACKEND_NAME,
    Endpoints,
    TritonInstall,
    TritonNotFound,
    assemble_backends,
    backend_layout,
    find_pytriton_dir,
    locate_triton,
    resolve_device,
    server_command,
    server_environment,
    write_repository,
)
from sdbackend.watchdog import StubWatchdog  # noqa: E402
from sdconfig import MODES, ConfigError, Settings, config_path, load_settings  # noqa: E402

PROGRESS_EVERY_S = 5.0
POLL_EVERY_S = 0.5
LOG_TAIL_LINES = 40
FAILED_STATES = ("UNAVAILABLE", "UNKNOWN")
"""Repository-index states that will not turn READY on their own (UNKNOWN: not in the index at all)."""
PORT_KEYS = {"grpc": "triton.grpc_port", "http": "triton.http_port", "metrics": "triton.metrics_port"}


class LaunchError(RuntimeError):
    """The launch cannot go on; the message says what went wrong and what to change."""


class Interrupted(LaunchError):
    """Ctrl-C or SIGTERM arrived before the models were ready."""


def say(message: str) -> None:
    print(f"[launch] {message}", flush=True)


# --------------------------------------------------------------------------- arguments and settings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="YAML file (default: $SD_CONFIG or config.yaml)")
    parser.add_argument("--grpc-port", type=int, help="overrides triton.grpc_port")
    parser.add_argument("--http-port", type=int, help="overrides triton.http_port")
    parser.add_argument("--metrics-port", type=int, help="overrides triton.metrics_port")
    parser.add_argument("--log-file", type=Path, help="overrides triton.log_file (relative to the repository)")
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=REPO_ROOT / "run",
        help="where run/backends and run/model_repository are written (default: %(default)s)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        help="seconds tritonserver gets to stop after SIGTERM before it is killed (default: %(default)s)",
    )
    parser.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose level")
    parser.add_argument("--check", action="store_true", help="prepare run/, print what would run, and exit")
    return parser.parse_args(argv)


def endpoints_from(settings: Settings, args: argparse.Namespace) -> Endpoints:
    triton = settings.triton
    return Endpoints(
        host=triton.host,
        grpc_port=args.grpc_port or triton.grpc_port,
        http_port=args.http_port or triton.http_port,
        metrics_port=args.metrics_port or triton.metrics_port,
    )


def log_path(settings: Settings, args: argparse.Namespace) -> Path:
    path = args.log_file or Path(settings.triton.log_file)
    return path if path.is_absolute() else REPO_ROOT / path


# --------------------------------------------------------------------------- machine checks


def gpu_present() -> bool:
    """Whether `nvidia-smi -L` lists a GPU; torch is not imported here (it is slow and maybe absent)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.startswith("GPU ") for line in out.splitlines())


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


def cpu_threads(env: Mapping[str, str], device: str, stubs: int, configured: int = 0) -> dict[str, str]:
    """OMP_NUM_THREADS for the stubs on a CPU-only machine: triton.cpu_threads_per_model where set,
    else the operator's OMP_NUM_THREADS, else the cores divided among the models.

    Each model runs in its own stub process, and torch gives each one thread per core. With both
    models busy, the cores are oversubscribed and OpenMP's spinning threads starve each other: on 2
    cores, 26 realtime plus 26 canvas sessions got 2.9 realtime results a second and inference
    timeouts; with one thread per stub, 34 a second and none (scripts/soak_test.py). A machine that
    serves one mode at a time does better with every core per model (docs/benchmarks.md).
    """
    if device != "cpu":
        return {}
    if configured:
        return {"OMP_NUM_THREADS": str(configured)}
    if "OMP_NUM_THREADS" in env:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, stubs)))}


def locate_for_this_python() -> TritonInstall:
    """tritonserver with the stub for the running Python, whose bin/ and libpython folder it needs."""
    libdir = sysconfig.get_config_var("LIBDIR")
    return locate_triton(
        os.environ,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        python_bin=Path(sys.executable).parent,
        python_libdir=Path(libdir) if libdir else None,
        pytriton_dir=find_pytriton_dir(),
    )


# --------------------------------------------------------------------------- model states


_LOADING = re.compile(r"loading: ([\w.-]+):\d+")
_LOADED = re.compile(r"successfully loaded '([\w.-]+)'")
_FAILED = re.compile(r"failed to load '([\w.-]+)'[^:]*:\s*(.*?)\"?$")


def states_from_log(lines: Sequence[str], models: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Model states and failure reasons as far as the server's log tells, before its endpoints are up."""
    states = dict.fromkeys(models, "STARTING")
    reasons: dict[str, str] = {}
    for line in lines:
        for pattern, state in ((_LOADING, "LOADING"), (_LOADED, "READY"), (_FAILED, "UNAVAILABLE")):
            match = pattern.search(line)
            if match and match.group(1) in states:
                states[match.group(1)] = state
                if state == "UNAVAILABLE":
                    reasons[match.group(1)] = match.group(2).strip()
    return states, reasons


def http_json(url: str, method: str = "GET", body: bytes | None = None) -> object | None:
    """The decoded JSON answer, {} for an empty 200, None when the server does not answer yet."""
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None
    return json.loads(payload) if payload else {}


def states_from_server(http_url: str, models: Sequence[str]) -> tuple[dict[str, str], dict[str, str]] | None:
    """Model states and reasons from the repository index, or None while the HTTP endpoint is down."""
    index = http_json(f"http://{http_url}/v2/repository/index", method="POST", body=b"{}")
    if not isinstance(index, list):
        return None
    states = dict.fromkeys(models, "UNKNOWN")
    reasons: dict[str, str] = {}
    for entry in index:
        name = entry.get("name")
        if name in states:
            states[name] = entry.get("state") or "UNKNOWN"
            if entry.get("reason"):
                reasons[name] = entry["reason"]
    for name in models:
        if states[name] == "READY" and http_json(f"http://{http_url}/v2/models/{name}/ready") is None:
            states[name] = "NOT READY"
    return states, reasons


class ServerLog:
    """This run's part of the log file: the file is appended to, earlier runs stay above `start`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size if path.exists() else 0

    def lines(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.start)
                return f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return []

    def tail(self, models: Sequence[str] = ()) -> str:
        """The last lines, plus earlier error lines that name one of the models."""
        lines = self.lines()
        tail = lines[-LOG_TAIL_LINES:]
        earlier = [
            line for line in lines[:-LOG_TAIL_LINES] if line.startswith("E") and any(name in line for name in models)
        ]
        return "\n".join(f"    {line}" for line in [*earlier[-10:], *tail])


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


def wait_ready(
    proc: subprocess.Popen[bytes],
    *,
    endpoints: Endpoints,
    models: Sequence[str],
    log: ServerLog,
    timeout_s: float,
    stop: threading.Event,
) -> None:
    """Block until every model is READY; raise LaunchError with the model's own reason otherwise."""
    http_url = endpoints.url(endpoints.http_port)
    started = time.monotonic()
    last_progress = started
    while True:
        if stop.is_set():
            raise Interrupted("interrupted while the models were loading")
        code = proc.poll()
        if code is not None:
            _, reasons = states_from_log(log.lines(), models)
            why = "".join(f"\n  {name}: {reason}" for name, reason in reasons.items())
            raise LaunchError(
                f"tritonserver exited with code {code} before the models were ready{why}\n"
                f"  last lines of {log.path}:\n{log.tail(models)}"
            )
        from_server = states_from_server(http_url, models)
        states, reasons = from_server or states_from_log(log.lines(), models)
        if all(state == "READY" for state in states.values()):
            return
        if from_server is not None and any(s in FAILED_STATES for s in states.values()):
            failed = {name: reasons.get(name, "no reason given") for name, s in states.items() if s in FAILED_STATES}
            why = "".join(f"\n  {name} ({states[name]}): {reason}" for name, reason in failed.items())
            raise LaunchError(f"a model failed to load:{why}\n  see {log.path} for the full log")
        elapsed = time.monotonic() - started
        if elapsed > timeout_s:
            raise LaunchError(
                f"models not ready after {timeout_s:.0f} s (triton.ready_timeout_s): {states}\n"
                f"  last lines of {log.path}:\n{log.tail(models)}"
            )
        if time.monotonic() - last_progress >= PROGRESS_EVERY_S:
            last_progress = time.monotonic()
            waiting = ", ".join(f"{name}: {state}" for name, state in states.items() if state != "READY")
            say(f"waiting for {waiting} ({elapsed:.0f} s)")
        stop.wait(POLL_EVERY_S)


def serve(
    proc: subprocess.Popen[bytes], stop: threading.Event, log: ServerLog, watchdog: StubWatchdog | None, every_s: float
) -> None:
    """Stay in the foreground until asked to stop; a server that dies on its own is an error.

    Meanwhile the watchdog (triton.watchdog_interval_s) reloads a model whose stub process died.
    """
    if watchdog is not None:
        watchdog.remember()
    next_check = time.monotonic() + every_s
    while not stop.wait(1.0):
        code = proc.poll()
        if code is not None:
            raise LaunchError(f"tritonserver exited on its own with code {code}\n{log.tail()}")
        if watchdog is not None and time.monotonic() >= next_check:
            watchdog.check()
            next_check = time.monotonic() + every_s


# --------------------------------------------------------------------------- main


def prepare(settings: Settings, config_file: Path, run_dir: Path) -> tuple[TritonInstall, Path, Path, str]:
    """Locate tritonserver, assemble run/backends and render run/model_repository."""
    install = locate_for_this_python()
    backend_source = REPO_ROOT / "backends" / BACKEND_NAME
    if not (backend_source / "model.py").is_file():
        raise LaunchError(f"{backend_source / 'model.py'} is missing: the repository checkout is incomplete")
    backends = assemble_backends(run_dir / "backends", backend_layout(install, backend_source))
    device = resolve_device(settings.model.device, gpu_present() if settings.model.device == "auto" else False)
    repository = run_dir / "model_repository"
    rendered = write_repository(
        REPO_ROOT / "model_repository", repository, settings=settings, config_file=config_file, gpu=device == "cuda"
    )
    names = {model.name for model in rendered}
    missing = [settings.model_name(mode) for mode in MODES if settings.model_name(mode) not in names]
    if missing:
        raise LaunchError(
            f"{REPO_ROOT / 'model_repository'} has no model for {missing}: each config.pbtxt names its variant in "
            f'parameters {{ key: "variant" ... }}'
        )
    return install, backends, repository, device


def launch(args: argparse.Namespace) -> int:
    config_file = (args.config or config_path()).resolve()
    settings = load_settings(config_file)
    endpoints = endpoints_from(settings, args)
    models = [settings.model_name(mode) for mode in MODES]
    log_file = log_path(settings, args)
    run_dir = args.run_dir.resolve()

    install, backends, repository, device = prepare(settings, config_file, run_dir)
    command = server_command(
        install,
        model_repository=repository,
        backend_directory=backends,
        endpoints=endpoints,
        models=models,
        log_verbose=args.log_verbose,
    )
    env = server_environment(os.environ, install, repo_root=REPO_ROOT, config_file=config_file)
    env.update(cpu_threads(os.environ, device, len(models), settings.triton.cpu_threads_per_model))
    problems = check_ports(endpoints)

    say(f"config {config_file}; models on {device}; tritonserver from {install.origin}")
    if args.check:
        for key in ("SD_CONFIG", "PYTHONPATH", "PATH", "LD_LIBRARY_PATH"):
            if env.get(key) != os.environ.get(key):
                print(f"{key}={shlex.quote(env[key])} \\")
        print(shlex.join(command))
        print(f"# rendered {repository} and {backends}; log would go to {log_file}")
        for problem in problems:
            print(f"# {problem}")
        return 0
    if problems:
        raise LaunchError("\n  ".join(["cannot start tritonserver:", *problems]))

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    log_file.parent.mkdir(parents=True, exist_ok=True)
    log = ServerLog(log_file)
    started = time.monotonic()
    with log_file.open("ab") as log_stream:
        say(f"starting tritonserver (log: {log_file})")
        proc = start_server(command, env, log_stream)
        try:
            wait_ready(
                proc,
                endpoints=endpoints,
                models=models,
                log=log,
                timeout_s=settings.triton.ready_timeout_s,
                stop=stop,
            )
            say(f"both models ready after {time.monotonic() - started:.1f} s: {', '.join(models)}")
            say(f"gRPC     {endpoints.url(endpoints.grpc_port)}")
            say(f"HTTP     http://{endpoints.url(endpoints.http_port)}")
            say(f"metrics  http://{endpoints.url(endpoints.metrics_port)}/metrics")
            print(
                f"READY grpc={endpoints.url(endpoints.grpc_port)} http={endpoints.url(endpoints.http_port)} "
                f"metrics={endpoints.url(endpoints.metrics_port)}",
                flush=True,
            )
            say("serving; Ctrl-C stops it")
            interval = settings.triton.watchdog_interval_s
            watchdog = (
                StubWatchdog(proc.pid, endpoints.url(endpoints.http_port), models, settings.triton.ready_timeout_s, say)
                if interval > 0
                else None
            )
            serve(proc, stop, log, watchdog, interval)
        except LaunchError:
            stop_server(proc, args.stop_timeout)
            raise
        say("stopping tritonserver")
        code = stop_server(proc, args.stop_timeout)
        say(f"tritonserver stopped (exit code {code})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return launch(args)
    except (ConfigError, TritonNotFound, LaunchError, ValueError) as exc:
        print(f"[launch] error: {exc}", file=sys.stderr, flush=True)
        return 130 if isinstance(exc, Interrupted) else 1


if __name__ == "__main__":
    sys.exit(main())
