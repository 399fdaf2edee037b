"""Watching the running tritonserver: until both models are ready, then while it serves.

Before its HTTP endpoint answers, the server's log is all there is to read model states from;
after, the repository index gives each model's state and its own reason for a failed load.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from sdlauncher.report import Interrupted, LaunchError, say
from sdlauncher.server import ADMIN_HEADER, Endpoints
from sdlauncher.watchdog import StubWatchdog

PROGRESS_EVERY_S = 5.0
POLL_EVERY_S = 0.5
LOG_TAIL_LINES = 40
FAILED_STATES = ("UNAVAILABLE", "UNKNOWN")
"""Repository-index states that will not turn READY on their own (UNKNOWN: not in the index at all)."""

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


def http_json(url: str, method: str = "GET", body: bytes | None = None, admin_key: str = "") -> object | None:
    """The decoded JSON answer, {} for an empty 200, None when the server does not answer yet."""
    headers = {"Content-Type": "application/json", **({ADMIN_HEADER: admin_key} if admin_key else {})}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException):
        return None  # not up yet, or (a port taken meanwhile by another server) not Triton's HTTP
    return json.loads(payload) if payload else {}


def states_from_server(
    http_url: str, models: Sequence[str], admin_key: str
) -> tuple[dict[str, str], dict[str, str]] | None:
    """Model states and reasons from the repository index, or None while the HTTP endpoint is down."""
    index = http_json(f"http://{http_url}/v2/repository/index", method="POST", body=b"{}", admin_key=admin_key)
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


def wait_ready(
    proc: subprocess.Popen[bytes],
    *,
    endpoints: Endpoints,
    models: Sequence[str],
    log: ServerLog,
    timeout_s: float,
    stop: threading.Event,
    admin_key: str,
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
        from_server = states_from_server(http_url, models, admin_key)
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
