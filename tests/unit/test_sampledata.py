"""Tests for imgsieve.sampledata and the `imgsieve sample-data` command."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsieve import sampledata
from imgsieve.cli import main
from imgsieve.errors import UserError


def jpeg_names(folder: Path) -> list[str]:
    """Return the .jpg files under folder as sorted relative paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))


def open_jpeg(path: Path) -> Image.Image:
    """Decode path fully and check that it is a JPEG."""
    image = Image.open(io.BytesIO(path.read_bytes()))
    image.load()
    assert image.format == "JPEG"
    assert image.mode == "RGB"
    return image


def test_labelled_set_has_one_folder_per_class(tmp_path: Path) -> None:
    counts = sampledata.write_labelled(tmp_path / "out", per_class=2, seed=3)

    assert counts == {"drugs": 2, "other": 2}
    assert jpeg_names(tmp_path / "out") == [
        "drugs/drugs-000001.jpg",
        "drugs/drugs-000002.jpg",
        "other/other-000001.jpg",
        "other/other-000002.jpg",
    ]
    for path in (tmp_path / "out").rglob("*.jpg"):
        width, height = open_jpeg(path).size
        assert sampledata.MIN_PIXELS <= width * height <= sampledata.MAX_PIXELS


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        sampledata.write_labelled(tmp_path / name, per_class=1, seed=seed)

    for name in jpeg_names(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


@pytest.mark.parametrize("cls", sampledata.CLASS_NAMES)
def test_rendered_photos_vary_in_size_and_aspect_within_bounds(cls: str) -> None:
    sizes = [sampledata.render_photo(cls, np.random.default_rng([11, i])).size for i in range(8)]

    assert all(sampledata.MIN_PIXELS <= w * h <= sampledata.MAX_PIXELS for w, h in sizes)
    assert len({round(w / h, 1) for w, h in sizes}) >= 3
    assert max(w * h for w, h in sizes) > 2 * min(w * h for w, h in sizes)


def test_render_photo_rejects_an_unknown_class() -> None:
    with pytest.raises(UserError, match="choose one of drugs, other"):
        sampledata.render_photo("cats", np.random.default_rng(0))


def test_unlabelled_set_hides_classes_in_names_and_lists_them_in_truth(tmp_path: Path) -> None:
    counts = sampledata.write_unlabelled(tmp_path, count=6, seed=4)

    with (tmp_path / sampledata.TRUTH_FILE).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert jpeg_names(tmp_path) == [f"img-{i:06d}.jpg" for i in range(1, 7)]
    assert [row["filename"] for row in rows] == jpeg_names(tmp_path)
    assert {row["class"] for row in rows} <= set(sampledata.CLASS_NAMES)
    assert counts == {cls: sum(row["class"] == cls for row in rows) for cls in sampledata.CLASS_NAMES}
    assert sum(counts.values()) == 6
    for row in rows:
        open_jpeg(tmp_path / row["filename"])


def test_empty_unlabelled_set_has_only_the_truth_header(tmp_path: Path) -> None:
    assert sampledata.write_unlabelled(tmp_path / "out", count=0, seed=0) == {"drugs": 0, "other": 0}

    assert jpeg_names(tmp_path / "out") == []
    assert (tmp_path / "out" / sampledata.TRUTH_FILE).read_text().splitlines() == ["filename,class"]


def test_unlabelled_set_mixes_both_classes(tmp_path: Path) -> None:
    counts = sampledata.write_unlabelled(tmp_path, count=12, seed=1)

    assert all(n > 0 for n in counts.values())


def test_command_writes_the_labelled_set_and_prints_one_summary_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sample-data", str(tmp_path / "out"), "--per-class", "1", "--seed", "2"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert "wrote 2 images (drugs 1, other 1)" in lines[0]
    assert " MB in " in lines[0]
    assert jpeg_names(tmp_path / "out") == ["drugs/drugs-000001.jpg", "other/other-000001.jpg"]


def test_command_writes_the_unlabelled_set(tmp_path: Path) -> None:
    assert main(["sample-data", str(tmp_path), "--unlabelled", "2", "--seed", "2"]) == 0

    assert jpeg_names(tmp_path) == ["img-000001.jpg", "img-000002.jpg"]
    assert (tmp_path / sampledata.TRUTH_FILE).read_text().splitlines()[0] == "filename,class"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--per-class", "0"], "--per-class must be at least 1, got 0"),
        (["--unlabelled", "-1"], "--unlabelled must be 0 or more, got -1"),
        (["--seed", "-3"], "--seed must be 0 or more, got -3"),
        (["--unlabelled", "2", "--seed", "-3"], "--seed must be 0 or more, got -3"),
    ],
)
def test_command_rejects_bad_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["sample-data", str(tmp_path / "out"), *flags]) == 2

    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_command_refuses_a_file_as_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").write_text("not a folder")

    assert main(["sample-data", str(tmp_path / "out"), "--per-class", "1"]) == 2

    assert "it is a file; choose a folder" in capsys.readouterr().err


def test_rerun_overwrites_its_own_files_but_refuses_to_mix_with_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sample-data", str(tmp_path), "--per-class", "2", "--seed", "9"]
    assert main(argv) == 0
    before = {name: (tmp_path / name).read_bytes() for name in jpeg_names(tmp_path)}

    assert main(argv) == 0
    assert {name: (tmp_path / name).read_bytes() for name in jpeg_names(tmp_path)} == before

    assert main(["sample-data", str(tmp_path), "--per-class", "1", "--seed", "9"]) == 2
    assert "already holds 2 other images (e.g. drugs/drugs-000002.jpg)" in capsys.readouterr().err


@pytest.mark.slow
def test_classes_are_learnable_from_random_resnet50_features(tmp_path: Path) -> None:
    """What `imgsieve train --weights none` relies on: a linear head on frozen random ResNet50 features."""
    import keras
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from imgsieve.model.preprocess import decode_batch, normalize

    sampledata.write_labelled(tmp_path, per_class=100, seed=1)
    paths = [p for cls in sampledata.CLASS_NAMES for p in sorted((tmp_path / cls).glob("*.jpg"))]
    labels = np.array([sampledata.CLASS_NAMES.index(p.parent.name) for p in paths])
    keras.utils.set_random_seed(0)
    base = keras.applications.ResNet50(
        include_top=False, weights=None, pooling="avg", input_shape=(128, 128, 3)
    )
    batches = [paths[i : i + 32] for i in range(0, len(paths), 32)]
    features = np.concatenate(
        [
            base(normalize(decode_batch(tf.constant([p.read_bytes() for p in batch]), 128))).numpy()
            for batch in batches
        ]
    )

    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    assert cross_val_score(head, features, labels, cv=5).mean() >= 0.85
