"""The pages and their files, served from frontends/web/ as they are (no build step).

`/static/` goes through aiohttp's static resource with follow_symlinks=False, which resolves the
path and refuses anything outside the folder (no `..` traversal, no symlink escape).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from aiohttp import web

from frontends.http_errors import json_error
from sdconfig import Mode

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
INDEX_PAGE = "index.html"
MODE_PAGES: dict[str, str] = {"realtime": "realtime.html", "canvas": "canvas.html"}
VIDEO_PAGE = "video.html"
"""Restyling a clip runs through either mode, so the page is served with any of them."""


def _page(path: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not await asyncio.to_thread(path.is_file):
            return json_error(404, f"page {path.name} is missing from {path.parent}")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return handle


def add_pages(app: web.Application, modes: Iterable[Mode], web_dir: Path = WEB_DIR) -> None:
    app.router.add_get("/", _page(web_dir / INDEX_PAGE))
    for mode in modes:
        app.router.add_get(f"/{mode}", _page(web_dir / MODE_PAGES[mode]))
    app.router.add_get("/video", _page(web_dir / VIDEO_PAGE))
    if web_dir.is_dir():
        app.router.add_static("/static/", web_dir, follow_symlinks=False, name="static")
    else:
        log.warning("no %s folder: / and the mode pages answer 404 until it exists", web_dir)
