"""Load labelled training images: find DATA/<class>/ files (syncing s3:// sources to a local cache
first), drop the ones TensorFlow cannot decode, split the rest stratified, and feed them to Keras
through tf.data with the same in-graph decoding the exported model uses.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from imgsieve import s3
from imgsieve.errors import UserError
from imgsieve.model.preprocess import decode_and_resize, normalize

log = logging.getLogger(__name__)

CHECK_WORKERS = 4
CHECK_IMAGE_SIZE = 32  # the readability check decodes fully but needs no real resize
# TensorFlow wraps op errors as "{{function_node ...}} message [Op:DecodeImage] name: "; keep the message.
TF_ERROR_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$")


@dataclass
class LabelledImages:
    """Readable images split for training: paths, integer labels into class_names, skipped files."""

    class_names: list[str]
    train_paths: list[str]
    train_labels: np.ndarray
    val_paths: list[str]
    val_labels: np.ndarray
    skipped: list[dict[str, str]] = field(default_factory=list)
    found: int = 0

    def counts(self) -> dict[str, object]:
        """Image counts for metrics.json: found, used, skipped, and per class train/validation."""
        per_class = {
            name: {
                "train": int(np.sum(self.train_labels == i)),
                "validation": int(np.sum(self.val_labels == i)),
            }
            for i, name in enumerate(self.class_names)
        }
        used = len(self.train_paths) + len(self.val_paths)
        return {
            "found": self.found,
            "used": used,
            "skipped": len(self.skipped),
            "train": len(self.train_paths),
            "validation": len(self.val_paths),
            "per_class": per_class,
        }


def load_data(data: str, cache_dir: Path, val_split: float, seed: int) -> LabelledImages:
    """Resolve DATA (a folder or s3:// URL), check every image decodes, and split it stratified."""
    if s3.is_s3_url(data):
        bucket, prefix = s3.parse_s3_url(data)
        root = cache_dir / bucket / prefix
        result = s3.sync_prefix(s3.make_client(), data, root)
        log.info(
            "synced %s to %s: %d downloaded, %d unchanged, %d removed",
            data,
            root,
            result.downloaded,
            result.unchanged,
            result.removed,
        )
    else:
        root = Path(data)
    class_names, files = find_images(root, data)
    readable, skipped = check_readable([path for path, _ in files])
    labels_by_path = dict(files)
    labels = np.array([labels_by_path[p] for p in readable], dtype=np.int64)
    for i, name in enumerate(class_names):
        if not np.any(labels == i):
            raise UserError(
                f"class folder {name!r} in {data} has no readable images; add JPEG/PNG/GIF/BMP/WebP images"
            )
    train_idx, val_idx = stratified_split(labels, class_names, val_split, seed)
    return LabelledImages(
        class_names=class_names,
        train_paths=[readable[i] for i in train_idx],
        train_labels=labels[train_idx],
        val_paths=[readable[i] for i in val_idx],
        val_labels=labels[val_idx],
        skipped=skipped,
        found=len(files),
    )


def find_images(root: Path, source: str) -> tuple[list[str], list[tuple[str, int]]]:
    """Return the sorted class names under root and every (file, class index); hidden files are ignored."""
    if not root.is_dir():
        raise UserError(f"training data {source} not found: expected a folder of <class>/ subfolders")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UserError(f"no class folders in {source}: put each class's images in {source}/<class>/")
    if len(class_dirs) == 1:
        raise UserError(
            f"only one class folder in {source} ({class_dirs[0].name!r}): a classifier needs at least two"
        )
    files: list[tuple[str, int]] = []
    for index, class_dir in enumerate(class_dirs):
        members = sorted(
            str(p)
            for p in class_dir.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(class_dir).parts)
        )
        if not members:
            raise UserError(f"class folder {class_dir.name!r} in {source} is empty: add images or remove it")
        files.extend((path, index) for path in members)
    return [p.name for p in class_dirs], files


def check_readable(paths: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Split paths into those tf.io.decode_image reads and skipped ones, each with the reason."""
    with ThreadPoolExecutor(max_workers=CHECK_WORKERS) as pool:
        problems = list(
            tqdm(pool.map(_decode_problem, paths), total=len(paths), desc="check images", unit="img")
        )
    readable = [path for path, problem in zip(paths, problems, strict=True) if problem is None]
    skipped = [
        {"path": path, "reason": problem}
        for path, problem in zip(paths, problems, strict=True)
        if problem is not None
    ]
    for item in skipped:
        log.warning("skipping unreadable image %s: %s", item["path"], item["reason"])
    return readable, skipped


def _decode_problem(path: str) -> str | None:
    """Return why the file at path cannot be decoded as the model would decode it, or None if it can."""
    try:
        decode_and_resize(tf.io.read_file(path), CHECK_IMAGE_SIZE)
    except tf.errors.OpError as exc:
        return TF_ERROR_NOISE.sub("", exc.message).strip() or type(exc).__name__
    return None


def stratified_split(
    labels: np.ndarray, class_names: list[str], val_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (train, validation) indices: each class split by val_split, at least one image on each side."""
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for index, name in enumerate(class_names):
        members = np.flatnonzero(labels == index)
        if len(members) < 2:
            raise UserError(
                f"too few images to split: class {name!r} has {len(members)} readable image(s); "
                "every class needs at least 2 (one for training, one for validation)"
            )
        members = rng.permutation(members)
        n_val = min(max(1, round(len(members) * val_split)), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def image_dataset(
    paths: list[str],
    labels: np.ndarray,
    image_size: int,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batched, prefetched (normalized image, label) pairs, decoded exactly as the served model decodes."""
    pairs = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, dtype=tf.string), tf.constant(labels, dtype=tf.int64))
    )
    if shuffle_seed is not None:
        pairs = pairs.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)

    def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return decode_and_resize(tf.io.read_file(path), image_size), label

    def prepare(images: tf.Tensor, batch_labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return normalize(images), batch_labels

    return (
        pairs.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
