"""Synthetic canvas drawings for measuring the Draw page: MNIST digits redrawn as a 280x280
canvas gives them, and drawings that are no digit at all (scribbles, letters, hatchings,
stars, blobs, smileys, dashes), drawn with a round pen as the canvas draws.

Used by benchmarks/drawing_robustness.py and benchmarks/not_a_digit.py, and by tests.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

CANVAS = 280

# Letters that look like no digit, as strokes in a unit box (x right, y down).
LETTERS = {
    "A": [[(0.0, 1.0), (0.5, 0.0), (1.0, 1.0)], [(0.25, 0.55), (0.75, 0.55)]],
    "E": [[(1.0, 0.0), (0.0, 0.0), (0.0, 1.0), (1.0, 1.0)], [(0.0, 0.5), (0.8, 0.5)]],
    "F": [[(1.0, 0.0), (0.0, 0.0), (0.0, 1.0)], [(0.0, 0.5), (0.8, 0.5)]],
    "H": [[(0.0, 0.0), (0.0, 1.0)], [(1.0, 0.0), (1.0, 1.0)], [(0.0, 0.5), (1.0, 0.5)]],
    "K": [[(0.0, 0.0), (0.0, 1.0)], [(1.0, 0.0), (0.0, 0.55), (1.0, 1.0)]],
    "M": [[(0.0, 1.0), (0.0, 0.0), (0.5, 0.6), (1.0, 0.0), (1.0, 1.0)]],
    "N": [[(0.0, 1.0), (0.0, 0.0), (1.0, 1.0), (1.0, 0.0)]],
    "R": [[(0.0, 1.0), (0.0, 0.0), (0.7, 0.0), (0.95, 0.2), (0.7, 0.45), (0.0, 0.45), (1.0, 1.0)]],
    "W": [[(0.0, 0.0), (0.25, 1.0), (0.5, 0.4), (0.75, 1.0), (1.0, 0.0)]],
    "X": [[(0.0, 0.0), (1.0, 1.0)], [(1.0, 0.0), (0.0, 1.0)]],
    "#": [[(0.3, 0.0), (0.3, 1.0)], [(0.7, 0.0), (0.7, 1.0)],
          [(0.0, 0.3), (1.0, 0.3)], [(0.0, 0.7), (1.0, 0.7)]],
}
KINDS = ("scribble", "letter", "hatching", "star", "blob", "smiley", "dash")


def blank_canvas() -> np.ndarray:
    canvas = np.zeros((CANVAS, CANVAS, 4), np.uint8)
    canvas[..., 3] = 255
    return canvas


def strokes_to_canvas(strokes: list[np.ndarray], pen: float, filled: list[np.ndarray] = ()) -> np.ndarray:
    """White round-pen strokes (each an (N, 2) array of x, y canvas points) on a black RGBA canvas."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    radius = pen / 2
    for points in strokes:  # stamped along the path every pixel, as a round pen leaves ink
        points = np.asarray(points, float)
        steps = [np.linspace(start, end, max(2, int(np.linalg.norm(end - start)) + 1))
                 for start, end in zip(points[:-1], points[1:])] or [points]
        for x, y in np.concatenate(steps):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    for polygon in filled:
        draw.polygon([tuple(map(float, point)) for point in polygon], fill=255)
    canvas = blank_canvas()
    canvas[..., :3] = np.asarray(image)[..., None]
    return canvas


def _place(strokes: list[np.ndarray], rng: np.random.Generator, low: int = 110,
           high: int = 250) -> list[np.ndarray]:
    """Unit-box strokes scaled to a random size, slightly rotated and sheared, at a random place."""
    size = rng.uniform(low, high)
    angle, shear = rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)
    aspect = rng.uniform(0.7, 1.2)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array(
        [[aspect, shear], [0.0, 1.0]])
    moved = [(np.asarray(points, float) - 0.5) @ matrix.T * size for points in strokes]
    every = np.concatenate(moved)
    low_corner, high_corner = every.min(axis=0), every.max(axis=0)
    span = np.maximum(high_corner - low_corner, 1.0)
    scale = min(1.0, (CANVAS - 30) / span.max())
    moved = [(points - low_corner) * scale for points in moved]
    room = CANVAS - 15 - span * scale
    offset = 15 + rng.uniform(0, np.maximum(room - 15, 0.0))
    return [points + offset for points in moved]


