"""The production topology on one machine, with real parts: nginx terminating TLS in front of two
frontend processes, which share two tritonservers.

    client --https/wss--> nginx :TLS --> frontends a, b (python -m frontends) --gRPC--> triton a, b

nginx is Debian's (`scripts/setup.sh --dev` installs it), run as a child with its own prefix
folder; its certificate is self-signed, made at start with `openssl`, and clients verify it.
Its proxy settings are the ones docker/README.md and the Kubernetes Ingress document: WebSocket
upgrade headers, no buffering (MJPEG parts pass at once), hour-long read and send timeouts, a
16 MiB body limit. A user's WebSocket and MJPEG stream are two connections that must reach the
same frontend; the Ingress pins them with a cookie, open-source nginx has no such cookie, so here
the upstream is chosen by a consistent hash of the user_id in the path (anything else: of the
request id). A frontend that refuses or drops connections is failed over (`proxy_next_upstream`).

Each Triton is scripts/launch_triton.py on its own ports; each frontend lists both
(SD__TRITON__URLS), so a user's work follows frontends/routing.py. `Topology` starts, stops and
restarts each part and samples the memory of each process tree; sdtools/chaos.py drives it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sdtools.local_stack import TEST_CONFIG

REPO_ROOT = Path(__file__).resolve().parent.parent
NGINX = Path("/usr/sbin/nginx")
LOAD_OVERRIDES = {
    "SD__SERVER__MAX_SESSIONS_PER_MODE": "128",
    "SD__SERVER__SECURITY__MAX_SESSIONS_PER_CLIENT": "256",
    "SD__SERVER__SECURITY__MAX_MESSAGES_PER_SECOND_PER_CLIENT": "100000",
    "SD__REALTIME__PIPELINE__MAX_SEQUENCES": "128",
    "SD__TRITON__HEALTH_INTERVAL_S": "1",
}
"""Limits that would otherwise refuse many sessions from one machine (every client is 127.0.0.1)."""


class TopologyError(RuntimeError):
    """A part did not come up; the message names it and ends with the tail of its log."""


def distinct_free_ports(count: int) -> list[int]:
    """`count` different free loopback ports: each socket stays bound until all are chosen."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def _answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context):
            return True
    except OSError:
        return False


