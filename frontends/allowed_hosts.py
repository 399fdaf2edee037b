"""The `Host` check: only names this server is known by are served, before anything else runs.

The Origin check compares a page's Origin with the request's own Host, so a page that gets its
name resolved to this server (DNS rebinding: `evil.example` answering with 127.0.0.1) would pass
it as "its own host". Serving only the names the operator listed (server.security.allowed_hosts)
and loopback closes that path. Health probes and /metrics are left out of the check: kubelets and
Prometheus address pods by IP, and those routes give a page nothing to act with.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from frontends.http_errors import json_error
from sdconfig.schema import SecurityConfig

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNCHECKED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LOOPBACK_NAMES = ("localhost", ".localhost")
"""RFC 6761: browsers resolve these to loopback themselves, so no DNS server can rebind them."""


def host_name(host_header: str) -> str:
    """The Host header's name without its port, lower case, brackets and a final dot removed."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """Whether `name` (from host_name) is loopback or matches an entry of server.security.allowed_hosts."""
    if "*" in allowed:
        return True
    try:
        if ipaddress.ip_address(name).is_loopback:
            return True
    except ValueError:
        pass
    for entry in (*LOOPBACK_NAMES, *allowed):
        entry = entry.lower().rstrip(".")
        if entry.startswith("."):
            if name == entry[1:] or name.endswith(entry):
                return True
        elif name == entry:
            return True
    return False


def host_middleware(security: SecurityConfig) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Answer a request for a host not served with a JSON 421 naming the key to set."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = request.headers.get("Host")
        served = raw is not None and host_allowed(host_name(raw), security.allowed_hosts)
        if served or request.path in UNCHECKED_PATHS:
            return await handler(request)
        shown = "no Host header" if raw is None else f"host {raw[:100]!r}"
        log.info("refused %s %s from %s: %s is not served", request.method, request.path, request.remote, shown)
        return json_error(
            421,
            f"{shown} is not served here: add the name to server.security.allowed_hosts "
            "(SD__SERVER__SECURITY__ALLOWED_HOSTS) to serve it; loopback names are always served",
        )

    return check
