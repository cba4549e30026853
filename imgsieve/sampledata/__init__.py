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
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from imgsieve.errors import UserError
from imgsieve.sampledata.camera import MAX_PIXELS, MIN_PIXELS, camera, output_size
from imgsieve.sampledata.palette import BICUBIC
from imgsieve.sampledata.scenes import SCENES

__all__ = [
    "CLASS_NAMES",
    "MAX_PIXELS",
    "MIN_PIXELS",
    "TRUTH_FILE",
    "render_photo",
    "write_labelled",
    "write_unlabelled",
]

CLASS_NAMES = ("drugs", "other")
TRUTH_FILE = "_truth.csv"
CANVAS_PIXELS = 500_000
JPEG_QUALITY = (70, 95)
# Separate seed streams, so the unlabelled set never repeats a labelled image of the same seed.
LABELLED_STREAM, UNLABELLED_STREAM = 0, 1


def render_photo(cls: str, rng: np.random.Generator) -> Image.Image:
    """Render one RGB photo of class cls ('drugs' or 'other'), 0.3-2 megapixels, in memory."""
    if cls not in SCENES:
        raise UserError(f"unknown sample class {cls!r}: choose one of {', '.join(CLASS_NAMES)}")
    width, height = output_size(rng)
    scale = min(1.0, math.sqrt(CANVAS_PIXELS / (width * height)))
    canvas = Image.new("RGB", (round(width * scale), round(height * scale)))
    SCENES[cls][int(rng.integers(len(SCENES[cls])))](rng, canvas)
    photo = camera(rng, canvas)
    return photo if photo.size == (width, height) else photo.resize((width, height), BICUBIC)


def _jpeg(cls: str, rng: np.random.Generator) -> bytes:
    """Render one photo of class cls and encode it as a JPEG of random quality."""
    photo = render_photo(cls, rng)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    return buffer.getvalue()


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
