"""HTTPS and WSS from server.tls_cert / server.tls_key.

Browsers grant the camera only to a secure context: `localhost` is one, a LAN address is not, so
serving the pages to other machines on a LAN needs TLS (a certificate those browsers trust, or one
they were told to accept). On the internet, a reverse proxy usually terminates TLS instead.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from sdconfig import ConfigError
from sdconfig.schema import ServerConfig


def resolve(path: str, config_file: Path) -> Path:
    """A relative path is taken from the config file's folder, like model_id."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else config_file.parent / candidate


def server_ssl_context(server: ServerConfig, config_file: Path) -> ssl.SSLContext | None:
    """The context to serve with, or None without TLS; a ConfigError names the key that is wrong."""
    if server.tls_cert is None or server.tls_key is None:
        return None
    cert, key = resolve(server.tls_cert, config_file), resolve(server.tls_key, config_file)
    for name, path in (("server.tls_cert", cert), ("server.tls_key", key)):
        if not path.is_file():
            raise ConfigError(f"{name}: {path} is no file; point it at a PEM file (or unset both TLS keys)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"server.tls_cert/server.tls_key: cannot load {cert} with {key}: {exc}; both must be PEM and match"
        ) from None
    return context
