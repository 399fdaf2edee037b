"""How the launcher speaks: progress lines on stdout, and the errors that end a launch."""

from __future__ import annotations


class LaunchError(RuntimeError):
    """The launch cannot go on; the message says what went wrong and what to change."""


class Interrupted(LaunchError):
    """Ctrl-C or SIGTERM arrived before the models were ready."""


def say(message: str) -> None:
    print(f"[launch] {message}", flush=True)
