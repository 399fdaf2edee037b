"""How the browser tests start Debian's Chromium, open pages and keep screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
BASE_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
]
CAMERA_ALLOWED = "--use-fake-ui-for-media-stream"
"""Answers the camera prompt with yes; without it headless Chromium answers no."""
DESKTOP = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}


def launch(playwright: Playwright, allow_camera: bool = True) -> Browser:
    args = [*BASE_ARGS, CAMERA_ALLOWED] if allow_camera else BASE_ARGS
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)


def open_page(browser: Browser, viewport: dict[str, int] = DESKTOP, **options: Any) -> tuple[Page, list[str]]:
    """A page in a fresh context, and the list its uncaught script errors are collected in."""
    context = browser.new_context(viewport=viewport, color_scheme="dark", accept_downloads=True, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
