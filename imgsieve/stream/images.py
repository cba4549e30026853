"""Vet and optionally shrink encoded images on a consumer, before they go to the model server.

The model decodes images in-graph with `tf.io.decode_image`, which reads JPEG, PNG, GIF and BMP
(TensorFlow 2.21 also reads WebP, older TensorFlow Serving builds do not; these four every build
reads). One bad image in a batch makes the server reject the whole request, so the consumers, the
CPU tier, check each image first: `inspect` sniffs the format from the magic bytes, reads the
dimensions from the header without decoding pixels (so a decompression bomb costs nothing), and
only then decodes the image to catch truncation. `shrink` turns a photo much larger than the model's
input into a smaller JPEG, which is cheaper to send and to decode on the server.

Neither function applies EXIF orientation or colour profiles: the model does not either, so a
shrunk image shows the model the same pixels as the original would.
"""

from __future__ import annotations

import io
import math
import re
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

JPEG, PNG, GIF, BMP = "JPEG", "PNG", "GIF", "BMP"
MODEL_FORMATS = f"{JPEG}, {PNG}, {GIF}, {BMP}"
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG", PNG),
    (b"GIF8", GIF),
    (b"BM", BMP),
)
# Images in formats the model cannot read, recognised so that the reason names them.
OTHER_IMAGE_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (8, b"WEBP", "WEBP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
    (0, b"\xff\x0a", "JPEG XL"),
    (4, b"JXL ", "JPEG XL"),
    (4, b"jP  ", "JPEG 2000"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"8BPS", "PSD"),
)
# What a file that is no image at all looks like, for the reason: often an error page saved as .jpg.
LOOKS_LIKE: tuple[tuple[re.Pattern[bytes], str], ...] = (
    (re.compile(rb"^\s*(<!doctype html|<html|<head|<body)", re.IGNORECASE), "HTML"),
    (re.compile(rb"^\s*(<\?xml|<svg)", re.IGNORECASE), "XML or SVG"),
    (re.compile(rb"^\s*[{\[]"), "JSON"),
    (re.compile(rb"^%PDF"), "PDF"),
    (re.compile(rb"^PK\x03\x04"), "a ZIP archive"),
    (re.compile(rb"^\x1f\x8b"), "gzip data"),
    (re.compile(rb"^[\t\n\r\x20-\x7e]+$"), "text"),
)
SNIFF_BYTES = 4
# tf.io.decode_bmp reads only these BMP variants (BI_RGB and BI_BITFIELDS, 8/24/32 bits per pixel).
BMP_BITS = (8, 24, 32)
BMP_COMPRESSIONS = (0, 3)
BMP_INFO_HEADER = 40
BMP_HEADER_END = 34  # through the compression field
# JPEG start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC), which carry the image size.
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Shrink a photo whose shortest side exceeds SHRINK_ABOVE x the model input to SHRINK_TO x it:
# enough pixels for the model's own antialiased resize, far fewer to send and decode. Below 4x,
# libjpeg cannot decode at half size, and shrinking costs the consumer more CPU than the server saves
# (measured with scripts/bench_shrink.py).
SHRINK_ABOVE = 4.0
SHRINK_TO = 2.0


class BadImage(Exception):  # noqa: N818 - the stream's API names it so
    """An image the model cannot read; `reason` says what is wrong and why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"cannot read {name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    """What inspect found: the format as sniffed, the size in pixels and the number of frames."""

    format: str
    width: int
    height: int
    frames: int


def _size_text(n: int) -> str:
    """Format a byte count for a reason: '31.5 MB', '12 KB', '7 bytes'."""
    if n >= 1_000_000:
        return f"{round(n / 1e6, 1):g} MB"
    if n >= 1_000:
        return f"{round(n / 1e3, 1):g} KB"
    return f"{n} bytes"


def _megapixels(n: int) -> str:
    """Format a pixel count in megapixels for a reason: '900 MP', '0.25 MP'."""
    return f"{round(n / 1e6, 2):g} MP"


def _sniff(data: bytes, name: str) -> str:
    """Return the model format that data's magic bytes announce, or raise BadImage saying what it is."""
    for magic, fmt in MAGIC:
        if data.startswith(magic):
            return fmt
    for offset, magic, other in OTHER_IMAGE_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            raise BadImage(name, f"unsupported format {other} (the model reads {MODEL_FORMATS})")
    head = data[:SNIFF_BYTES].hex(" ")
    looks = next((what for pattern, what in LOOKS_LIKE if pattern.match(data[:512])), None)
    hint = f": looks like {looks}" if looks else ""
    raise BadImage(name, f"not a JPEG, PNG, GIF or BMP image (first bytes {head}{hint})")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Return (width, height) from a JPEG's first SOF marker, walking the segments before it."""
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in {0xFF, 0x01} or 0xD0 <= marker <= 0xD8:
            pos += 1 if marker == 0xFF else 2  # fill byte or a marker without a length
            continue
        if marker in SOF_MARKERS:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Return (width, height) as fmt's header states it, without decoding; None if unreadable."""
    try:
        if fmt == PNG:
            return struct.unpack_from(">II", data, 16) if data[12:16] == b"IHDR" else None
        if fmt == GIF:
            return struct.unpack_from("<HH", data, 6)
        if fmt == BMP:
            width, height = struct.unpack_from("<ii", data, 18)
            return abs(width), abs(height)
        return _jpeg_size(data)
    except struct.error:
        return None


