"""What stands between the open internet and the service: origins, the access token, headers, logs.

The pages and the WebSocket are reachable by any browser, so a page on another site could open a
session in a visitor's browser (cross-site WebSocket hijacking): browsers always send `Origin` on
a WebSocket upgrade, and only the server's own host and `server.security.allowed_origins` may
open one. A client without `Origin` is no browser; it could send any Origin it likes, so refusing
it protects nothing, and `allow_missing_origin` (default on) lets scripts and protocol clients in.

With `server.security.access_token` set, `/api/*` and `/metrics` answer only requests carrying the
token: `?token=`, `Authorization: Bearer`, or (WebSocket only) the subprotocol `token.<TOKEN>`
offered next to `streamdiffusion`. The pages take it from their own URL. Tokens are compared in
constant time and never written to the access log.

Every answer carries headers that keep the pages out of frames, stop MIME sniffing and Referer
leaks, and limit what a page may load (`server.security.content_security_policy`).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from frontends.http_errors import json_error
from frontends.session_binding import SESSION_KEY_PARAM
from sdconfig.schema import SecurityConfig

log = logging.getLogger(__name__)

SUBPROTOCOL = "streamdiffusion"
"""The WebSocket subprotocol a client may offer (and must, next to a token.<TOKEN> one, in browsers)."""
TOKEN_PROTOCOL_PREFIX = "token."
TOKEN_PARAM = "token"
PROTECTED_PREFIXES = ("/api/", "/metrics")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
"""JSON and MJPEG answers load nothing; they only must not be framed."""
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), usb=(), payment=()",
    "Cross-Origin-Resource-Policy": "same-origin",
}
PAGE_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin"}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------- client address


def client_address(request: web.Request, trusted_proxies: tuple[str, ...]) -> str:
    """The address limits are counted against: the peer, or what a trusted proxy says it forwarded for.

    X-Forwarded-For is read from the right, skipping trusted proxies, so a client cannot name an
    address of its choosing by sending the header itself.
    """
    peer = request.remote or "unknown"
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted_proxies):
            return hop if _is_ip(hop) else peer
    return peer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str, trusted_proxies: tuple[str, ...]) -> bool:
    """Whether `address` is one of the trusted proxies (addresses or CIDR networks)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(trusted_proxies))


# --------------------------------------------------------------------------- origin


def normalize_origin(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case without a default port, or None when it is no web origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else "")


def same_host(origin: str, host_header: str) -> bool:
    """Whether a normalized origin names the host (and port) the request was sent to."""
    scheme, _, netloc = origin.partition("://")
    host = host_header.strip().lower()
    default_suffix = f":{_DEFAULT_PORTS[scheme]}"
    if host.endswith(default_suffix):
        host = host[: -len(default_suffix)]
    return bool(host) and netloc == host


def origin_refusal(request: web.Request, security: SecurityConfig) -> str | None:
    """Why this WebSocket upgrade's Origin is refused, or None when it may go on."""
    raw = request.headers.get("Origin")
    if raw is None:
        if security.allow_missing_origin:
            return None
        return "requests without an Origin header are refused (server.security.allow_missing_origin is false)"
    if "*" in security.allowed_origins:
        return None
    origin = normalize_origin(raw)
    if origin is not None:
        if same_host(origin, request.host):
            return None
        allowed = {normalize_origin(entry) for entry in security.allowed_origins}
        if origin in allowed:
            return None
    return (
        f"pages from origin {raw[:100]!r} may not open sessions here: only this server's own pages and "
        "server.security.allowed_origins may"
    )


# --------------------------------------------------------------------------- access token


def offered_tokens(request: web.Request) -> list[str]:
    """Every token the request carries: query, Authorization header, WebSocket subprotocols."""
    tokens = request.query.getall(TOKEN_PARAM, [])
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        tokens.append(credentials.strip())
    tokens.extend(protocol[len(TOKEN_PROTOCOL_PREFIX) :] for protocol in token_protocols(request))
    return tokens


def token_protocols(request: web.Request) -> list[str]:
    """The `token.<TOKEN>` subprotocols a WebSocket client offered."""
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in offered.split(",") if p.strip().startswith(TOKEN_PROTOCOL_PREFIX)]


def token_matches(request: web.Request, expected: str) -> bool:
    """Constant-time comparison, so the answer's timing tells nothing about the token."""
    wanted = expected.encode()
    return any(hmac.compare_digest(token.encode(), wanted) for token in offered_tokens(request))


def needs_token(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIXES)


def token_middleware(expected: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Refuse /api/* and /metrics without the access token (401 JSON) before any handler runs."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if needs_token(request.path) and not token_matches(request, expected):
            log.info("refused %s from %s: no valid access token", request.path, request.remote)
            return json_error(
                401,
                "access token missing or wrong: open the page with ?token=<token>, or send "
                "Authorization: Bearer <token> (WebSocket: ?token= or the subprotocol token.<token>)",
            )
        return await handler(request)

    return check


def websocket_protocols(request: web.Request) -> tuple[str, ...]:
    """The subprotocols the upgrade may choose from: ours, and a token one if that is all the client offered.

    A browser that offers subprotocols fails the connection unless the answer picks one of them.
    """
    return (SUBPROTOCOL, *token_protocols(request))


# --------------------------------------------------------------------------- headers


SERVER_NAME = "streamdiffusion"


def security_headers(security: SecurityConfig) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """on_response_prepare hook: runs for every answer, streams and WebSocket upgrades included."""

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers["Server"] = SERVER_NAME  # no versions for a scanner to match
        for name, value in COMMON_HEADERS.items():
            headers.setdefault(name, value)
        if headers.get("Content-Type", "").startswith("text/html"):
            headers.setdefault("Content-Security-Policy", security.content_security_policy)
            for name, value in PAGE_HEADERS.items():
                headers.setdefault(name, value)
        else:
            headers.setdefault("Content-Security-Policy", API_CSP)

    return add


# --------------------------------------------------------------------------- access log


SECRET_PARAMS = (TOKEN_PARAM, SESSION_KEY_PARAM)


def redacted(request: web.BaseRequest) -> str:
    """The request's path and query with the token's and session key's values hidden."""
    url = request.rel_url
    if not any(name in url.query for name in SECRET_PARAMS):
        return str(url)
    query = [(key, "REDACTED" if key in SECRET_PARAMS else value) for key, value in url.query.items()]
    return str(url.with_query(query))


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp's access log line, without the access token a page URL or WebSocket URL carries."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3f "%s"',
            request.remote,
            request.method,
            redacted(request),
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
            request.headers.get("User-Agent", "-"),
        )
