"""Export a trained Keras classifier as a versioned SavedModel that TensorFlow Serving loads as it is.

Layout written under the model's base path (TF Serving's `--model_base_path`):

    <base>/<N>/saved_model.pb, variables/      the model, N the next integer version
    <base>/<N>/assets/labels.txt              class names, one per line, in score order
    <base>/<N>/assets.extra/imgsieve.json     class names, image size, threshold, training run
    <base>/<N>/assets.extra/tf_serving_warmup_requests   predict requests TF Serving replays on load

The `serving_default` signature takes one DT_STRING input, `image_bytes` (a batch of encoded
JPEG/PNG/GIF/BMP images; REST clients send `{"b64": ...}`), decodes and resizes in-graph, applies
ResNet50's preprocessing and returns, per image:
    scores     float32 [C]   each class's softmax score, in `classes` order
    classes    string  [C]   the class names (so every prediction is self-describing)
    top_class  string        the highest-scoring class
    top_score  float32       its score

A version is written to a hidden temporary directory and renamed into place, so a server that
watches the base path never sees a half-written version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from imgsieve.model.preprocess import decode_batch, normalize
from imgsieve.model.warmup import image_logs, warmup_path, write_warmup

INPUT_NAME = "image_bytes"
SIGNATURE_NAME = "serving_default"
OUTPUT_NAMES = ("scores", "classes", "top_class", "top_score")
LABELS_FILE = "labels.txt"
INFO_FILE = "imgsieve.json"
VERSION_PATTERN = re.compile(r"^[0-9]+$")


class ServingModule(tf.Module):
    """The object that is saved: the Keras model plus decoding, preprocessing and class names."""

    def __init__(self, model: keras.Model, class_names: list[str], image_size: int, labels_path: Path):
        super().__init__()
        self.model = model
        self.image_size = image_size
        self.class_names = tf.constant(class_names, dtype=tf.string)
        self.labels = tf.saved_model.Asset(str(labels_path))
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)],
        )

    def _serve(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        images = normalize(decode_batch(image_bytes, self.image_size))
        scores = tf.cast(self.model(images, training=False), tf.float32)
        top = tf.argmax(scores, axis=1)
        batch = tf.shape(scores)[0]
        return {
            "scores": scores,
            "classes": tf.tile(self.class_names[tf.newaxis, :], tf.stack([batch, 1])),
            "top_class": tf.gather(self.class_names, top),
            "top_score": tf.reduce_max(scores, axis=1),
        }


def existing_versions(base_path: Path) -> list[int]:
    """Return the integer versions present under base_path, lowest first."""
    if not base_path.is_dir():
        return []
    return sorted(int(p.name) for p in base_path.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name))


def next_version(base_path: Path) -> int:
    """Return the version number the next export under base_path gets."""
    versions = existing_versions(base_path)
    return versions[-1] + 1 if versions else 1


def export_model(
    model: keras.Model,
    class_names: list[str],
    base_path: Path,
    image_size: int,
    info: dict[str, Any] | None = None,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Save model as the next version under base_path and return that version's directory.

    info is merged into assets.extra/imgsieve.json; extra_files (name -> path) are copied into the
    version directory beside the SavedModel (metrics, plots). The warm-up requests name the model
    after base_path, as TF Serving's model_base_path /models/NAME does; the server does not check it.
    """
    if len(class_names) < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {class_names!r}")
    base_path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=base_path))
    try:
        labels_path = staging / LABELS_FILE
        labels_path.write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
        module = ServingModule(model, list(class_names), image_size, labels_path)
        saved = staging / "saved_model"
        tf.saved_model.save(module, str(saved), signatures={SIGNATURE_NAME: module.serve})
        extra_dir = saved / "assets.extra"
        extra_dir.mkdir(exist_ok=True)
        model_info = {"class_names": list(class_names), "image_size": image_size, **(info or {})}
        (extra_dir / INFO_FILE).write_text(json.dumps(model_info, indent=2) + "\n", encoding="utf-8")
        write_warmup(warmup_path(saved), image_logs(base_path.name, SIGNATURE_NAME, INPUT_NAME))
        for name, path in (extra_files or {}).items():
            shutil.copy2(path, saved / name)
        return _publish(saved, base_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(saved: Path, base_path: Path) -> Path:
    """Rename a finished SavedModel into the next free version directory, atomically."""
    while True:
        target = base_path / str(next_version(base_path))
        try:
            os.rename(saved, target)
        except OSError:
            if target.exists():
                continue  # another export took this number first; take the next one
            raise
        return target


def read_model_info(version_dir: Path) -> dict[str, Any]:
    """Return the imgsieve.json of an exported version (class names, image size, ...)."""
    path = version_dir / "assets.extra" / INFO_FILE
    if path.is_file():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    labels = version_dir / "assets" / LABELS_FILE
    return {"class_names": labels.read_text(encoding="utf-8").split()}