def _check_pixels(width: int, height: int, max_pixels: int, name: str) -> None:
    """Raise BadImage if width x height exceeds max_pixels."""
    if width * height > max_pixels:
        raise BadImage(
            name,
            f"decompression bomb: {width}x{height} = {_megapixels(width * height)} "
            f"> limit {_megapixels(max_pixels)}",
        )


def _open(data: bytes, fmt: str, name: str) -> Image.Image:
    """Open data lazily with only fmt's decoder, reading the header but no pixels."""
    with warnings.catch_warnings():
        # The caller has checked the size against its own limit; Pillow's global one must not decide.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=[fmt])
        except Image.DecompressionBombError as exc:
            # Reached only when max_pixels exceeds Pillow's own limit or the header gave no size.
            raise BadImage(name, f"decompression bomb: {exc}") from exc
        except Exception as exc:
            # Pillow raises many types for a bad header; any of them means the model fails too.
            raise BadImage(name, f"corrupt {fmt} header ({type(exc).__name__}: {exc})") from exc


def _check_bmp(data: bytes, name: str) -> None:
    """Raise BadImage for BMP variants that tf.io.decode_bmp rejects or misreads."""
    if len(data) < BMP_HEADER_END:
        raise BadImage(name, f"truncated BMP (header cut at {len(data)} bytes)")
    header_size, _width, _height, _planes, bits, compression = struct.unpack_from("<IiiHHI", data, 14)
    if header_size < BMP_INFO_HEADER or bits not in BMP_BITS or compression not in BMP_COMPRESSIONS:
        variant = (
            "OS/2 header" if header_size < BMP_INFO_HEADER else f"{bits} bits, compression {compression}"
        )
        raise BadImage(
            name, f"unsupported BMP variant ({variant}; the model reads uncompressed 8, 24, 32 bit BMP)"
        )


def inspect(data: bytes, name: str, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Return data's format, size and frames, or raise BadImage if the model could not read it."""
    if not data:
        raise BadImage(name, "empty file (0 bytes)")
    if len(data) > max_bytes:
        raise BadImage(name, f"too large: {_size_text(len(data))} > limit {_size_text(max_bytes)}")
    fmt = _sniff(data, name)
    stated = _header_size(data, fmt)
    if stated:
        _check_pixels(*stated, max_pixels, name)
    if fmt == BMP:
        _check_bmp(data, name)
    with _open(data, fmt, name) as image:
        try:
            frames = int(getattr(image, "n_frames", 1))
            # A GIF frame may reach beyond the screen size in the header, and then Pillow grows the size.
            width, height = image.size
            _check_pixels(width, height, max_pixels, name)
            if fmt == JPEG:
                # libjpeg still reads every entropy-coded block at 1/8 scale, so truncation is caught,
                # but skips most of the inverse DCT: about half the cost of a full-size decode.
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
        except BadImage:
            raise
        except Exception as exc:
            kind = "truncated" if "truncated" in str(exc) else "corrupt"
            raise BadImage(name, f"{kind} {fmt} ({type(exc).__name__}: {exc})") from exc
    # Pillow stops at the last image data, but libpng (and so the model) insists on the end chunk.
    if fmt == PNG and data.rfind(b"IEND") < 0:
        raise BadImage(name, "truncated PNG (no IEND chunk at the end)")
    return ImageInfo(fmt, width, height, frames)


def _to_8bit(image: Image.Image) -> Image.Image:
    """Return image as RGB or L with 8 bits per channel, in the colours the model's decoders give."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode == "LA":
        return image.convert("L")
    if image.mode.startswith("I"):
        # 16-bit greyscale PNG: keep the high byte, as the model's PNG decoder does, instead of clipping.
        return Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
    # P and PA go through their palette, CMYK through Pillow's inversion-aware conversion; alpha is
    # dropped, not composited, because the model's decoders drop it too.
    return image.convert("RGB")


def shrink(data: bytes, info: ImageInfo, target_side: int, quality: int = 90) -> bytes:
    """Return a smaller JPEG of an image much larger than target_side, else data unchanged."""
    short = min(info.width, info.height)
    goal = round(SHRINK_TO * target_side)
    if short <= SHRINK_ABOVE * target_side:
        return data
    scale = goal / short
    size = (max(1, round(info.width * scale)), max(1, round(info.height * scale)))
    image = _open(data, info.format, "image")
    with image:
        if info.format == JPEG:
            # DCT scaling: libjpeg decodes at 1/2, 1/4 or 1/8 size, never below the size asked for.
            image.draft(image.mode, (math.ceil(info.width * scale), math.ceil(info.height * scale)))
        small = _to_8bit(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    small.save(out, format=JPEG, quality=quality)
    shrunk = out.getvalue()
    return shrunk if len(shrunk) < len(data) else data