def _wait(
    condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise TopologyError(f"{what} did not come up (exit {process.poll()}; see {log}):\n{_tail(log)}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout_s: float = 60) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tree_rss_mib(pid: int) -> float | None:
    """RSS of a process and all its descendants (a launcher's tritonserver and stubs, nginx's workers)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return round(total / 2**20, 1)


# --------------------------------------------------------------------------- the parts


@dataclass
class Part:
    """One process of the topology: how to start it, and the current one."""

    name: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def spawn(self, args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            out.write(f"\n==== start {self.starts + 1} at {time.strftime('%H:%M:%S')} ====\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                args, cwd=REPO_ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1
        return self.process


@dataclass
class TritonPart(Part):
    grpc: int = 0
    http: int = 0
    metrics: int = 0

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    def server_pid(self) -> int | None:
        """The tritonserver child of the launcher."""
        with contextlib.suppress(psutil.Error, TypeError):
            for child in psutil.Process(self.pid).children():  # type: ignore[arg-type]
                if child.name() == "tritonserver":
                    return child.pid
        return None


@dataclass
class FrontendPart(Part):
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Topology:
    """nginx, two frontends and two Tritons on free loopback ports, with logs under `folder`."""

    folder: Path
    config: Path = TEST_CONFIG
    overrides: Mapping[str, str] = field(default_factory=lambda: dict(LOAD_OVERRIDES))
    tritons: list[TritonPart] = field(default_factory=list)
    frontends: list[FrontendPart] = field(default_factory=list)
    nginx: Part | None = None
    https_port: int = 0
    say: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self.folder = self.folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        ports = iter(distinct_free_ports(9))
        self.tritons = [
            TritonPart(
                f"triton-{n}", self.folder / f"triton-{n}.out", grpc=next(ports), http=next(ports), metrics=next(ports)
            )
            for n in "ab"
        ]
        self.frontends = [
            FrontendPart(f"frontend-{n}", self.folder / f"frontend-{n}.out", port=next(ports)) for n in "ab"
        ]
        self.nginx = Part("nginx", self.folder / "nginx" / "error.log")
        self.https_port = next(ports)

    # ------------------------------------------------------------------ urls and TLS

    @property
    def base_url(self) -> str:
        """Where clients go: nginx, over TLS."""
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def certificate(self) -> Path:
        return self.folder / "nginx" / "tls.crt"

    def client_ssl(self) -> ssl.SSLContext:
        """A client context that trusts only this topology's certificate (and checks the host name)."""
        return ssl.create_default_context(cafile=str(self.certificate))

    def parts(self) -> list[Part]:
        return [*self.tritons, *self.frontends, *([self.nginx] if self.nginx else [])]

    # ------------------------------------------------------------------ environment

    def _env(self, **extra: str) -> dict[str, str]:
        urls = ", ".join(t.grpc_url for t in self.tritons)
        return {
            **os.environ,
            **self.overrides,
            "SD_CONFIG": str(self.config),
            "SD__TRITON__URLS": f"[{urls}]",
            "SD__SERVER__SECURITY__TRUSTED_PROXIES": "[127.0.0.1]",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    # ------------------------------------------------------------------ Triton

    def start_triton(self, part: TritonPart, timeout_s: float = 600) -> None:
        env = self._env(
            SD__TRITON__GRPC_PORT=str(part.grpc),
            SD__TRITON__HTTP_PORT=str(part.http),
            SD__TRITON__METRICS_PORT=str(part.metrics),
            SD__TRITON__LOG_FILE=str(self.folder / f"{part.name}.tritonserver.log"),
        )
        run_dir = self.folder / f"{part.name}.run"
        args = [sys.executable, "scripts/launch_triton.py", "--config", str(self.config), "--run-dir", str(run_dir)]
        offset = part.log.stat().st_size if part.log.exists() else 0
        process = part.spawn(args, env)

        def ready() -> bool:
            with part.log.open("rb") as f:
                f.seek(offset)
                return b"\nREADY " in b"\n" + f.read()

        _wait(ready, part.name, process, part.log, timeout_s)

    def kill_triton(self, part: TritonPart) -> None:
        """SIGKILL the tritonserver itself (a crash); its launcher notices and exits."""
        pid = part.server_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # the server and its stubs
        if part.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                part.process.wait(60)
        _stop(part.process, signal.SIGKILL)

    # ------------------------------------------------------------------ frontends

    def start_frontend(self, part: FrontendPart, timeout_s: float = 120) -> None:
        env = self._env(SD__SERVER__PORT=str(part.port))
        process = part.spawn([sys.executable, "-m", "frontends", "--config", str(self.config)], env)
        _wait(lambda: _answers(f"{part.base_url}/readyz"), part.name, process, part.log, timeout_s)

    def stop_frontend(self, part: FrontendPart, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: a rolling restart (the frontend drains its sessions with 1001); SIGKILL: a crash."""
        _stop(part.process, sig)

    # ------------------------------------------------------------------ nginx

    def _nginx_config(self) -> str:
        folder = self.folder / "nginx"
        upstreams = "\n".join(f"        server 127.0.0.1:{f.port} max_fails=1 fail_timeout=3s;" for f in self.frontends)
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        return NGINX_CONFIG.format(
            user=user,
            folder=folder,
            upstreams=upstreams,
            port=self.https_port,
        )

    def _certificate(self) -> None:
        folder = self.folder / "nginx"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout", str(folder / "tls.key"), "-out", str(self.certificate),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def start_nginx(self, timeout_s: float = 30) -> None:
        if not NGINX.exists():
            raise TopologyError(f"{NGINX} is missing: install Debian's nginx (scripts/setup.sh --dev)")
        folder = self.folder / "nginx"
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / "temp"
        temp.mkdir(exist_ok=True)
        temp.chmod(0o777)  # nginx's workers run as nobody and buffer large bodies there
        if not self.certificate.exists():
            self._certificate()
        (folder / "nginx.conf").write_text(self._nginx_config())
        check = subprocess.run(
            [str(NGINX), "-t", "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(folder / "nginx.conf")],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise TopologyError(f"nginx rejected its configuration:\n{check.stderr}")
        assert self.nginx is not None
        args = [str(NGINX), "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(folder / "nginx.conf")]
        process = self.nginx.spawn([*args, "-g", "daemon off;"], os.environ)
        context = self.client_ssl()
        _wait(lambda: _answers(f"{self.base_url}/healthz", context), "nginx", process, self.nginx.log, timeout_s)

    def reload_nginx(self) -> None:
        """SIGHUP: new workers with the configuration re-read; open connections stay with the old ones."""
        assert self.nginx is not None and self.nginx.process is not None
        self.nginx.process.send_signal(signal.SIGHUP)

    # ------------------------------------------------------------------ the whole

    def start(self) -> None:
        self.say(f"[topology] starting 2 Tritons, 2 frontends and nginx (logs in {self.folder})")
        for part in self.tritons:
            self.start_triton(part)
            self.say(f"[topology] {part.name} ready on gRPC {part.grpc_url}")
        for part in self.frontends:
            self.start_frontend(part)
            self.say(f"[topology] {part.name} ready on {part.base_url}")
        self.start_nginx()
        self.say(f"[topology] nginx serving {self.base_url}")

    def stop(self) -> None:
        _stop(self.nginx.process if self.nginx else None, signal.SIGQUIT, 30)  # SIGQUIT: graceful for nginx
        for part in self.frontends:
            _stop(part.process)
        for part in self.tritons:
            _stop(part.process)

    def memory(self) -> dict[str, tuple[int, float] | None]:
        """(pid, RSS in MiB of its process tree) for each part, None while it is down."""
        found: dict[str, tuple[int, float] | None] = {}
        for part in self.parts():
            pid = part.pid
            rss = tree_rss_mib(pid) if pid else None
            found[part.name] = (pid, rss) if pid and rss is not None else None
        return found

    def check_alive(self) -> list[str]:
        """Parts that exited on their own."""
        return [p.name for p in self.parts() if p.process is not None and p.process.poll() is not None]


@contextlib.contextmanager
def running_topology(folder: Path, **options: object) -> Iterator[Topology]:
    topology = Topology(folder, **options)  # type: ignore[arg-type]
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


def nginx_available() -> bool:
    return NGINX.exists() and shutil.which("openssl") is not None


NGINX_CONFIG = """\
# Written by sdtools/topology.py for one run; the settings docker/README.md documents for a proxy.
{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log {folder}/access.log combined buffer=64k flush=5s;
    client_body_temp_path {folder}/temp/body;
    proxy_temp_path {folder}/temp/proxy;
    fastcgi_temp_path {folder}/temp/fastcgi;
    uwsgi_temp_path {folder}/temp/uwsgi;
    scgi_temp_path {folder}/temp/scgi;
    server_tokens off;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    # a user's WebSocket and MJPEG stream must meet in one frontend: hash the user_id of the path
    map $uri $frontend_key {{
        ~^/api/[a-z]+/(?:ws|stream)/(?<user>[^/]+)$ $user;
        default $request_id;
    }}

    upstream frontends {{
        hash $frontend_key consistent;
{upstreams}
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {folder}/tls.crt;
        ssl_certificate_key {folder}/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;

        client_max_body_size 16m;

        location / {{
            proxy_pass http://frontends;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_connect_timeout 5s;
            proxy_next_upstream error timeout http_502;
        }}
    }}
}}
"""
