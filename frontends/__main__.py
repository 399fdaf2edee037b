"""`python -m frontends [--config FILE] [--modes realtime,canvas] [--host H] [--port P]`

Serves the pages, the WebSocket protocol and the MJPEG streams against the Triton endpoints of
`triton.urls`. Options override the config file's `server` section; an invalid file or option
exits at once with a message naming the key.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from frontends.app import create_app, runner_options
from frontends.tls import server_ssl_context
from sdconfig import MODES, ConfigError, Settings, config_path, load_settings

log = logging.getLogger("frontends")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m frontends", description=__doc__.split("\n\n")[1])
    parser.add_argument("--config", help="YAML config (default: $SD_CONFIG or config.yaml at the repository root)")
    parser.add_argument("--modes", help=f"comma-separated modes to serve, of {','.join(MODES)} (default: server.modes)")
    parser.add_argument("--host", help="address to listen on (default: server.host)")
    parser.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ... (default: INFO)")
    return parser.parse_args(argv)


def effective_settings(args: argparse.Namespace) -> Settings:
    """The config file with the command line's server overrides, validated like the file itself."""
    settings = load_settings(args.config)
    server: dict[str, Any] = {}
    if args.modes is not None:
        server["modes"] = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.host is not None:
        server["host"] = args.host
    if args.port is not None:
        server["port"] = args.port
    if not server:
        return settings
    data = settings.model_dump(mode="json")
    data["server"].update(server)
    try:
        return Settings.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"command line: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = effective_settings(args)
        ssl_context = server_ssl_context(settings.server, Path(args.config).resolve() if args.config else config_path())
    except ConfigError as exc:
        print(f"frontends: {exc}", file=sys.stderr)
        return 2
    server = settings.server
    log.info(
        "serving %s on %s://%s:%d, Triton at %s",
        ",".join(server.modes),
        "https" if ssl_context else "http",
        server.host,
        server.port,
        ",".join(settings.triton.urls),
    )
    web.run_app(
        create_app(settings, config_file=Path(args.config) if args.config else None),
        host=server.host,
        port=server.port,
        ssl_context=ssl_context,
        **runner_options(settings),
        print=None,
        shutdown_timeout=10.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
