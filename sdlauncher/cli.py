"""The launcher's command line: read the flags and the YAML, prepare run/, start tritonserver,
report when both models are ready, and stop it on Ctrl-C or SIGTERM.

Its output is read by scripts and tests: the `READY grpc=... http=... metrics=...` line, the
`[launch]` progress lines, and an exit status of 1 on an error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from sdconfig import MODES, ConfigError, Settings, config_path, load_settings
from sdlauncher.report import Interrupted, LaunchError, say
from sdlauncher.run_dir import REPO_ROOT, prepare
from sdlauncher.server import (
    ADMIN_KEY_ENV,
    Endpoints,
    admin_key,
    check_ports,
    cpu_threads,
    server_command,
    server_environment,
    start_server,
    stop_server,
)
from sdlauncher.supervision import ServerLog, serve, wait_ready
from sdlauncher.triton_install import TritonNotFound
from sdlauncher.watchdog import StubWatchdog

DESCRIPTION = "Start tritonserver with both StreamDiffusion models, wait until they are ready, and keep it running."


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
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
    parser.add_argument(
        "--log-verbose",
        type=int,
        default=0,
        help="tritonserver --log-verbose level; 1 and up write live sequences' correlation ids (debugging only)",
    )
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


def launch(args: argparse.Namespace) -> int:
    config_file = (args.config or config_path()).resolve()
    settings = load_settings(config_file)
    endpoints = endpoints_from(settings, args)
    models = [settings.model_name(mode) for mode in MODES]
    log_file = log_path(settings, args)
    run_dir = args.run_dir.resolve()

    install, backends, repository, device = prepare(settings, config_file, run_dir)
    secret = admin_key(os.environ)
    command = server_command(
        install,
        model_repository=repository,
        backend_directory=backends,
        endpoints=endpoints,
        models=models,
        admin_key=secret,
        log_verbose=args.log_verbose,
    )
    env = server_environment(os.environ, install, config_file=config_file)
    env.update(cpu_threads(os.environ, device, len(models), settings.triton.cpu_threads_per_model))
    problems = check_ports(endpoints)

    say(f"config {config_file}; models on {device}; tritonserver from {install.origin}")
    if args.log_verbose > 0:
        say(f"--log-verbose {args.log_verbose}: the log will name live sequences' correlation ids; debugging only")
    if args.check:
        for key in ("SD_CONFIG", "PATH", "LD_LIBRARY_PATH"):
            if env.get(key) != os.environ.get(key):
                print(f"{key}={shlex.quote(env[key])} \\")
        print(shlex.join(command).replace(secret, f"${ADMIN_KEY_ENV}"))
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
                admin_key=secret,
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
                StubWatchdog(
                    proc.pid, endpoints.url(endpoints.http_port), models, settings.triton.ready_timeout_s, say, secret
                )
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
