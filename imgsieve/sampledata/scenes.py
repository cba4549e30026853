"""The `other` class of sample photos (food, landscapes, rooms, signs, pets, cars) and the scene table."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from imgsieve.sampledata.palette import (
    BLACK,
    CARS,
    FOOD,
    FUR,
    SKY,
    SURFACES,
    WHITE,
    Scene,
    blob,
    disc,
    jitter,
    mix,
    pick,
    surface,
)
from imgsieve.sampledata.pills import drugs


def food(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a plate of food on a table, with cutlery and sometimes a glass."""
    width, height = canvas.size
    side = min(width, height)
    draw = ImageDraw.Draw(canvas)
    surface(rng, draw, (0, 0, width, height))
    cx, cy, r = (
        width * rng.uniform(0.35, 0.65),
        height * rng.uniform(0.35, 0.65),
        side * rng.uniform(0.3, 0.45),
    )
    plate = pick(rng, ((245, 245, 240), (240, 232, 210), (60, 90, 140), (30, 30, 30)), 10)
    disc(draw, (cx + 6, cy + 10), (r, r), mix(plate, BLACK, 0.45))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=plate, outline=mix(plate, BLACK, 0.2), width=2)
    draw.ellipse(
        (cx - r * 0.75, cy - r * 0.75, cx + r * 0.75, cy + r * 0.75),
        outline=mix(plate, BLACK, 0.12),
        width=2,
    )
    for _ in range(int(rng.integers(2, 6))):
        angle, distance, fr = (
            rng.uniform(0, 2 * math.pi),
            rng.uniform(0, r * 0.45),
            r * rng.uniform(0.15, 0.35),
        )
        fx, fy, food = cx + distance * math.cos(angle), cy + distance * math.sin(angle), pick(rng, FOOD, 25)
        draw.polygon(blob(rng, fx, fy, fr, 0.25), fill=food)
        for px, py, qx, qy in rng.normal(
            (fx, fy, 0, 0), (fr * 0.4, fr * 0.4, fr * 0.15, fr * 0.15), (int(rng.integers(5, 25)), 4)
        ):
            draw.line([(px, py), (px + qx, py + qy)], fill=jitter(rng, food, 40), width=2)
    for k in range(int(rng.integers(0, 3))):
        x = cx + (r + side * (0.05 + 0.05 * k)) * (1 if k % 2 == 0 else -1)
        draw.rounded_rectangle(
            (x, cy - r * 0.9, x + side * 0.025, cy + r * 0.9),
            radius=4,
            fill=jitter(rng, (190, 190, 195), 15),
        )
    if rng.random() < 0.5:
        gx, gy, gr = (
            width * rng.uniform(0.05, 0.95),
            height * rng.uniform(0.05, 0.3),
            side * rng.uniform(0.07, 0.12),
        )
        draw.ellipse((gx - gr, gy - gr, gx + gr, gy + gr), outline=(230, 235, 240), width=3)


