"""The `drugs` class of sample photos: pills, capsules and blister packs scattered, piled or held."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from imgsieve.sampledata.palette import (
    BICUBIC,
    BLACK,
    PILL_COLORS,
    SKIN,
    WHITE,
    disc,
    jitter,
    mix,
    pick,
    surface,
)

LAYOUTS, LAYOUT_WEIGHTS = ("scatter", "pile", "blister", "hand", "closeup"), (0.35, 0.2, 0.2, 0.1, 0.15)
MAX_PILLS = 120
PILL_AREA = 1.6  # a pill's mean area over its width squared, round, oval and capsule mixed
ROTATIONS = 24


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
    color = jitter(rng, (215, 150, 30), 25) if kind == "softgel" else pick(rng, PILL_COLORS, 12)
    rim = mix(color, BLACK, 0.25)
    if kind == "capsule":
        radius = max(1, (w - 3) // 2)  # Pillow's partial rounded corners need 2 * radius + 2 <= height
        draw.rounded_rectangle(box, radius=radius, fill=pick(rng, PILL_COLORS, 12), outline=rim)
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
                (2 + bevel, 2 + bevel, length + 1 - bevel, w + 1 - bevel), outline=mix(color, WHITE, 0.3)
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
        disc(draw, (hx, hy), (length * scale, w * scale), mix(color, WHITE, shine))
    return sprite


def _blister(rng: np.random.Generator, size: float, light: float) -> Image.Image:
    """Draw a foil blister pack with a grid of one kind of pill, some pockets empty."""
    rows, cols, cell = int(rng.integers(2, 4)), int(rng.integers(3, 6)), size * 1.5
    pack = Image.new("RGBA", (int(cols * cell + cell * 0.6), int(rows * cell + cell * 0.6)), (0, 0, 0, 0))
    draw = ImageDraw.Draw(pack)
    foil = jitter(rng, [(200, 200, 205), (235, 235, 230), (205, 180, 120)][int(rng.integers(3))], 10)
    draw.rounded_rectangle(
        (0, 0, pack.width - 1, pack.height - 1),
        radius=int(cell * 0.2),
        fill=foil,
        outline=mix(foil, BLACK, 0.3),
    )
    pill = _pill(rng, size, light)
    for r in range(rows):
        for c in range(cols):
            x, y = cell * (0.3 + c), cell * (0.3 + r)
            draw.ellipse(
                (x + 2, y + 2, x + cell - 3, y + cell - 3),
                fill=mix(foil, WHITE, 0.5),
                outline=mix(foil, BLACK, 0.35),
            )
            if rng.random() < 0.85:
                pack.alpha_composite(
                    pill, (int(x + (cell - pill.width) / 2), int(y + (cell - pill.height) / 2))
                )
    return pack


def _hand(rng: np.random.Generator, size: float) -> Image.Image:
    """Draw an open palm with four fingers and a thumb, to hold pills."""
    skin = pick(rng, SKIN, 12)
    w, h = int(size * 1.6), int(size * 1.9)
    hand = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(hand)
    draw.ellipse((w * 0.12, h * 0.35, w * 0.88, h * 0.98), fill=skin)
    for i in range(4):
        top, left = h * (0.05 + 0.04 * abs(i - 1.5)), w * (0.17 + 0.17 * i)
        draw.rounded_rectangle((left, top, left + w * 0.15, h * 0.6), radius=int(w * 0.07), fill=skin)
    draw.rounded_rectangle(
        (0, h * 0.45, w * 0.35, h * 0.62), radius=int(w * 0.08), fill=mix(skin, BLACK, 0.05)
    )
    return hand


def drugs(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Draw pills scattered, piled, in blister packs or in a hand, with soft shadows."""
    width, height = canvas.size
    side = min(width, height)
    surface(rng, ImageDraw.Draw(canvas), (0, 0, width, height))
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
