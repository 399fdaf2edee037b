"""Reading pictures back from the page and from the wire, to compare them pixel by pixel.

Screenshots of a <video> or a just-replaced <img> can be blank or stale, so the output <img> is
drawn onto a canvas inside the page after `img.decode()`, and its pixels are hashed there.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from playwright.sync_api import Page

_SIGNATURE_JS = """async (selector) => {
  const img = document.querySelector(selector);
  if (!img || !img.getAttribute("src")) return null;
  try { await img.decode(); } catch { return null; }
  if (img.naturalWidth === 0) return null;
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", pixels));
  const sums = [0, 0, 0];
  for (let i = 0; i < pixels.length; i += 4) for (let c = 0; c < 3; c++) sums[c] += pixels[i + c];
  const rgb = sums.map((s) => s / (pixels.length / 4));
  return {
    frames: Number(img.dataset.frames || 0),
    width: canvas.width,
    height: canvas.height,
    hash: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    mean: (rgb[0] + rgb[1] + rgb[2]) / 3,
    rgb,
  };
}"""


@dataclass(frozen=True)
class Shown:
    """The picture an <img> shows: how many results the page had received, its size and pixels' hash."""

    frames: int
    width: int
    height: int
    hash: str
    mean: float
    rgb: tuple[float, float, float]


def shown(page: Page, selector: str = "#output") -> Shown | None:
    value = page.evaluate(_SIGNATURE_JS, selector)
    return Shown(**{**value, "rgb": tuple(value["rgb"])}) if value else None


def results_count(page: Page, selector: str = "#output") -> int:
    return int(page.get_attribute(selector, "data-frames") or 0)


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def image_format(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return f"{image.format} {image.width}x{image.height}"


def mean_rgb(page: Page, selector: str = "#output") -> tuple[int, tuple[float, float, float]] | None:
    """(results received, mean R, G, B) of the picture an <img> shows."""
    picture = shown(page, selector)
    return (picture.frames, picture.rgb) if picture else None
