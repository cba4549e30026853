"""What a camera adds to a rendered scene: output size, blur, exposure, uneven light and noise."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops, ImageFilter

MIN_PIXELS, MAX_PIXELS = 300_000, 2_000_000
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3, 9 / 16, 5 / 4)


def output_size(rng: np.random.Generator) -> tuple[int, int]:
    """Pick an output size of 0.3-2 megapixels with a common, slightly varied aspect ratio."""
    pixels = rng.uniform(MIN_PIXELS * 1.02, MAX_PIXELS * 0.98)
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))] * rng.uniform(0.97, 1.03)
    width = round(math.sqrt(pixels * aspect))
    return width, round(pixels / width)


def camera(rng: np.random.Generator, canvas: Image.Image) -> Image.Image:
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
