"""Synthetic two-class photos for demos, tests and benchmarks: `drugs` (pills, capsules and blister
packs scattered, piled or held in a hand) and `other` (plates of food, landscapes, rooms, signs, pets,
cars).

Both classes share surfaces, palettes, camera effects and JPEG settings, so no single colour or size
cue separates them; what differs is the scene: many small, shaded, glossy objects covering a plain or
textured surface versus large-scale layouts. Scenes are drawn on a canvas of at most CANVAS_PIXELS
and stretched to the output size, which keeps generation fast. Every image has its own numpy
Generator seeded by the seed and the image's place in the set, so a seed always writes the same bytes.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from tqdm import tqdm

from imgsieve.errors import UserError

CLASS_NAMES = ("drugs", "other")
TRUTH_FILE = "_truth.csv"
MIN_PIXELS, MAX_PIXELS = 300_000, 2_000_000
CANVAS_PIXELS = 500_000
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3, 9 / 16, 5 / 4)
JPEG_QUALITY = (70, 95)
# Separate seed streams, so the unlabelled set never repeats a labelled image of the same seed.
LABELLED_STREAM, UNLABELLED_STREAM = 0, 1
LAYOUTS, LAYOUT_WEIGHTS = ("scatter", "pile", "blister", "hand", "closeup"), (0.35, 0.2, 0.2, 0.1, 0.15)
MAX_PILLS = 120
PILL_AREA = 1.6  # a pill's mean area over its width squared, round, oval and capsule mixed
ROTATIONS = 24
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


def _jitter(rng: np.random.Generator, color: Sequence[int], amount: int = 18) -> RGB:
    """Return color with each channel moved by up to amount, clipped to 0-255."""
    r, g, b = (int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)
    return (r, g, b)


def _pick(rng: np.random.Generator, colors: Sequence[RGB], amount: int = 18) -> RGB:
    """Return one of colors, jittered."""
    return _jitter(rng, colors[int(rng.integers(len(colors)))], amount)


def _mix(a: Sequence[int], b: Sequence[int], t: float) -> RGB:
    """Blend colour a towards b by t (0 keeps a)."""
    r, g, bl = (int(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return (r, g, bl)


def _disc(
    draw: ImageDraw.ImageDraw, centre: tuple[float, float], radii: tuple[float, float], fill: RGB
) -> None:
    """Fill the ellipse of the given centre and radii."""
    (cx, cy), (rx, ry) = centre, radii
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)


def _blob(
    rng: np.random.Generator, cx: float, cy: float, r: float, bumps: float
) -> list[tuple[float, float]]:
    """Return an irregular closed polygon around (cx, cy) of mean radius r."""
    angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    phases = rng.uniform(0, 2 * math.pi, 3)
    radius = r * (1 + bumps * sum(np.sin(k * angles + p) / k for k, p in zip((2, 3, 5), phases, strict=True)))
    return list(
        zip((cx + radius * np.cos(angles)).tolist(), (cy + radius * np.sin(angles)).tolist(), strict=True)
    )


def _surface(rng: np.random.Generator, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    """Fill box with a plain, wooden, woven, tiled or stone surface."""
    x0, y0, x1, y1 = box
    base = _pick(rng, SURFACES)
    draw.rectangle(box, fill=base)
    kind = rng.choice(["plain", "wood", "cloth", "tile", "stone"], p=[0.3, 0.25, 0.2, 0.1, 0.15])
    if kind == "wood":
        for y in np.arange(y0, y1, rng.uniform(3, 9)):
            wave = rng.uniform(40, 120)
            grain = [(float(x), float(y + 3 * math.sin(x / wave))) for x in range(x0, x1 + 40, 40)]
            draw.line(grain, fill=_jitter(rng, base, 14), width=int(rng.integers(1, 4)))
    elif kind in ("cloth", "tile"):
        step = int(rng.integers(3, 7)) if kind == "cloth" else int(rng.integers(30, 90))
        line = _mix(base, (128, 128, 128), 0.1 if kind == "cloth" else 0.4)
        for x in range(x0, x1, step):
            draw.line([(x, y0), (x, y1)], fill=line, width=1 if kind == "cloth" else 2)
        for y in range(y0, y1, step):
            draw.line([(x0, y), (x1, y)], fill=line, width=1 if kind == "cloth" else 2)
    elif kind == "stone":
        for _ in range(int(rng.integers(4, 12))):
            vein = np.cumsum(rng.normal(0, 12, (30, 2)), axis=0) + rng.uniform((x0, y0), (x1, y1))
            draw.line([(float(x), float(y)) for x, y in vein], fill=_mix(base, (60, 60, 60), 0.3), width=1)


# --------------------------------------------------------------------------------------------- drugs


def _pill(rng: np.random.Generator, width: float, light: float) -> Image.Image:
    """Draw one tablet, capsule or softgel, lit from angle light, on a transparent sprite."""
    kind = rng.choice(["round", "oval", "capsule", "softgel"], p=[0.4, 0.25, 0.25, 0.1])
    w = max(4, int(width))
    length = int(
        w * {"round": 1.0, "oval": 1.55, "capsule": 2.4, "softgel": 1.5}[kind] * rng.uniform(0.85, 1.15)
    )
    length = w if kind == "round" else length
    sprite = Image.new("RGBA", (length + 4, w + 4), (0, 0, 0, 0))
    draw = ImageDraw.Draw(sprite)
    box = (2, 2, length + 1, w + 1)
    color = _jitter(rng, (215, 150, 30), 25) if kind == "softgel" else _pick(rng, PILL_COLORS, 12)
    rim = _mix(color, BLACK, 0.25)
    if kind == "capsule":
        radius = max(1, (w - 3) // 2)  # Pillow's partial rounded corners need 2 * radius + 2 <= height
        draw.rounded_rectangle(box, radius=radius, fill=_pick(rng, PILL_COLORS, 12), outline=rim)
        half = (2, 2, int(2 + length * rng.uniform(0.45, 0.55)), w + 1)
        draw.rounded_rectangle(
            half, radius=radius, fill=color, outline=rim, corners=(True, False, False, True)
        )
    else:
        draw.ellipse(
            box, fill=(*color, 225 if kind == "softgel" else 255), outline=rim, width=max(1, w // 18)
        )
        if kind == "round" and rng.random() < 0.5:
            bevel = w * 0.12
            draw.ellipse(
                (2 + bevel, 2 + bevel, length + 1 - bevel, w + 1 - bevel), outline=_mix(color, WHITE, 0.3)
            )
        if kind != "softgel" and rng.random() < 0.4:
            draw.line(
                [(2 + length / 2, 2 + w * 0.15), (2 + length / 2, w + 1 - w * 0.15)],
                fill=rim,
                width=max(1, w // 14),
            )
    # A specular highlight towards the light, brightest at its core.
    hx, hy = 2 + length / 2 + math.cos(light) * length * 0.2, 2 + w / 2 + math.sin(light) * w * 0.2
    for scale, shine in ((0.28, 0.35), (0.16, 0.7), (0.07, 0.95)):
        _disc(draw, (hx, hy), (length * scale, w * scale), _mix(color, WHITE, shine))
    return sprite


def _blister(rng: np.random.Generator, size: float, light: float) -> Image.Image:
    """Draw a foil blister pack with a grid of one kind of pill, some pockets empty."""
    rows, cols, cell = int(rng.integers(2, 4)), int(rng.integers(3, 6)), size * 1.5
    pack = Image.new("RGBA", (int(cols * cell + cell * 0.6), int(rows * cell + cell * 0.6)), (0, 0, 0, 0))
    draw = ImageDraw.Draw(pack)
    foil = _jitter(rng, [(200, 200, 205), (235, 235, 230), (205, 180, 120)][int(rng.integers(3))], 10)
    draw.rounded_rectangle(
        (0, 0, pack.width - 1, pack.height - 1),
        radius=int(cell * 0.2),
        fill=foil,
        outline=_mix(foil, BLACK, 0.3),
    )
    pill = _pill(rng, size, light)
    for r in range(rows):
        for c in range(cols):
            x, y = cell * (0.3 + c), cell * (0.3 + r)
            draw.ellipse(
                (x + 2, y + 2, x + cell - 3, y + cell - 3),
                fill=_mix(foil, WHITE, 0.5),
                outline=_mix(foil, BLACK, 0.35),
            )
            if rng.random() < 0.85:
                pack.alpha_composite(
                    pill, (int(x + (cell - pill.width) / 2), int(y + (cell - pill.height) / 2))
                )
    return pack


def _hand(rng: np.random.Generator, size: float) -> Image.Image:
    """Draw an open palm with four fingers and a thumb, to hold pills."""
    skin = _pick(rng, SKIN, 12)
    w, h = int(size * 1.6), int(size * 1.9)
    hand = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(hand)
    draw.ellipse((w * 0.12, h * 0.35, w * 0.88, h * 0.98), fill=skin)
    for i in range(4):
        top, left = h * (0.05 + 0.04 * abs(i - 1.5)), w * (0.17 + 0.17 * i)
        draw.rounded_rectangle((left, top, left + w * 0.15, h * 0.6), radius=int(w * 0.07), fill=skin)
    draw.rounded_rectangle(
        (0, h * 0.45, w * 0.35, h * 0.62), radius=int(w * 0.08), fill=_mix(skin, BLACK, 0.05)
    )
    return hand


def _drugs(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw pills scattered, piled, in blister packs or in a hand, with soft shadows."""
    width, height = canvas.size
    side = min(width, height)
    _surface(rng, ImageDraw.Draw(canvas), (0, 0, width, height))
    light = rng.uniform(0, 2 * math.pi)
    layout = str(rng.choice(LAYOUTS, p=LAYOUT_WEIGHTS))
    # Pills cover much of the frame, as in a photo taken to show them; bigger pills come fewer.
    coverage = rng.uniform(0.5, 0.8) if layout == "closeup" else rng.uniform(0.35, 0.65)
    size = side * (rng.uniform(0.1, 0.16) if layout == "closeup" else rng.uniform(0.04, 0.09))
    size = max(size, math.sqrt(coverage * width * height / (MAX_PILLS * PILL_AREA)))
    count = int(coverage * width * height / (size * size * PILL_AREA))
    centre = (rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height)
    spread = math.sqrt(coverage * width * height / 12)  # a Gaussian pile covers about 12 sigma^2
    sprites: list[tuple[Image.Image, float, float]] = []
    if layout == "hand":
        hand = _hand(rng, side * rng.uniform(0.45, 0.6)).rotate(
            rng.uniform(-40, 40), expand=True, resample=BICUBIC
        )
        sprites.append((hand, *centre))
        spread = hand.width * 0.25
    elif layout == "blister":
        for _ in range(int(rng.integers(2, 6))):
            pack = _blister(rng, size, light).rotate(rng.uniform(0, 360), expand=True, resample=BICUBIC)
            sprites.append((pack, rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height))
        count //= 2
    # A photo shows a few kinds of pills; rotations come from a coarse set, so sprites are reused.
    kinds = [_pill(rng, size * rng.uniform(0.8, 1.25), light) for _ in range(int(rng.integers(1, 8)))]
    rotated: dict[tuple[int, int], Image.Image] = {}
    for _ in range(count):
        key = (int(rng.integers(len(kinds))), int(rng.integers(ROTATIONS)))
        if key not in rotated:
            rotated[key] = kinds[key[0]].rotate(key[1] * 360 / ROTATIONS, expand=True, resample=BICUBIC)
        if layout in ("pile", "hand"):
            sprites.append((rotated[key], rng.normal(centre[0], spread), rng.normal(centre[1], spread)))
        else:
            sprites.append((rotated[key], rng.uniform(0.03, 0.97) * width, rng.uniform(0.03, 0.97) * height))
    # Shadows first, from the sprites' own outlines cast away from the light, then softened.
    shadow = Image.new("L", canvas.size, 0)
    dx, dy = -math.cos(light) * size * 0.25, -math.sin(light) * size * 0.25
    for sprite, x, y in sprites:
        shadow.paste(
            140, (int(x - sprite.width / 2 + dx), int(y - sprite.height / 2 + dy)), sprite.getchannel("A")
        )
    canvas.paste(BLACK, (0, 0, width, height), shadow.filter(ImageFilter.BoxBlur(max(1, int(size * 0.15)))))
    for sprite, x, y in sprites:
        canvas.paste(sprite, (int(x - sprite.width / 2), int(y - sprite.height / 2)), sprite)


