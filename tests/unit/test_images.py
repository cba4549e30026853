"""Vetting and shrinking of encoded images on the consumer: each kind of bad input, each colour mode."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from imgsieve.stream.images import BadImage, ImageInfo, inspect, shrink

MAX_BYTES = 20_000_000
MAX_PIXELS = 40_000_000
BOMB_REASON = "decompression bomb: 30000x30000 = 900 MP > limit 40 MP"


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """Encode image in fmt with Pillow."""
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def photo(
    width: int, height: int, color: tuple[int, int, int] = (128, 128, 128), seed: int = 0
) -> Image.Image:
    """A colour with mild noise: compresses like a photo, keeps its mean colour."""
    noise = np.random.default_rng(seed).integers(-12, 13, (height, width, 1))
    return Image.fromarray(np.clip(np.array(color) + noise, 0, 255).astype(np.uint8))


def reason(data: bytes, name: str = "x.jpg", max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> str:
    """Return the reason inspect rejects data with."""
    with pytest.raises(BadImage) as caught:
        inspect(data, name, max_bytes, max_pixels)
    assert str(caught.value) == f"cannot read {name}: {caught.value.reason}"
    return caught.value.reason


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its length and a correct CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_empty_file() -> None:
    assert reason(b"") == "empty file (0 bytes)"


def test_over_the_size_limit() -> None:
    data = b"\xff\xd8\xff" + bytes(31_000_000)
    assert reason(data) == "too large: 31 MB > limit 20 MB"


def test_html_named_jpg_says_what_it_is() -> None:
    page = b"<html><head><title>403 Forbidden</title></head></html>"
    assert reason(page, "s3://b/k.jpg") == (
        "not a JPEG, PNG, GIF or BMP image (first bytes 3c 68 74 6d: looks like HTML)"
    )
    assert reason(b"  <!DOCTYPE html><html></html>").endswith(": looks like HTML)")


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [(b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>', "XML or SVG"),
     (b"%PDF-1.7 ...", "PDF"), (b'{"error": "not found"}', "JSON"), (b"hello, world\n", "text")],
)  # fmt: skip
def test_other_files_say_what_they_look_like(data: bytes, looks_like: str) -> None:
    assert reason(data).endswith(f": looks like {looks_like})")


def test_random_bytes() -> None:
    data = b"\x13\x37" + np.random.default_rng(1).bytes(1000)
    assert reason(data) == f"not a JPEG, PNG, GIF or BMP image (first bytes 13 37 {data[2:4].hex(' ')})"


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF"])
def test_formats_the_model_cannot_read(fmt: str) -> None:
    data = encode(photo(64, 48), fmt)
    assert reason(data) == f"unsupported format {fmt} (the model reads JPEG, PNG, GIF, BMP)"


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg(progressive: bool) -> None:
    data = encode(photo(400, 300), "JPEG", progressive=progressive)
    assert reason(data[: len(data) // 2]).startswith("truncated JPEG (OSError: image file is truncated")
    assert reason(data[: len(data) * 9 // 10]).startswith("truncated JPEG")
    assert reason(data[:-2]).startswith("truncated JPEG")


def test_truncated_png() -> None:
    data = encode(photo(400, 300), "PNG")
    assert reason(data[: len(data) // 2]).startswith("truncated PNG")
    assert reason(data[:-12]) == "truncated PNG (no IEND chunk at the end)"


def test_png_bomb_rejected_from_its_header() -> None:
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(3 * 30000 + 1))  # one row; the header alone must decide
    data = (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )
    assert reason(data, "bomb.png") == BOMB_REASON


def test_jpeg_gif_bmp_bombs_rejected_from_their_headers() -> None:
    small = photo(40, 30)
    jpeg = bytearray(encode(small, "JPEG"))
    sof = jpeg.index(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, sof + 5, 30000, 30000)
    gif = bytearray(encode(small.convert("P"), "GIF"))
    struct.pack_into("<HH", gif, 6, 30000, 30000)
    bmp = bytearray(encode(small, "BMP"))
    struct.pack_into("<ii", bmp, 18, 30000, -30000)
    for data in (jpeg, gif, bmp):
        assert reason(bytes(data)) == BOMB_REASON


def test_pillow_global_limit_does_not_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow would warn for 1200 > 1000 pixels
        assert inspect(encode(photo(40, 30), "PNG"), "x.png", MAX_BYTES, MAX_PIXELS).width == 40
    assert reason(encode(photo(50, 50), "PNG")).startswith("decompression bomb: Image size (2500 pixels)")


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "JPEG"), ("CMYK", "JPEG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("LA", "PNG"), ("P", "PNG"),
     ("1", "PNG"), ("P", "GIF"), ("RGB", "BMP"), ("RGBA", "BMP"), ("L", "BMP")],
)  # fmt: skip
def test_modes_the_model_reads_pass(mode: str, fmt: str) -> None:
    data = encode(photo(64, 48).convert(mode), fmt)
    assert inspect(data, f"x.{fmt.lower()}", MAX_BYTES, MAX_PIXELS) == ImageInfo(fmt, 64, 48, 1)


def test_sixteen_bit_png_passes() -> None:
    data = encode(Image.fromarray(np.full((48, 64), 40000, dtype=np.uint16)), "PNG")
    assert inspect(data, "x.png", MAX_BYTES, MAX_PIXELS) == ImageInfo("PNG", 64, 48, 1)


def test_animated_gif_counts_frames() -> None:
    frames = [photo(64, 48, (c, c, c)).convert("P") for c in (40, 120, 200)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    assert inspect(out.getvalue(), "x.gif", MAX_BYTES, MAX_PIXELS) == ImageInfo("GIF", 64, 48, 3)


def test_bmp_variant_the_model_cannot_read() -> None:
    data = encode(photo(64, 48).convert("1"), "BMP")
    assert reason(data, "x.bmp") == (
        "unsupported BMP variant (1 bits, compression 0; the model reads uncompressed 8, 24, 32 bit BMP)"
    )


def test_shrink_keeps_aspect_and_reduces_bytes() -> None:
    data = encode(photo(1600, 1000), "JPEG", quality=92)
    info = inspect(data, "x.jpg", MAX_BYTES, MAX_PIXELS)
    small = shrink(data, info, target_side=224)
    assert len(small) < len(data) / 3
    shrunk = inspect(small, "small.jpg", MAX_BYTES, MAX_PIXELS)
    assert (shrunk.format, shrunk.height) == ("JPEG", 448)
    assert shrunk.width / shrunk.height == pytest.approx(1.6, rel=0.01)


def test_shrink_leaves_images_near_the_model_size_alone() -> None:
    data = encode(photo(1200, 880), "JPEG")
    assert shrink(data, inspect(data, "x.jpg", MAX_BYTES, MAX_PIXELS), target_side=224) is data


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("P", "GIF"), ("RGB", "BMP")],
)
def test_shrink_keeps_colour(mode: str, fmt: str) -> None:
    original = photo(1400, 1000, (200, 40, 90)).convert(mode)
    data = encode(original, fmt)
    small = shrink(data, inspect(data, "x", MAX_BYTES, MAX_PIXELS), target_side=224)
    expected = np.asarray(original.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
    got = np.asarray(Image.open(io.BytesIO(small)).convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
    assert len(small) < len(data)
    np.testing.assert_allclose(got, expected, atol=4)


def test_shrink_scales_sixteen_bit_grey_like_the_model() -> None:
    noise = np.random.default_rng(2).integers(-3000, 3000, (1000, 1400))
    data = encode(Image.fromarray((40000 + noise).astype(np.uint16)), "PNG")
    small = shrink(data, inspect(data, "x.png", MAX_BYTES, MAX_PIXELS), target_side=224)
    assert np.asarray(Image.open(io.BytesIO(small))).mean() == pytest.approx(40000 / 256, abs=2)
