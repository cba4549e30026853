"""Train a ResNet50 transfer-learning classifier end to end: load_data(), build_model(), train(),
evaluate(), export().

Phase 1 trains the new head with the base frozen. Since a frozen base gives every image the same
features in every epoch, they are computed once and the head trains on the cached (standardized)
vectors, which costs milliseconds per epoch instead of a full ResNet50 pass; the trained head is
then assembled with the base into the whole model. Phase 2 (optional) unfreezes the base's top layers and trains
the whole model on images at a low learning rate.
"""

from __future__ import annotations

import logging
import math
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import sklearn
import tensorflow as tf
from tqdm import tqdm

import imgsieve
from imgsieve.model.dataset import LabelledImages, image_dataset, load_data
from imgsieve.model.evaluate import evaluate, plot_confusion, plot_history, write_json
from imgsieve.model.export import export_model
from imgsieve.model.network import (
    Network,
    Standardizer,
    assemble,
    build_model,
    check_weights,
    unfreeze_top,
)

log = logging.getLogger(__name__)

HEAD_LEARNING_RATE = 1e-3
FINE_TUNE_LEARNING_RATE = 1e-5  # small steps, so the pretrained features are adjusted, not destroyed
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
CURVES_FILE = "training_curves.png"
CONFUSION_FILE = "confusion_matrix.png"


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; mirrors the `imgsieve train` flags."""

    data: str
    model_dir: Path
    weights: str = "imagenet"
    image_size: int = 224
    epochs: int = 20
    fine_tune_layers: int = 0
    fine_tune_epochs: int = 3
    batch_size: int = 32
    val_split: float = 0.2
    seed: int = 0
    cache_dir: Path = Path(".cache/imgsieve")


@dataclass
class TrainResult:
    """What a run produced: the exported version, its metrics, and per-phase histories and timings."""

    version_dir: Path
    metrics: dict[str, Any]
    model: keras.Model
    data: LabelledImages
    histories: list[tuple[str, dict[str, list[float]]]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class ProgressBar(keras.callbacks.Callback):
    """A tqdm bar over a fit's batches (on stderr) plus one log line per epoch, instead of Keras' stdout."""

    def __init__(self, phase: str, epochs: int, steps_per_epoch: int):
        super().__init__()
        self.phase = phase
        self.bar = tqdm(total=epochs * steps_per_epoch, desc=phase, unit="batch")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Advance the bar by one batch."""
        self.bar.update(1)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Show and log the epoch's metrics."""
        shown = {key: f"{value:.4f}" for key, value in (logs or {}).items()}
        self.bar.set_postfix(shown)
        log.info("%s epoch %d: %s", self.phase, epoch + 1, " ".join(f"{k}={v}" for k, v in shown.items()))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Close the bar."""
        self.bar.close()


def run_training(config: TrainConfig, run_info: dict[str, Any]) -> TrainResult:
    """Load, build, train, evaluate and export; run_info (the command line) goes into run.json."""
    check_weights(config.weights)  # before the slow data loading, not after it
    keras.utils.set_random_seed(config.seed)
    keras.config.disable_interactive_logging()  # Keras' messages to logging, so stdout holds only the summary
    started = time.monotonic()
    data = load_data(config.data, config.cache_dir, config.val_split, config.seed)
    timings = {"load_data": time.monotonic() - started}
    network = build_model(len(data.class_names), config.image_size, config.weights, config.seed)
    model, histories = train(network, data, config, timings)
    tick = time.monotonic()
    scores = predict(
        model, image_dataset(data.val_paths, data.val_labels, config.image_size, config.batch_size)
    )
    metrics = evaluate(data.val_labels, scores, data.class_names)
    timings["evaluate"] = time.monotonic() - tick
    metrics.update(counts=data.counts(), skipped_images=data.skipped, timings_seconds=timings)
    metrics["history"] = dict(histories)
    with tempfile.TemporaryDirectory(prefix="imgsieve-train-") as scratch:
        extra = {
            METRICS_FILE: write_json(metrics, Path(scratch) / METRICS_FILE),
            RUN_FILE: write_json({**run_info, "versions": library_versions()}, Path(scratch) / RUN_FILE),
            CURVES_FILE: plot_history(histories, Path(scratch) / CURVES_FILE),
            CONFUSION_FILE: plot_confusion(
                metrics["confusion_matrix"], data.class_names, Path(scratch) / CONFUSION_FILE
            ),
        }
        tick = time.monotonic()
        version_dir = export(model, data, config, metrics, extra)
        timings["export"] = time.monotonic() - tick
    return TrainResult(version_dir, metrics, model, data, histories, timings)


def train(
    network: Network, data: LabelledImages, config: TrainConfig, timings: dict[str, float]
) -> tuple[keras.Model, list[tuple[str, dict[str, list[float]]]]]:
    """Run phase 1 (head on cached features) and, if asked, phase 2 (fine-tuning); return model and histories."""
    tick = time.monotonic()
    train_vectors = extract_features(network, data.train_paths, data.train_labels, config, "features (train)")
    val_vectors = extract_features(network, data.val_paths, data.val_labels, config, "features (validation)")
    timings["features"] = time.monotonic() - tick
    tick = time.monotonic()
    standardize = Standardizer.fit(train_vectors)
    network.head.compile(
        optimizer=keras.optimizers.Adam(HEAD_LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    head_history = network.head.fit(
        standardize(train_vectors),
        data.train_labels,
        validation_data=(standardize(val_vectors), data.val_labels),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[ProgressBar("head", config.epochs, _steps(len(train_vectors), config.batch_size))],
    )
    model = assemble(network, standardize)
    timings["head"] = time.monotonic() - tick
    histories = [("head", _floats(head_history.history))]
    if config.fine_tune_layers > 0:
        tick = time.monotonic()
        histories.append(("fine-tune", fine_tune(network, model, data, config)))
        timings["fine_tune"] = time.monotonic() - tick
    return model, histories


def extract_features(
    network: Network, paths: list[str], labels: np.ndarray, config: TrainConfig, desc: str
) -> np.ndarray:
    """Run base + pooling once over the images, batched, with a progress bar; return the vectors."""
    dataset = image_dataset(paths, labels, config.image_size, config.batch_size)
    vectors = []
    with tqdm(total=len(paths), desc=desc, unit="img") as bar:
        for images, _ in dataset:
            vectors.append(network.features.predict_on_batch(images))
            bar.update(int(images.shape[0]))
    return np.concatenate(vectors).astype(np.float32)


def fine_tune(
    network: Network, model: keras.Model, data: LabelledImages, config: TrainConfig
) -> dict[str, list[float]]:
    """Unfreeze the base's top layers (BatchNormalization stays frozen) and train the whole model on images."""
    unfrozen = unfreeze_top(network, config.fine_tune_layers)
    log.info("fine-tuning %d layers of the base: %s", len(unfrozen), ", ".join(unfrozen))
    model.compile(
        optimizer=keras.optimizers.Adam(FINE_TUNE_LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    size, batch = config.image_size, config.batch_size
    history = model.fit(
        image_dataset(data.train_paths, data.train_labels, size, batch, shuffle_seed=config.seed),
        validation_data=image_dataset(data.val_paths, data.val_labels, size, batch),
        epochs=config.fine_tune_epochs,
        shuffle=False,  # the dataset shuffles itself, every epoch
        verbose=0,
        callbacks=[ProgressBar("fine-tune", config.fine_tune_epochs, _steps(len(data.train_paths), batch))],
    )
    return _floats(history.history)


def predict(model: keras.Model, dataset: tf.data.Dataset) -> np.ndarray:
    """Return the model's scores for every batch of (images, labels) in dataset, in order."""
    return np.concatenate([model.predict_on_batch(images) for images, _ in dataset])


def export(
    model: keras.Model,
    data: LabelledImages,
    config: TrainConfig,
    metrics: dict[str, Any],
    extra: dict[str, Path],
) -> Path:
    """Export the whole model as the next version under config.model_dir, with metrics and plots beside it."""
    info = {
        "decision_threshold": metrics["decision_threshold"],
        "positive_class": metrics["positive_class"],
        "val_accuracy": metrics["accuracy"],
        "roc_auc": metrics["roc_auc"],
        "weights": config.weights,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return export_model(
        model, data.class_names, config.model_dir, config.image_size, info=info, extra_files=extra
    )


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide what a trained model computes."""
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "imgsieve": imgsieve.__version__,
    }


def _steps(count: int, batch_size: int) -> int:
    """Batches per epoch for count items."""
    return max(1, math.ceil(count / batch_size))


def _floats(history: dict[str, list[Any]]) -> dict[str, list[float]]:
    """A Keras history with plain floats, ready for JSON."""
    return {key: [float(v) for v in values] for key, values in history.items()}