# --------------------------------------------------------------------------------------------- other


def _food(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a plate of food on a table, with cutlery and sometimes a glass."""
    width, height = canvas.size
    side = min(width, height)
    draw = ImageDraw.Draw(canvas)
    _surface(rng, draw, (0, 0, width, height))
    cx, cy, r = (
        width * rng.uniform(0.35, 0.65),
        height * rng.uniform(0.35, 0.65),
        side * rng.uniform(0.3, 0.45),
    )
    plate = _pick(rng, ((245, 245, 240), (240, 232, 210), (60, 90, 140), (30, 30, 30)), 10)
    _disc(draw, (cx + 6, cy + 10), (r, r), _mix(plate, BLACK, 0.45))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=plate, outline=_mix(plate, BLACK, 0.2), width=2)
    draw.ellipse(
        (cx - r * 0.75, cy - r * 0.75, cx + r * 0.75, cy + r * 0.75),
        outline=_mix(plate, BLACK, 0.12),
        width=2,
    )
    for _ in range(int(rng.integers(2, 6))):
        angle, distance, fr = (
            rng.uniform(0, 2 * math.pi),
            rng.uniform(0, r * 0.45),
            r * rng.uniform(0.15, 0.35),
        )
        fx, fy, food = cx + distance * math.cos(angle), cy + distance * math.sin(angle), _pick(rng, FOOD, 25)
        draw.polygon(_blob(rng, fx, fy, fr, 0.25), fill=food)
        for px, py, qx, qy in rng.normal(
            (fx, fy, 0, 0), (fr * 0.4, fr * 0.4, fr * 0.15, fr * 0.15), (int(rng.integers(5, 25)), 4)
        ):
            draw.line([(px, py), (px + qx, py + qy)], fill=_jitter(rng, food, 40), width=2)
    for k in range(int(rng.integers(0, 3))):
        x = cx + (r + side * (0.05 + 0.05 * k)) * (1 if k % 2 == 0 else -1)
        draw.rounded_rectangle(
            (x, cy - r * 0.9, x + side * 0.025, cy + r * 0.9),
            radius=4,
            fill=_jitter(rng, (190, 190, 195), 15),
        )
    if rng.random() < 0.5:
        gx, gy, gr = (
            width * rng.uniform(0.05, 0.95),
            height * rng.uniform(0.05, 0.3),
            side * rng.uniform(0.07, 0.12),
        )
        draw.ellipse((gx - gr, gy - gr, gx + gr, gy + gr), outline=(230, 235, 240), width=3)


def _landscape(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a sky with clouds, mountain ridges, grass or sand, and trees."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    horizon = int(height * rng.uniform(0.3, 0.7))
    top, low = _pick(rng, SKY, 20), _pick(rng, SKY, 20)
    for row in range(horizon):
        draw.line([(0, row), (width, row)], fill=_mix(top, low, row / horizon))
    for _ in range(int(rng.integers(0, 6))):
        x, y, s = rng.uniform(0, width), rng.uniform(0, horizon * 0.7), rng.uniform(0.05, 0.15) * width
        for _ in range(4):
            _disc(draw, (x, y), (s, s * 0.4), _jitter(rng, (245, 245, 248), 8))
            x, y, s = x + rng.normal(0, s * 0.6), y + rng.normal(0, s * 0.2), s * rng.uniform(0.6, 1.0)
    for layer in range(int(rng.integers(1, 4))):
        ridge = horizon - np.abs(np.cumsum(rng.normal(0, height * 0.03, 40))) - layer * height * 0.03
        rock = _mix(_pick(rng, ((90, 100, 120), (70, 110, 70), (150, 140, 130))), low, 0.5 - layer * 0.15)
        outline = list(zip(np.linspace(0, width, 40).tolist(), ridge.tolist(), strict=True))
        draw.polygon([(0, horizon), *outline, (width, horizon)], fill=rock)
    ground = _pick(rng, ((70, 130, 50), (150, 120, 70), (220, 200, 150), (240, 240, 245), (50, 90, 140)), 20)
    draw.rectangle((0, horizon, width, height), fill=ground)
    for _ in range(int(rng.integers(20, 120))):
        x, y = rng.uniform(0, width), rng.uniform(horizon, height)
        draw.line(
            [(x, y), (x + rng.normal(0, 10), y + rng.uniform(-6, 0))], fill=_jitter(rng, ground, 30), width=2
        )
    for _ in range(int(rng.integers(0, 7))):
        x, y = rng.uniform(0, width), rng.uniform(horizon, height)
        s = (y - horizon + 10) * rng.uniform(0.2, 0.5)  # nearer trees are bigger
        draw.rectangle((x - s * 0.06, y - s * 0.5, x + s * 0.06, y), fill=(80, 55, 35))
        draw.polygon(
            _blob(rng, x, y - s * 0.8, s * 0.4, 0.15),
            fill=_pick(rng, ((40, 90, 40), (70, 120, 50), (140, 110, 40)), 15),
        )


def _room(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a wall with a window and pictures, a floor, a sofa and a lamp."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    floor = int(height * rng.uniform(0.55, 0.8))
    draw.rectangle((0, 0, width, floor), fill=_pick(rng, SURFACES, 20))
    _surface(rng, draw, (0, floor, width, height))
    if rng.random() < 0.7:
        wx, wy = width * rng.uniform(0.05, 0.6), height * rng.uniform(0.05, 0.15)
        ww, wh = width * rng.uniform(0.2, 0.35), floor * rng.uniform(0.4, 0.6)
        draw.rectangle((wx, wy, wx + ww, wy + wh), fill=_pick(rng, SKY, 20), outline=(245, 245, 245), width=6)
        draw.line([(wx + ww / 2, wy), (wx + ww / 2, wy + wh)], fill=(245, 245, 245), width=5)
    for _ in range(int(rng.integers(0, 3))):
        px, py, ps = (
            width * rng.uniform(0.05, 0.85),
            floor * rng.uniform(0.1, 0.4),
            width * rng.uniform(0.08, 0.16),
        )
        draw.rectangle(
            (px, py, px + ps, py + ps * 0.75), fill=_pick(rng, FOOD + SKY, 40), outline=(60, 40, 20), width=4
        )
    sofa = _pick(rng, SURFACES + FUR, 20)
    sx, sw, sy = (
        width * rng.uniform(0.0, 0.5),
        width * rng.uniform(0.35, 0.6),
        floor - height * rng.uniform(0.15, 0.3),
    )
    bottom = floor + height * 0.08
    draw.rounded_rectangle((sx, sy, sx + sw, bottom), radius=int(height * 0.04), fill=sofa)
    for arm in (sx - width * 0.03, sx + sw - width * 0.05):
        draw.rounded_rectangle(
            (arm, sy + height * 0.08, arm + width * 0.08, bottom), radius=10, fill=_mix(sofa, BLACK, 0.15)
        )
    if rng.random() < 0.6:
        lx, shade = width * rng.uniform(0.6, 0.95), _pick(rng, SURFACES, 20)
        draw.line([(lx, floor + 10), (lx, floor - height * 0.35)], fill=(40, 40, 40), width=4)
        low, high = floor - height * 0.3, floor - height * 0.42
        draw.polygon([(lx - 30, low), (lx + 30, low), (lx + 18, high), (lx - 18, high)], fill=shade)


def _sign(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a sign with lines of letter-like strokes, on a brick wall or in a landscape."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    if rng.random() < 0.5:
        brick = _pick(rng, ((160, 70, 50), (190, 170, 140), (120, 120, 120)), 20)
        draw.rectangle((0, 0, width, height), fill=_mix(brick, (200, 200, 200), 0.3))
        bh = int(rng.integers(24, 48))
        for row, y in enumerate(range(0, height, bh)):
            for x in range(-(row % 2) * bh, width, bh * 2):
                draw.rectangle((x + 2, y + 2, x + bh * 2 - 2, y + bh - 2), fill=_jitter(rng, brick, 6))
    else:
        _landscape(rng, canvas)
    sw, sh = width * rng.uniform(0.4, 0.8), height * rng.uniform(0.2, 0.45)
    sx, sy = (width - sw) * rng.uniform(0.1, 0.9), (height - sh) * rng.uniform(0.1, 0.6)
    if rng.random() < 0.5:
        draw.rectangle((sx + sw / 2 - 8, sy + sh, sx + sw / 2 + 8, height), fill=(110, 110, 115))
    board = _pick(rng, ((30, 110, 60), (240, 240, 235), (30, 60, 150), (200, 40, 40), (250, 200, 40)), 10)
    draw.rectangle((sx, sy, sx + sw, sy + sh), fill=board, outline=_mix(board, WHITE, 0.7), width=5)
    ink = (20, 20, 20) if sum(board) > 450 else (245, 245, 245)
    lines = int(rng.integers(2, 7))
    glyph = sh / (lines + 1) * 0.7
    for line in range(lines):
        for i in range(int(sw * 0.84 / (glyph * 0.75))):
            if rng.random() < 0.15:
                continue  # a space between words
            origin = (sx + sw * 0.08 + i * glyph * 0.75, sy + glyph / 0.7 * (line + 0.5))
            strokes = rng.uniform(0, 1, (int(rng.integers(2, 5)), 2)) * (glyph * 0.55, glyph) + origin
            draw.line([(float(x), float(y)) for x, y in strokes], fill=ink, width=max(1, int(glyph / 7)))


def _pet(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a furry animal with head, ears, eyes and tail on a floor or lawn."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    _surface(rng, draw, (0, 0, width, height))
    fur, eye = _pick(rng, FUR, 20), _pick(rng, ((40, 30, 20), (60, 120, 60), (160, 120, 30)), 10)
    cx, cy, r = (
        width * rng.uniform(0.35, 0.65),
        height * rng.uniform(0.45, 0.7),
        min(width, height) * rng.uniform(0.2, 0.32),
    )
    draw.polygon(_blob(rng, cx, cy, r, 0.15), fill=fur)
    draw.line(
        [(cx + r * 0.8, cy), (cx + r * 1.5, cy - r * rng.uniform(-0.5, 0.8))], fill=fur, width=int(r * 0.15)
    )
    hx, hy, hr = cx - r * rng.uniform(0.5, 0.9), cy - r * rng.uniform(0.6, 1.0), r * rng.uniform(0.45, 0.6)
    for side in (-1, 1):
        ear = [
            (hx + side * hr * 0.9, hy - hr * 0.2),
            (hx + side * hr * 0.2, hy - hr * 0.8),
            (hx + side * hr * 0.8, hy - hr * 1.4),
        ]
        draw.polygon(ear, fill=_mix(fur, BLACK, 0.15))
    _disc(draw, (hx, hy), (hr, hr), fur)
    for _ in range(int(rng.integers(60, 200))):
        angle, distance = rng.uniform(0, 2 * math.pi), rng.uniform(0, r)
        px, py = cx + distance * math.cos(angle), cy + distance * math.sin(angle)
        draw.line(
            [(px, py), (px + rng.normal(0, 6), py + rng.uniform(3, 10))], fill=_jitter(rng, fur, 35), width=1
        )
    for side in (-1, 1):
        _disc(draw, (hx + side * hr * 0.38, hy - hr * 0.1), (hr * 0.13, hr * 0.13), eye)
    _disc(draw, (hx, hy + hr * 0.31), (hr * 0.1, hr * 0.07), (30, 20, 20))


def _car(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a car on a road in front of a row of buildings."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    road = int(height * rng.uniform(0.5, 0.7))
    draw.rectangle((0, 0, width, road), fill=_pick(rng, SKY, 20))
    x = 0.0
    while x < width:
        bw, bh = width * rng.uniform(0.08, 0.2), road * rng.uniform(0.2, 0.8)
        draw.rectangle((x, road - bh, x + bw, road), fill=_pick(rng, SURFACES, 25))
        x += bw + rng.uniform(0, width * 0.05)
    draw.rectangle((0, road, width, height), fill=_jitter(rng, (85, 85, 90), 20))
    lane = (road + height) / 2
    for lx in range(0, width, 80):
        draw.rectangle((lx, lane - 3, lx + 40, lane + 3), fill=(230, 230, 220))
    body, cw = _pick(rng, CARS, 15), width * rng.uniform(0.4, 0.7)
    ch = cw * 0.28
    cx, cy = width * rng.uniform(0.05, 0.95) - cw / 2, road + (height - road) * rng.uniform(0.2, 0.6) - ch
    for inset, roof, fill in ((0.0, 0.8, body), (0.05, 0.65, (60, 75, 90))):  # the cabin, then its windows
        cabin = [
            (0.2 + inset, 0),
            (0.3 + inset * 0.6, -roof),
            (0.7 - inset * 0.4, -roof),
            (0.82 - inset * 1.2, 0),
        ]
        draw.polygon([(cx + cw * u, cy + ch * v) for u, v in cabin], fill=fill)
    draw.rounded_rectangle((cx, cy, cx + cw, cy + ch), radius=int(ch * 0.3), fill=body)
    for wx in (cx + cw * 0.2, cx + cw * 0.8):
        _disc(draw, (wx, cy + ch), (ch * 0.45, ch * 0.45), (20, 20, 20))
        _disc(draw, (wx, cy + ch), (ch * 0.22, ch * 0.22), (170, 170, 175))
    draw.ellipse((cx + cw * 0.93, cy + ch * 0.2, cx + cw, cy + ch * 0.45), fill=(250, 240, 200))


SCENES: dict[str, tuple[Scene, ...]] = {
    "drugs": (_drugs,),
    "other": (_food, _landscape, _room, _sign, _pet, _car),
}


# --------------------------------------------------------------------------------------------- photos


def _output_size(rng: np.random.Generator) -> tuple[int, int]:
    """Pick an output size of 0.3-2 megapixels with a common, slightly varied aspect ratio."""
    pixels = rng.uniform(MIN_PIXELS * 1.02, MAX_PIXELS * 0.98)
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))] * rng.uniform(0.97, 1.03)
    width = round(math.sqrt(pixels * aspect))
    return width, round(pixels / width)


def _camera(rng: np.random.Generator, canvas: Image.Image) -> Image.Image:
    """Apply what a camera adds: blur, exposure, colour cast, uneven light, vignetting and noise."""
    if rng.random() < 0.35:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
    # Exposure and colour cast as one lookup table per channel, which Pillow applies in C.
    exposure = rng.uniform(0.75, 1.25) * rng.uniform(0.92, 1.08, 3)
    canvas = canvas.point([min(255, int(v * gain)) for gain in exposure for v in range(256)])
    # Uneven light and vignetting: a smooth gain map of at most 1, computed small and stretched.
    xs, ys = (
        np.linspace(-1, 1, 48, dtype=np.float32)[None, :],
        np.linspace(-1, 1, 36, dtype=np.float32)[:, None],
    )
    angle = rng.uniform(0, 2 * math.pi)
    gain = 1 - rng.uniform(0, 0.35) * (1 + math.cos(angle) * xs + math.sin(angle) * ys) / 2
    gain *= 1 - rng.uniform(0, 0.45) * (xs * xs + ys * ys) / 2
    light = Image.fromarray((gain * 255).astype(np.uint8)).resize(canvas.size, Image.Resampling.BILINEAR)
    canvas = ImageChops.multiply(canvas, Image.merge("RGB", (light, light, light)))
    noise = rng.standard_normal(canvas.size[::-1], dtype=np.float32) * np.float32(rng.uniform(1, 7)) + 128
    grain = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
    return ImageChops.add(canvas, Image.merge("RGB", (grain, grain, grain)), offset=-128)


def render_photo(cls: str, rng: np.random.Generator) -> Image.Image:
    """Render one RGB photo of class cls ('drugs' or 'other'), 0.3-2 megapixels, in memory."""
    if cls not in SCENES:
        raise UserError(f"unknown sample class {cls!r}: choose one of {', '.join(CLASS_NAMES)}")
    width, height = _output_size(rng)
    scale = min(1.0, math.sqrt(CANVAS_PIXELS / (width * height)))
    canvas = Image.new("RGB", (round(width * scale), round(height * scale)))
    SCENES[cls][int(rng.integers(len(SCENES[cls])))](rng, canvas)
    photo = _camera(rng, canvas)
    return photo if photo.size == (width, height) else photo.resize((width, height), BICUBIC)


def _jpeg(cls: str, rng: np.random.Generator) -> bytes:
    """Render one photo of class cls and encode it as a JPEG of random quality."""
    photo = render_photo(cls, rng)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------- files


def _write(out: Path, jobs: list[tuple[str, str, np.random.Generator]]) -> dict[str, int]:
    """Render and write each (file name under out, class, generator) job; return counts per class."""
    if out.exists() and not out.is_dir():
        raise UserError(f"cannot write sample images to {out}: it is a file; choose a folder")
    planned = {name for name, _, _ in jobs}
    stale = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) if out.is_dir() else []
    stale = [name for name in stale if name not in planned]
    if stale:
        raise UserError(
            f"cannot write sample images to {out}: it already holds {len(stale)} other images (e.g. "
            f"{stale[0]}) that would mix with the new set; delete them or choose an empty folder"
        )
    counts = dict.fromkeys(CLASS_NAMES, 0)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, cls, rng in tqdm(jobs, desc="sample-data", unit="img"):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(_jpeg(cls, rng))
            counts[cls] += 1
    except OSError as exc:
        raise UserError(
            f"cannot write sample images to {out}: {exc.strerror}; choose a writable folder"
        ) from exc
    return counts


def _check_seed(seed: int) -> None:
    """Reject a seed that numpy's SeedSequence cannot take."""
    if seed < 0:
        raise UserError(f"--seed must be 0 or more, got {seed}")


def write_labelled(out: Path, per_class: int, seed: int) -> dict[str, int]:
    """Write per_class photos of each class as out/<class>/<class>-NNNNNN.jpg; return counts per class."""
    if per_class < 1:
        raise UserError(f"--per-class must be at least 1, got {per_class}")
    _check_seed(seed)
    jobs = [
        (f"{cls}/{cls}-{i:06d}.jpg", cls, np.random.default_rng([seed, LABELLED_STREAM, c, i]))
        for c, cls in enumerate(CLASS_NAMES)
        for i in range(1, per_class + 1)
    ]
    return _write(out, jobs)


def write_unlabelled(out: Path, count: int, seed: int) -> dict[str, int]:
    """Write count photos of mixed classes as out/img-NNNNNN.jpg and their classes in out/_truth.csv."""
    if count < 0:
        raise UserError(f"--unlabelled must be 0 or more, got {count}")
    _check_seed(seed)
    jobs = []
    for i in range(1, count + 1):
        rng = np.random.default_rng([seed, UNLABELLED_STREAM, i])
        jobs.append((f"img-{i:06d}.jpg", CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))], rng))
    counts = _write(out, jobs)
    with (out / TRUTH_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "class"])
        writer.writerows((name, cls) for name, cls, _ in jobs)
    return counts
