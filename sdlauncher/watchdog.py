"""The launcher's watchdog: a model whose stub process died is reloaded.

Each Python-backend model instance runs in a `triton_python_backend_stub` child of tritonserver.
When one dies (killed, out of memory), Triton 2.51 neither restarts it nor marks the model unready:
the model answers every request with "Stub process ... is not healthy" until it is reloaded. In the
explicit model-control mode the launcher uses (restricted to the launcher's key, see
sdlauncher/server.py), a `load` of a model that is already loaded does
nothing, so the watchdog unloads it and loads it again (the model's state, live realtime sequences
included, is gone either way; the frontends start fresh sequences).

The stubs are found in /proc as children of the tritonserver process; their second argument is
`<model_repository>/<model>/<version>/model.py`. A model that is not READY in the repository index
(a failed load) is loaded again too, with a growing pause between attempts.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from sdlauncher.server import ADMIN_HEADER
from sdlauncher.triton_install import STUB_NAME

UNLOAD_WAIT_S = 10.0
FIRST_RETRY_S = 10.0
MAX_RETRY_S = 300.0


def stub_pids(server_pid: int, proc: Path = Path("/proc")) -> dict[str, set[int]]:
    """{model name: pids of its live stubs} for the stubs that are children of `server_pid`."""
    found: dict[str, set[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        if len(fields) < 2 or int(fields[1]) != server_pid or fields[0] == "Z":
            continue
        if len(argv) < 2 or not argv[0].decode(errors="replace").endswith(STUB_NAME):
            continue
        model_file = Path(argv[1].decode(errors="replace"))
        if model_file.name == "model.py" and len(model_file.parents) >= 2:
            found.setdefault(model_file.parents[1].name, set()).add(int(entry.name))
    return found


def _post(url: str, timeout_s: float, admin_key: str) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", ADMIN_HEADER: admin_key}
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return 0, str(exc)


def model_states(http_url: str, admin_key: str) -> dict[str, str] | None:
    """Repository-index states by model name, or None when the HTTP endpoint does not answer."""
    status, body = _post(f"http://{http_url}/v2/repository/index", 5.0, admin_key)
    if status != 200:
        return None
    try:
        return {entry["name"]: entry.get("state", "UNKNOWN") for entry in json.loads(body)}
    except (ValueError, KeyError, TypeError):
        return None


class StubWatchdog:
    def __init__(
        self,
        server_pid: int,
        http_url: str,
        models: Sequence[str],
        load_timeout_s: float,
        say: Callable[[str], None],
        admin_key: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server_pid = server_pid
        self.http_url = http_url
        self.admin_key = admin_key
        self.models = list(models)
        self.load_timeout_s = load_timeout_s
        self.say = say
        self._clock = clock
        self._known: dict[str, set[int]] = {}
        self._retry_at: dict[str, float] = {}
        self._retry_pause: dict[str, float] = {}
        self.reloads = 0

    def remember(self) -> None:
        """Take the current stubs as the healthy set (after the models are ready, and after a reload)."""
        current = stub_pids(self.server_pid)
        self._known = {model: set(current.get(model, ())) for model in self.models}

    def check(self) -> list[str]:
        """Reload what needs it; returns the models it reloaded."""
        current = stub_pids(self.server_pid)
        states = model_states(self.http_url, self.admin_key) or {}
        reloaded, attempted = [], False
        for model in self.models:
            dead = self._known.get(model, set()) - current.get(model, set())
            state = states.get(model, "READY")
            if dead:
                self.say(f"watchdog: the stub of {model} (pid {', '.join(map(str, sorted(dead)))}) died; reloading")
            elif state in ("READY", "LOADING", "UNLOADING") or self._clock() < self._retry_at.get(model, 0.0):
                continue
            else:
                self.say(f"watchdog: {model} is {state}; loading it again")
            attempted = True
            if self.reload(model):
                reloaded.append(model)
        if attempted:  # a failed reload is retried through the model's state, with a growing pause
            self.remember()
        return reloaded

    def reload(self, model: str) -> bool:
        base = f"http://{self.http_url}/v2/repository/models/{model}"
        _post(f"{base}/unload", 10.0, self.admin_key)
        self._wait_unloading(model)
        status, body = _post(f"{base}/load", self.load_timeout_s, self.admin_key)
        self.reloads += 1
        if status == 200:
            self.say(f"watchdog: {model} reloaded")
            self._retry_pause.pop(model, None)
            self._retry_at.pop(model, None)
            return True
        pause = min(MAX_RETRY_S, self._retry_pause.get(model, FIRST_RETRY_S / 2) * 2)
        self._retry_pause[model] = pause
        self._retry_at[model] = self._clock() + pause
        self.say(f"watchdog: reloading {model} failed ({status}: {body[:300]}); next try in {pause:.0f} s")
        return False

    def _wait_unloading(self, model: str) -> None:
        """Until Triton took the unload in hand. An instance whose stub died never finishes unloading
        (it waits for the stub's answer), so waiting for UNAVAILABLE would wait forever; the load
        goes ahead beside it, and the stale instance only delays a later shutdown by Triton's exit timeout."""
        deadline = self._clock() + UNLOAD_WAIT_S
        while self._clock() < deadline:
            states = model_states(self.http_url, self.admin_key)
            if states is None or states.get(model) != "READY":
                return
            time.sleep(0.1)
