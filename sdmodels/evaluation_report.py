"""Run every demo-model figure on one backend and draw the picture grid the README shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sdmodels.evaluation import (
    COLOURS,
    Generate,
    Stream,
    best_lag_error,
    canvas_fidelity,
    centroid_x,
    colour_cases,
    drawings_with_shapes,
    mean_colour,
    moving_shape,
    nearest_colour,
    shape_mask,
)

WHITE = COLOURS["white"]


@dataclass
class Report:
    figures: dict[str, float] = field(default_factory=dict)
    rows: list[tuple[str, list[np.ndarray]]] = field(default_factory=list)
    """Picture grid rows: a label and the images of that row."""

    def lines(self) -> list[str]:
        return [f"{name:<44} {value:8.3f}" for name, value in self.figures.items()]


def evaluate_canvas(report: Report, canvas: Generate, size: int, count: int, seed: int) -> None:
    scenes = drawings_with_shapes(count, size)
    drawings = [np.asarray(s.image) for s in scenes]
    results = [canvas(d, s.caption, seed) for d, s in zip(drawings, scenes, strict=True)]
    fidelity = canvas_fidelity(drawings, results)
    report.figures["canvas: median others/own distance"] = fidelity.median
    report.figures["canvas: min others/own distance"] = min(fidelity.ratios)
    report.figures["canvas: share with ratio >= 2"] = fidelity.share_at_least_2
    for start in range(0, min(count, 12), 6):
        report.rows.append(("drawings (prompt: their caption)", drawings[start : start + 6]))
        report.rows.append(("canvas results", results[start : start + 6]))


def evaluate_colours(report: Report, canvas: Generate, size: int, count: int, seed: int) -> None:
    moved, kept, shown = [], [], []
    for same in (False, True):
        for case in colour_cases(count, size, same):
            result = canvas(case.drawing, case.prompt, seed)
            drawn = shape_mask(case.drawing, WHITE)
            came_back = shape_mask(result, WHITE) & drawn  # the shape as it came back, where it was drawn
            mask = came_back if came_back.sum() >= drawn.sum() // 4 else drawn
            before, after = mean_colour(case.drawing, drawn), mean_colour(result, mask)
            target = np.array(COLOURS[case.named], np.float64)
            if same:
                kept.append(nearest_colour(after) == case.drawn)
            else:
                moved.append(np.linalg.norm(after - target) < np.linalg.norm(before - target))
                if len(shown) < 6:
                    shown.append((case, result))
    report.figures["colour word: share moved toward the named one"] = float(np.mean(moved))
    report.figures["colour word: share kept when its own is named"] = float(np.mean(kept))
    report.rows.append(("drawn in one colour", [case.drawing for case, _ in shown]))
    report.rows.append(("prompt: " + ", ".join(case.named for case, _ in shown), [r for _, r in shown]))


def evaluate_realtime(report: Report, stream: Stream, size: int, frames: int) -> None:
    camera = moving_shape(frames, size)
    outputs = stream(camera, "a blue circle on a white background")
    lag, error = best_lag_error([centroid_x(f, WHITE) for f in camera], [centroid_x(f, WHITE) for f in outputs])
    report.figures["realtime: stream lag (frames)"] = float(lag)
    report.figures["realtime: centroid error (share of width)"] = error
    picks = np.linspace(0, frames - 1 - lag, 6).astype(int)
    report.rows.append(("camera frames", [camera[i] for i in picks]))
    report.rows.append((f"realtime outputs (+{lag} frames)", [outputs[i + lag] for i in picks]))


def draw_grid(rows: list[tuple[str, list[np.ndarray]]], cell: int = 128, label_h: int = 16) -> Image.Image:
    columns = max(len(images) for _, images in rows)
    grid = Image.new("RGB", (columns * cell, len(rows) * (cell + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for r, (label, images) in enumerate(rows):
        top = r * (cell + label_h)
        draw.text((4, top + 2), label, fill=(0, 0, 0))
        for c, image in enumerate(images):
            grid.paste(Image.fromarray(image).resize((cell, cell)), (c * cell, top + label_h))
    return grid


def write_grid(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_grid(report.rows).save(path)
    return path
