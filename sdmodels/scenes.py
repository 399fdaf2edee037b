"""Captioned training scenes for the demo model: backgrounds, shapes and brush strokes of named colours.

Every scene is a pure function of its seed, so training data, held-out evaluation drawings and
test pictures are reproducible everywhere; training draws seeds below `HELD_OUT_SEED_START`,
evaluation at or above it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (245, 220, 35),
    "green": (40, 165, 60),
    "blue": (35, 80, 220),
    "purple": (130, 50, 170),
    "pink": (245, 130, 190),
    "brown": (125, 75, 35),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "star", "line")
WORDS = (*COLOURS, *SHAPES, "a", "and", "on", "background", "gradient", "drawing", "of")
"""The caption vocabulary; the tokenizer gives each word one token."""

HELD_OUT_SEED_START = 10_000_000
"""Seeds from here on are never used for training."""


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    centre: tuple[float, float]
    """x, y as fractions of the width and height."""
    size: float
    """Radius as a fraction of the width."""


@dataclass(frozen=True)
class Scene:
    image: Image.Image
    caption: str
    background: tuple[str, ...]
    shapes: tuple[Shape, ...]


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int = 12) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def _background(size: int, names: tuple[str, ...], rng: random.Random) -> Image.Image:
    first = np.array(_jitter(COLOURS[names[0]], rng), dtype=np.float32)
    if len(names) == 1:
        return Image.fromarray(np.broadcast_to(first, (size, size, 3)).astype(np.uint8))
    second = np.array(_jitter(COLOURS[names[1]], rng), dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    ramp = ramp[:, None] if rng.random() < 0.5 else ramp[None, :]
    ramp = np.broadcast_to(ramp, (size, size))[..., None]
    return Image.fromarray((first * (1 - ramp) + second * ramp).astype(np.uint8))


def _star(cx: float, cy: float, r: float, turn: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = turn + i * math.pi / 5
        points.append((cx + radius * math.sin(angle), cy - radius * math.cos(angle)))
    return points


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape, size: int, rng: random.Random) -> None:
    fill = _jitter(COLOURS[shape.colour], rng)
    cx, cy, r = shape.centre[0] * size, shape.centre[1] * size, shape.size * size
    if shape.kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape.kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape.kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
    elif shape.kind == "star":
        draw.polygon(_star(cx, cy, r * 1.1, rng.uniform(-0.3, 0.3)), fill=fill)
    else:  # a brush stroke: a wobbly thick line through the shape's box
        angle = rng.uniform(0, math.pi)
        steps = 6
        points = []
        for i in range(steps + 1):
            t = i / steps * 2 - 1
            wobble = rng.uniform(-0.15, 0.15) * r
            points.append(
                (
                    cx + t * r * 1.4 * math.cos(angle) - wobble * math.sin(angle),
                    cy + t * r * 1.4 * math.sin(angle) + wobble * math.cos(angle),
                )
            )
        width = max(2, int(size * rng.uniform(0.03, 0.07)))
        draw.line(points, fill=fill, width=width, joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=fill)


def caption_of(background: tuple[str, ...], shapes: tuple[Shape, ...]) -> str:
    things = " and ".join(f"a {s.colour} {s.kind}" for s in shapes)
    ground = (
        f"a {background[0]} and {background[1]} gradient background"
        if len(background) == 2
        else (f"a {background[0]} background")
    )
    return f"{things} on {ground}" if things else ground


def random_shapes(rng: random.Random, background: tuple[str, ...], count: int) -> tuple[Shape, ...]:
    """`count` shapes whose colours differ from the background's, so every shape is visible."""
    colours = [c for c in COLOURS if c not in background]
    return tuple(
        Shape(
            kind=rng.choice(SHAPES),
            colour=rng.choice(colours),
            centre=(rng.uniform(0.18, 0.82), rng.uniform(0.18, 0.82)),
            size=rng.uniform(0.1, 0.26),
        )
        for _ in range(count)
    )


def render(size: int, background: tuple[str, ...], shapes: tuple[Shape, ...], seed: int = 0) -> Scene:
    """Draw a scene described explicitly (tests and evaluation place their own shapes)."""
    rng = random.Random(seed)
    image = _background(size, background, rng)
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        _draw_shape(draw, shape, size, rng)
    return Scene(image=image, caption=caption_of(background, shapes), background=background, shapes=shapes)


def scene(seed: int, size: int) -> Scene:
    """The scene of `seed`: a solid or gradient background (white most often, as on a canvas) and 0-3 shapes."""
    rng = random.Random(seed)
    names = list(COLOURS)
    roll = rng.random()
    if roll < 0.35:
        background: tuple[str, ...] = ("white",)
    elif roll < 0.8:
        background = (rng.choice(names),)
    else:
        background = tuple(rng.sample(names, 2))
    shapes = random_shapes(rng, background, rng.choice((0, 1, 1, 2, 2, 3)))
    return render(size, background, shapes, seed=rng.randrange(2**31))


def to_array(image: Image.Image) -> np.ndarray:
    """HWC uint8 RGB."""
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