def _wobble(points: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """A hand's wobble: points resampled every few pixels along the path and jittered."""
    dense = []
    for start, end in zip(points[:-1], points[1:]):
        steps = max(2, int(np.linalg.norm(end - start) / 6))
        dense.extend(start + (end - start) * t for t in np.linspace(0, 1, steps, endpoint=False))
    dense.append(points[-1])
    dense = np.array(dense)
    noise = ndimage.gaussian_filter1d(rng.normal(0, amount, dense.shape), 2, axis=0)
    return dense + noise


def non_digit(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One drawing of `kind` (see KINDS) as a canvas image."""
    pen = float(rng.uniform(10, 32))
    if kind == "blob":
        count = int(rng.integers(5, 12))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = rng.uniform(0.3, 0.5, count)
        polygon = np.stack([0.5 + radii * np.cos(angles), 0.5 + radii * np.sin(angles)], axis=1)
        (placed,) = _place([polygon], rng, 60, 200)
        return strokes_to_canvas([np.vstack([placed, placed[:1]])], pen, filled=[placed])
    if kind == "scribble":
        strokes = [rng.uniform(0, 1, (int(rng.integers(6, 16)), 2))]
    elif kind == "letter":
        strokes = LETTERS[list(LETTERS)[int(rng.integers(len(LETTERS)))]]
    elif kind == "hatching":
        count, angle = int(rng.integers(4, 9)), rng.uniform(0, np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        across = np.array([-direction[1], direction[0]])
        strokes = [np.array([0.5 - 0.5 * direction, 0.5 + 0.5 * direction]) + across * (t - 0.5)
                   for t in np.linspace(0, 1, count)]
        if rng.random() < 0.5:  # cross-hatched
            strokes += [np.array([0.5 - 0.5 * across, 0.5 + 0.5 * across]) + direction * (t - 0.5)
                        for t in np.linspace(0, 1, count)]
    elif kind == "star":
        points = int(rng.choice([5, 7]))
        turn = 2 if points == 5 else 3
        angles = -np.pi / 2 + 2 * np.pi * turn * np.arange(points + 1) / points
        if rng.random() < 0.5:
            strokes = [0.5 + 0.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)]
        else:  # an asterisk
            count = int(rng.integers(3, 5))
            strokes = [0.5 + 0.5 * np.array([[-np.cos(a), -np.sin(a)], [np.cos(a), np.sin(a)]])
                       for a in np.pi * np.arange(count) / count]
    elif kind == "smiley":
        turn = np.linspace(0, 2 * np.pi, 40)
        mouth = np.linspace(0.2 * np.pi, 0.8 * np.pi, 12)
        strokes = [0.5 + 0.5 * np.stack([np.cos(turn), np.sin(turn)], axis=1),
                   0.5 + 0.3 * np.stack([np.cos(mouth), np.sin(mouth)], axis=1),
                   np.array([[0.33, 0.35], [0.34, 0.36]]), np.array([[0.66, 0.35], [0.67, 0.36]])]
    elif kind == "dash":
        tilt = rng.uniform(-0.15, 0.15)
        strokes = [np.array([[0.0, 0.5 - tilt], [1.0, 0.5 + tilt]])]
    else:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    placed = _place(strokes, rng)
    return strokes_to_canvas([_wobble(points, rng, 1.5) for points in placed], pen)


def redrawn_digit(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 uint8 MNIST digit redrawn as a canvas image: size, stroke width and position vary."""
    size = int(rng.integers(110, 260))  # the 28x28 field's size on the canvas
    big = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR),
                     dtype=np.float32)
    change = int(rng.integers(-3, 8))  # stroke thinner (<0) or thicker (>0), in canvas pixels
    if change > 0:
        big = ndimage.grey_dilation(big, footprint=_disk(change))
    elif change < 0:
        big = ndimage.grey_erosion(big, footprint=_disk(-change))
    ink_rows = np.flatnonzero(big.max(axis=1) > 25)
    ink_cols = np.flatnonzero(big.max(axis=0) > 25)
    big = big[ink_rows[0]:ink_rows[-1] + 1, ink_cols[0]:ink_cols[-1] + 1][:CANVAS, :CANVAS]
    top = int(rng.integers(0, CANVAS - big.shape[0] + 1))
    left = int(rng.integers(0, CANVAS - big.shape[1] + 1))
    canvas = blank_canvas()
    for channel in range(3):
        canvas[top:top + big.shape[0], left:left + big.shape[1], channel] = np.clip(big, 0, 255)
    return canvas


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius
