"""Tests for imgsieve.model.dataset: finding, checking, splitting and feeding labelled images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from imgsieve.errors import UserError
from imgsieve.model.dataset import find_images, image_dataset, load_data, stratified_split
from imgsieve.model.preprocess import decode_batch, normalize

# One clearly different colour per class, so a decoded image tells which class it came from.
COLOURS = {"cats": (220, 30, 30), "dogs": (30, 220, 30), "eels": (30, 30, 220)}
IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68])  # what ResNet50's preprocessing subtracts


def jpeg_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (24, 18)) -> bytes:
    """A small solid-colour JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def write_images(root: Path, per_class: dict[str, int]) -> Path:
    """Write per_class[name] JPEGs into root/<name>/ and return root."""
    for name, count in per_class.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (folder / f"{i:03d}.jpg").write_bytes(jpeg_bytes(COLOURS[name]))
    return root


def test_find_images_sorts_classes_and_labels_files(tmp_path: Path) -> None:
    root = write_images(tmp_path / "data", {"dogs": 2, "cats": 3})
    class_names, files = find_images(root, str(root))
    assert class_names == ["cats", "dogs"]
    assert [label for _, label in files] == [0, 0, 0, 1, 1]
    assert all(Path(path).parent.name == class_names[label] for path, label in files)


def test_find_images_ignores_hidden_files_and_folders(tmp_path: Path) -> None:
    root = write_images(tmp_path / "data", {"cats": 2, "dogs": 2})
    (root / "cats" / ".DS_Store").write_bytes(b"junk")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.jpg").write_bytes(jpeg_bytes(COLOURS["cats"]))
    class_names, files = find_images(root, str(root))
    assert class_names == ["cats", "dogs"]
    assert len(files) == 4


def test_missing_data_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        find_images(tmp_path / "nowhere", "nowhere")


def test_folder_without_class_folders_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "loose.jpg").write_bytes(jpeg_bytes(COLOURS["cats"]))
    with pytest.raises(UserError, match="no class folders"):
        find_images(tmp_path, str(tmp_path))


def test_single_class_is_a_user_error(tmp_path: Path) -> None:
    root = write_images(tmp_path, {"cats": 3})
    with pytest.raises(UserError, match=r"only one class folder.*'cats'"):
        find_images(root, str(root))


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = write_images(tmp_path, {"cats": 3})
    (root / "dogs").mkdir()
    with pytest.raises(UserError, match=r"'dogs'.*is empty"):
        find_images(root, str(root))


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    root = write_images(tmp_path, {"cats": 4, "dogs": 4})
    good = jpeg_bytes(COLOURS["cats"], (64, 64))
    (root / "cats" / "empty.jpg").write_bytes(b"")
    (root / "cats" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "dogs" / "notes.txt").write_text("not an image")
    tiff = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiff, "TIFF")
    (root / "dogs" / "scan.tif").write_bytes(tiff.getvalue())

    data = load_data(str(root), tmp_path / "cache", val_split=0.25, seed=0)

    skipped = {Path(item["path"]).name: item["reason"] for item in data.skipped}
    assert set(skipped) == {"empty.jpg", "truncated.jpg", "notes.txt", "scan.tif"}
    assert "empty" in skipped["empty.jpg"].lower()
    assert "Unknown image file format" in skipped["notes.txt"]
    counts = data.counts()
    assert counts["found"] == 12
    assert counts["used"] == 8
    assert counts["skipped"] == 4
    used = set(data.train_paths) | set(data.val_paths)
    assert not any(Path(p).name in skipped for p in used)


def test_class_with_only_unreadable_images_is_named(tmp_path: Path) -> None:
    root = write_images(tmp_path, {"cats": 3})
    (root / "dogs").mkdir()
    (root / "dogs" / "a.jpg").write_bytes(b"")
    with pytest.raises(UserError, match=r"'dogs'.*no readable images"):
        load_data(str(root), tmp_path / "cache", val_split=0.2, seed=0)


def test_too_few_images_to_split_is_a_user_error(tmp_path: Path) -> None:
    root = write_images(tmp_path, {"cats": 3, "dogs": 1})
    with pytest.raises(UserError, match=r"too few images.*'dogs' has 1"):
        load_data(str(root), tmp_path / "cache", val_split=0.2, seed=0)


def test_stratified_split_keeps_class_proportions() -> None:
    labels = np.array([0] * 50 + [1] * 20 + [2] * 5)
    train, val = stratified_split(labels, ["a", "b", "c"], val_split=0.2, seed=3)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
    assert not set(train.tolist()) & set(val.tolist())
    assert np.bincount(labels[val]).tolist() == [10, 4, 1]


@pytest.mark.parametrize("val_split", [0.01, 0.99])
def test_stratified_split_leaves_every_class_on_both_sides(val_split: float) -> None:
    labels = np.array([0] * 2 + [1] * 9)
    train, val = stratified_split(labels, ["a", "b"], val_split=val_split, seed=0)
    assert set(labels[train].tolist()) == {0, 1}
    assert set(labels[val].tolist()) == {0, 1}


def test_stratified_split_is_deterministic_from_the_seed() -> None:
    labels = np.array([0] * 30 + [1] * 30)
    first = stratified_split(labels, ["a", "b"], 0.2, seed=5)
    again = stratified_split(labels, ["a", "b"], 0.2, seed=5)
    other = stratified_split(labels, ["a", "b"], 0.2, seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])


def test_image_dataset_gives_the_served_models_pixels(tmp_path: Path) -> None:
    root = write_images(tmp_path, {"cats": 2, "dogs": 3})
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    (batch, labels), *_ = image_dataset(paths, np.arange(5), image_size=40, batch_size=8)
    raw = tf.constant([Path(p).read_bytes() for p in paths])
    expected = normalize(decode_batch(raw, 40))
    np.testing.assert_array_equal(batch.numpy(), expected.numpy())
    assert labels.numpy().tolist() == [0, 1, 2, 3, 4]


def test_shuffled_image_dataset_keeps_images_with_their_labels(tmp_path: Path) -> None:
    root = write_images(tmp_path, {"cats": 6, "dogs": 6, "eels": 6})
    class_names, files = find_images(root, str(root))
    paths = [path for path, _ in files]
    labels = np.array([label for _, label in files])
    dataset = image_dataset(paths, labels, image_size=32, batch_size=4, shuffle_seed=1)
    seen = []
    for images, batch_labels in dataset:
        # Undo ResNet50's mean subtraction and BGR order to read each image's colour back.
        rgb = (images.numpy() + IMAGENET_MEAN_BGR)[..., ::-1].mean(axis=(1, 2))
        for colour, label in zip(rgb, batch_labels.numpy(), strict=True):
            assert int(np.argmax(colour)) == int(np.argmax(COLOURS[class_names[label]]))
            seen.append(int(label))
    assert sorted(seen) == sorted(labels.tolist())
    assert seen != labels.tolist()  # really shuffled
