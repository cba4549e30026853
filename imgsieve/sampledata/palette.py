"""Colours, surfaces and drawing primitives that both classes of sample photos share."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

BICUBIC = Image.Resampling.BICUBIC

RGB = tuple[int, int, int]
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
# Surfaces appear in both classes: under pills, a plate or a pet, or as a floor or a wall.
SURFACES: tuple[RGB, ...] = (
    (236, 234, 228), (205, 170, 120), (120, 82, 52), (150, 150, 152), (70, 98, 150), (62, 112, 82),
    (38, 38, 42), (222, 206, 182), (150, 52, 55), (180, 200, 215), (240, 225, 200), (90, 90, 95),
)  # fmt: skip
PILL_COLORS: tuple[RGB, ...] = (
    (244, 244, 238), (246, 242, 226), (236, 236, 236), (250, 220, 90), (240, 150, 170), (140, 190, 240),
    (245, 150, 60), (210, 50, 50), (110, 190, 120), (150, 100, 70), (50, 80, 180), (190, 160, 220),
)  # fmt: skip
SKIN: tuple[RGB, ...] = ((241, 200, 170), (224, 172, 132), (176, 122, 86), (112, 74, 50))
SKY: tuple[RGB, ...] = ((120, 170, 230), (180, 210, 240), (240, 170, 110), (200, 200, 205), (60, 80, 140))
FOOD: tuple[RGB, ...] = ((80, 140, 50), (140, 90, 50), (190, 50, 40), (230, 190, 80), (235, 230, 215))
FUR: tuple[RGB, ...] = ((120, 80, 45), (30, 30, 30), (235, 230, 220), (130, 130, 130), (210, 140, 60))
CARS: tuple[RGB, ...] = ((200, 30, 30), (240, 240, 240), (20, 20, 25), (40, 70, 160), (160, 160, 165))

Scene = Callable[[np.random.Generator, Image.Image], None]


def jitter(rng: np.random.Generator, color: Sequence[int], amount: int = 18) -> RGB:
    """Return color with each channel moved by up to amount, clipped to 0-255."""
    r, g, b = (int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)
    return (r, g, b)


def pick(rng: np.random.Generator, colors: Sequence[RGB], amount: int = 18) -> RGB:
    """Return one of colors, jittered."""
    return jitter(rng, colors[int(rng.integers(len(colors)))], amount)


def mix(a: Sequence[int], b: Sequence[int], t: float) -> RGB:
    """Blend colour a towards b by t (0 keeps a)."""
    r, g, bl = (int(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return (r, g, bl)


def disc(
    draw: ImageDraw.ImageDraw, centre: tuple[float, float], radii: tuple[float, float], fill: RGB
) -> None:
    """Fill the ellipse of the given centre and radii."""
    (cx, cy), (rx, ry) = centre, radii
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)


def blob(rng: np.random.Generator, cx: float, cy: float, r: float, bumps: float) -> list[tuple[float, float]]:
    """Return an irregular closed polygon around (cx, cy) of mean radius r."""
    angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    phases = rng.uniform(0, 2 * math.pi, 3)
    radius = r * (1 + bumps * sum(np.sin(k * angles + p) / k for k, p in zip((2, 3, 5), phases, strict=True)))
    return list(
        zip((cx + radius * np.cos(angles)).tolist(), (cy + radius * np.sin(angles)).tolist(), strict=True)
    )


def surface(rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    """Fill box with a plain, wooden, woven, tiled or stone surface."""
    x0, y0, x1, y1 = box
    base = pick(rng, SURFACES)
    draw.rectangle(box, fill=base)
    kind = rng.choice(["plain", "wood", "cloth", "tile", "stone"], p=[0.3, 0.25, 0.2, 0.1, 0.15])
    if kind == "wood":
        for y in np.arange(y0, y1, rng.uniform(3, 9)):
            wave = rng.uniform(40, 120)
            grain = [(float(x), float(y + 3 * math.sin(x / wave))) for x in range(x0, x1 + 40, 40)]
            draw.line(grain, fill=jitter(rng, base, 14), width=int(rng.integers(1, 4)))
    elif kind in ("cloth", "tile"):
        step = int(rng.integers(3, 7)) if kind == "cloth" else int(rng.integers(30, 90))
        line = mix(base, (128, 128, 128), 0.1 if kind == "cloth" else 0.4)
        for x in range(x0, x1, step):
            draw.line([(x, y0), (x, y1)], fill=line, width=1 if kind == "cloth" else 2)
        for y in range(y0, y1, step):
            draw.line([(x0, y), (x1, y)], fill=line, width=1 if kind == "cloth" else 2)
    elif kind == "stone":
        for _ in range(int(rng.integers(4, 12))):
            vein = np.cumsum(rng.normal(0, 12, (30, 2)), axis=0) + rng.uniform((x0, y0), (x1, y1))
            draw.line([(float(x), float(y)) for x, y in vein], fill=mix(base, (60, 60, 60), 0.3), width=1)
