"""Bad input at scale on the deployed pipeline: a job of 2,000 files of which 10% are bad (empty, truncated,
not images, random bytes, unsupported formats, valid but huge images, one over the size limit) among photos
in every format the model reads. Every good file gets a classified row, every bad one an error row with its
reason, and no consumer is restarted by systemd because of what it was fed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.infra.conftest import LocalCopy
from tests.infra.faults import SOURCES, Fleet, encoded, make_photos

pytestmark = [pytest.mark.slow, pytest.mark.integration]

GOOD_JPEGS = 1700
GOOD_OTHERS = {"png": 40, "gif": 40, "bmp": 10}  # formats the model reads besides JPEG
BIG_PHOTOS = 10  # 20 MP JPEGs: under the pixel limit, shrunk by the consumers, classified
PER_BAD_KIND = 20
OVERSIZE_BYTES = 20_000_001  # the producer's default max_bytes is 20 MB
HTML = b"<!DOCTYPE html><html><body><h1>403 Forbidden</h1></body></html>\n"


@dataclass(frozen=True)
class Mixed:
    """The job's files: the good ones by name, and for each bad one the words its error row must hold."""

    folder: Path
    good: list[str]
    bad: dict[str, str]


def bad_kinds(photo: Image.Image) -> dict[str, tuple[bytes, str]]:
    """One sample of each kind of bad input: {kind: (bytes, words its error row must hold)}."""
    jpeg, png, gif = (
        encoded(photo, "JPEG", quality=85),
        encoded(photo, "PNG"),
        encoded(photo.convert("P"), "GIF"),
    )
    noise = np.random.default_rng(0).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes()
    return {
        "empty": (b"", "empty file (0 bytes)"),
        "truncated-jpeg": (jpeg[: len(jpeg) * 2 // 3], "truncated JPEG"),
        "jpeg-header-only": (jpeg[:200], "corrupt JPEG"),
        "truncated-png": (png[: len(png) // 2], "truncated PNG"),
        "truncated-gif": (gif[: len(gif) // 2], "truncated GIF"),
        "html": (HTML, "looks like HTML"),
        "random": (b"\x00" + noise, "not a JPEG, PNG, GIF or BMP image"),
        "webp": (encoded(photo, "WEBP"), "unsupported format WEBP"),
        "tiff": (encoded(photo, "TIFF"), "unsupported format TIFF"),
        # 144 MP in 1.7 MB: a valid JPEG that would take 432 MB to decode.
        "huge": (encoded(Image.new("L", (12_000, 12_000), 128), "JPEG", quality=50), "decompression bomb"),
    }


@pytest.fixture(scope="module")
def mixed(sample_unlabelled: Path, tmp_path_factory: pytest.TempPathFactory) -> Mixed:
    """2,000 files, 200 of them bad (10 kinds x 20, and one file over the size limit in place of one)."""
    scratch = tmp_path_factory.mktemp("bad-input")
    photos = make_photos(sample_unlabelled, scratch / "photos")
    folder = scratch / "upload"
    folder.mkdir()
    good = []
    for i in range(GOOD_JPEGS):
        name = f"good-{i:05d}.jpg"
        os.link(photos[i % len(photos)], folder / name)
        good.append(name)
    for fmt, count in GOOD_OTHERS.items():
        for i in range(count):
            with Image.open(photos[i]) as photo:
                image = photo.convert("P") if fmt == "gif" else photo.convert("RGB")
                (folder / f"good-{fmt}-{i:03d}.{fmt}").write_bytes(encoded(image, fmt.upper()))
            good.append(f"good-{fmt}-{i:03d}.{fmt}")
    with Image.open(photos[0]) as photo:
        big = encoded(photo.convert("RGB").resize((5000, 4000)), "JPEG", quality=85)
        kinds = bad_kinds(photo.convert("RGB"))
    for i in range(BIG_PHOTOS):
        (folder / f"good-big-{i:03d}.jpg").write_bytes(big)
        good.append(f"good-big-{i:03d}.jpg")
    bad = {}
    for kind, (data, words) in kinds.items():
        for i in range(PER_BAD_KIND - (kind == "random")):
            (folder / f"bad-{kind}-{i:03d}.jpg").write_bytes(data)
            bad[f"bad-{kind}-{i:03d}.jpg"] = words
    (folder / "bad-oversize.jpg").write_bytes(b"\xff\xd8\xff" + os.urandom(OVERSIZE_BYTES))
    bad["bad-oversize.jpg"] = "byte limit"
    return Mixed(folder, good, bad)


@dataclass(frozen=True)
class BadInputRun:
    """The job's rows by file name and the consumers' restart counters before and after it."""

    rows: dict[str, tuple[str, str]]
    restarts_before: dict[tuple[str, str], str]
    restarts_after: dict[tuple[str, str], str]
    seconds: float


@pytest.fixture(scope="module")
def bad_input_run(local_copy: LocalCopy, mixed: Mixed) -> BadInputRun:
    """Upload the mixed files and run them as one job."""
    fleet = Fleet(local_copy)
    fleet.wait_healthy()
    job = f"bad-input-{int(time.time()):x}"
    folder = f"{SOURCES}/{job}"
    before = fleet.restarts()
    started = time.monotonic()
    fleet.run_job(job, folder, mixed.folder)
    seconds = time.monotonic() - started
    return BadInputRun(fleet.reasons(folder), before, fleet.restarts(), seconds)


def test_one_row_per_file(mixed: Mixed, bad_input_run: BadInputRun) -> None:
    """Every one of the 2,000 files has exactly one row (the store keys rows by URI), and no other row."""
    assert len(mixed.good) + len(mixed.bad) == 2000
    assert sorted(bad_input_run.rows) == sorted(mixed.good + list(mixed.bad))
    print(f"\nbad input: {len(mixed.good)} good, {len(mixed.bad)} bad files in {bad_input_run.seconds:.0f} s")


def test_every_good_file_is_classified(mixed: Mixed, bad_input_run: BadInputRun) -> None:
    """JPEG, PNG, GIF and BMP photos, large ones included, all have an ok row."""
    failed = {
        n: bad_input_run.rows.get(n) for n in mixed.good if bad_input_run.rows.get(n, ("", ""))[0] != "ok"
    }
    assert failed == {}


def test_every_bad_file_has_an_error_row_with_its_reason(mixed: Mixed, bad_input_run: BadInputRun) -> None:
    """Each bad file's row is an error whose reason names what is wrong with it."""
    wrong = {
        name: bad_input_run.rows.get(name)
        for name, words in mixed.bad.items()
        if bad_input_run.rows.get(name, ("", ""))[0] != "error" or words not in bad_input_run.rows[name][1]
    }
    assert wrong == {}


def test_no_consumer_restarted(bad_input_run: BadInputRun) -> None:
    """No consumer unit was restarted by systemd during the job: same restart count, same main process."""
    assert bad_input_run.restarts_after == bad_input_run.restarts_before