def landscape(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a sky with clouds, mountain ridges, grass or sand, and trees."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    horizon = int(height * rng.uniform(0.3, 0.7))
    top, low = pick(rng, SKY, 20), pick(rng, SKY, 20)
    for row in range(horizon):
        draw.line([(0, row), (width, row)], fill=mix(top, low, row / horizon))
    for _ in range(int(rng.integers(0, 6))):
        x, y, s = rng.uniform(0, width), rng.uniform(0, horizon * 0.7), rng.uniform(0.05, 0.15) * width
        for _ in range(4):
            disc(draw, (x, y), (s, s * 0.4), jitter(rng, (245, 245, 248), 8))
            x, y, s = x + rng.normal(0, s * 0.6), y + rng.normal(0, s * 0.2), s * rng.uniform(0.6, 1.0)
    for layer in range(int(rng.integers(1, 4))):
        ridge = horizon - np.abs(np.cumsum(rng.normal(0, height * 0.03, 40))) - layer * height * 0.03
        rock = mix(pick(rng, ((90, 100, 120), (70, 110, 70), (150, 140, 130))), low, 0.5 - layer * 0.15)
        outline = list(zip(np.linspace(0, width, 40).tolist(), ridge.tolist(), strict=True))
        draw.polygon([(0, horizon), *outline, (width, horizon)], fill=rock)
    ground = pick(rng, ((70, 130, 50), (150, 120, 70), (220, 200, 150), (240, 240, 245), (50, 90, 140)), 20)
    draw.rectangle((0, horizon, width, height), fill=ground)
    for _ in range(int(rng.integers(20, 120))):
        x, y = rng.uniform(0, width), rng.uniform(horizon, height)
        draw.line(
            [(x, y), (x + rng.normal(0, 10), y + rng.uniform(-6, 0))], fill=jitter(rng, ground, 30), width=2
        )
    for _ in range(int(rng.integers(0, 7))):
        x, y = rng.uniform(0, width), rng.uniform(horizon, height)
        s = (y - horizon + 10) * rng.uniform(0.2, 0.5)  # nearer trees are bigger
        draw.rectangle((x - s * 0.06, y - s * 0.5, x + s * 0.06, y), fill=(80, 55, 35))
        draw.polygon(
            blob(rng, x, y - s * 0.8, s * 0.4, 0.15),
            fill=pick(rng, ((40, 90, 40), (70, 120, 50), (140, 110, 40)), 15),
        )


def room(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a wall with a window and pictures, a floor, a sofa and a lamp."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    floor = int(height * rng.uniform(0.55, 0.8))
    draw.rectangle((0, 0, width, floor), fill=pick(rng, SURFACES, 20))
    surface(rng, draw, (0, floor, width, height))
    if rng.random() < 0.7:
        wx, wy = width * rng.uniform(0.05, 0.6), height * rng.uniform(0.05, 0.15)
        ww, wh = width * rng.uniform(0.2, 0.35), floor * rng.uniform(0.4, 0.6)
        draw.rectangle((wx, wy, wx + ww, wy + wh), fill=pick(rng, SKY, 20), outline=(245, 245, 245), width=6)
        draw.line([(wx + ww / 2, wy), (wx + ww / 2, wy + wh)], fill=(245, 245, 245), width=5)
    for _ in range(int(rng.integers(0, 3))):
        px, py, ps = (
            width * rng.uniform(0.05, 0.85),
            floor * rng.uniform(0.1, 0.4),
            width * rng.uniform(0.08, 0.16),
        )
        draw.rectangle(
            (px, py, px + ps, py + ps * 0.75), fill=pick(rng, FOOD + SKY, 40), outline=(60, 40, 20), width=4
        )
    sofa = pick(rng, SURFACES + FUR, 20)
    sx, sw, sy = (
        width * rng.uniform(0.0, 0.5),
        width * rng.uniform(0.35, 0.6),
        floor - height * rng.uniform(0.15, 0.3),
    )
    bottom = floor + height * 0.08
    draw.rounded_rectangle((sx, sy, sx + sw, bottom), radius=int(height * 0.04), fill=sofa)
    for arm in (sx - width * 0.03, sx + sw - width * 0.05):
        draw.rounded_rectangle(
            (arm, sy + height * 0.08, arm + width * 0.08, bottom), radius=10, fill=mix(sofa, BLACK, 0.15)
        )
    if rng.random() < 0.6:
        lx, shade = width * rng.uniform(0.6, 0.95), pick(rng, SURFACES, 20)
        draw.line([(lx, floor + 10), (lx, floor - height * 0.35)], fill=(40, 40, 40), width=4)
        low, high = floor - height * 0.3, floor - height * 0.42
        draw.polygon([(lx - 30, low), (lx + 30, low), (lx + 18, high), (lx - 18, high)], fill=shade)


def sign(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a sign with lines of letter-like strokes, on a brick wall or in a landscape."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    if rng.random() < 0.5:
        brick = pick(rng, ((160, 70, 50), (190, 170, 140), (120, 120, 120)), 20)
        draw.rectangle((0, 0, width, height), fill=mix(brick, (200, 200, 200), 0.3))
        bh = int(rng.integers(24, 48))
        for row, y in enumerate(range(0, height, bh)):
            for x in range(-(row % 2) * bh, width, bh * 2):
                draw.rectangle((x + 2, y + 2, x + bh * 2 - 2, y + bh - 2), fill=jitter(rng, brick, 6))
    else:
        landscape(rng, canvas)
    sw, sh = width * rng.uniform(0.4, 0.8), height * rng.uniform(0.2, 0.45)
    sx, sy = (width - sw) * rng.uniform(0.1, 0.9), (height - sh) * rng.uniform(0.1, 0.6)
    if rng.random() < 0.5:
        draw.rectangle((sx + sw / 2 - 8, sy + sh, sx + sw / 2 + 8, height), fill=(110, 110, 115))
    board = pick(rng, ((30, 110, 60), (240, 240, 235), (30, 60, 150), (200, 40, 40), (250, 200, 40)), 10)
    draw.rectangle((sx, sy, sx + sw, sy + sh), fill=board, outline=mix(board, WHITE, 0.7), width=5)
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


def pet(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a furry animal with head, ears, eyes and tail on a floor or lawn."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    surface(rng, draw, (0, 0, width, height))
    fur, eye = pick(rng, FUR, 20), pick(rng, ((40, 30, 20), (60, 120, 60), (160, 120, 30)), 10)
    cx, cy, r = (
        width * rng.uniform(0.35, 0.65),
        height * rng.uniform(0.45, 0.7),
        min(width, height) * rng.uniform(0.2, 0.32),
    )
    draw.polygon(blob(rng, cx, cy, r, 0.15), fill=fur)
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
        draw.polygon(ear, fill=mix(fur, BLACK, 0.15))
    disc(draw, (hx, hy), (hr, hr), fur)
    for _ in range(int(rng.integers(60, 200))):
        angle, distance = rng.uniform(0, 2 * math.pi), rng.uniform(0, r)
        px, py = cx + distance * math.cos(angle), cy + distance * math.sin(angle)
        draw.line(
            [(px, py), (px + rng.normal(0, 6), py + rng.uniform(3, 10))], fill=jitter(rng, fur, 35), width=1
        )
    for side in (-1, 1):
        disc(draw, (hx + side * hr * 0.38, hy - hr * 0.1), (hr * 0.13, hr * 0.13), eye)
    disc(draw, (hx, hy + hr * 0.31), (hr * 0.1, hr * 0.07), (30, 20, 20))


def car(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw a car on a road in front of a row of buildings."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    road = int(height * rng.uniform(0.5, 0.7))
    draw.rectangle((0, 0, width, road), fill=pick(rng, SKY, 20))
    x = 0.0
    while x < width:
        bw, bh = width * rng.uniform(0.08, 0.2), road * rng.uniform(0.2, 0.8)
        draw.rectangle((x, road - bh, x + bw, road), fill=pick(rng, SURFACES, 25))
        x += bw + rng.uniform(0, width * 0.05)
    draw.rectangle((0, road, width, height), fill=jitter(rng, (85, 85, 90), 20))
    lane = (road + height) / 2
    for lx in range(0, width, 80):
        draw.rectangle((lx, lane - 3, lx + 40, lane + 3), fill=(230, 230, 220))
    body, cw = pick(rng, CARS, 15), width * rng.uniform(0.4, 0.7)
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
        disc(draw, (wx, cy + ch), (ch * 0.45, ch * 0.45), (20, 20, 20))
        disc(draw, (wx, cy + ch), (ch * 0.22, ch * 0.22), (170, 170, 175))
    draw.ellipse((cx + cw * 0.93, cy + ch * 0.2, cx + cw, cy + ch * 0.45), fill=(250, 240, 200))


SCENES: dict[str, tuple[Scene, ...]] = {
    "drugs": (drugs,),
    "other": (food, landscape, room, sign, pet, car),
}
