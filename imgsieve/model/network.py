"""The classifier: a ResNet50 base (ImageNet, random or local weights), global average pooling,
dropout and a softmax layer over the classes.

`build_model` makes the frozen base with pooling (`features`: image -> vector, run once over the
training set) and the head (dropout + softmax over vectors, trained on those cached vectors).
`assemble` then joins them, sharing their layers, into the model that is fine-tuned and exported:
input -> base -> pooling -> standardization -> dropout -> softmax.

The standardization (each feature shifted and scaled to zero mean and unit variance over the
training set, fixed after phase 1) is there because pooled ResNet50 features differ in scale by
orders of magnitude: on raw vectors the head's validation accuracy swung by 20 points from one epoch
to the next and ended near chance with random weights. A fixed layer rather than weights folded
into the softmax layer keeps dropout acting on standardized features in fine-tuning as in phase 1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from imgsieve.errors import UserError
from imgsieve.model.preprocess import CHANNELS

WEIGHT_CHOICES = ("imagenet", "none")
WEIGHT_FILE_SUFFIX = ".h5"  # also matches Keras 3's .weights.h5
SCORES_LAYER = "scores"
DROPOUT = 0.2
# A feature that barely varies over the training set is scaled by at least this fraction of the
# median feature's spread, so it is not blown up into a large input for unseen images.
SCALE_FLOOR = 0.01
MIN_SCALE = 1e-6
MAX_REASON_CHARS = 300  # Keras' load errors can run to pages; the first line says what went wrong


@dataclass
class Network:
    """A classifier's parts: the ResNet50 base, base + pooling (image -> vector) and the head."""

    base: keras.Model
    features: keras.Model
    head: keras.Model


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and scale that map training vectors to zero mean and unit variance."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, vectors: np.ndarray) -> Standardizer:
        """Measure the mean and spread of each feature over vectors (one row per image)."""
        spread = vectors.std(axis=0)
        floor = max(float(np.median(spread)) * SCALE_FLOOR, MIN_SCALE)
        return cls(vectors.mean(axis=0), np.maximum(spread, floor))

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        """Return vectors standardized."""
        return ((vectors - self.mean) / self.scale).astype(np.float32)


def build_model(class_count: int, image_size: int, weights: str, seed: int) -> Network:
    """Build the frozen ResNet50 base with pooling, and a dropout + softmax head over class_count classes."""
    base = load_base(weights, image_size)
    base.trainable = False
    inputs = keras.Input((image_size, image_size, CHANNELS), name="image")
    # training=False keeps BatchNormalization in inference mode even once layers are unfrozen
    # for fine-tuning, so its statistics never drift on a small training set.
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base(inputs, training=False))
    features = keras.Model(inputs, pooled, name="features")
    vectors = keras.Input((pooled.shape[-1],), name="vector")
    dropped = keras.layers.Dropout(DROPOUT, seed=seed, name="dropout")(vectors)
    scores = keras.layers.Dense(class_count, activation="softmax", name=SCORES_LAYER)(dropped)
    return Network(base=base, features=features, head=keras.Model(vectors, scores, name="head"))


def assemble(network: Network, standardize: Standardizer) -> keras.Model:
    """Join base, pooling, the fixed standardization and the head's layers into one image -> scores model."""
    normalize = keras.layers.Normalization(
        mean=standardize.mean, variance=np.square(standardize.scale), name="standardize"
    )
    x = normalize(network.features.output)
    for layer in network.head.layers[1:]:  # after the head's Input: dropout, then softmax
        x = layer(x)
    return keras.Model(network.features.input, x, name="classifier")


def check_weights(weights: str) -> None:
    """Raise a UserError unless weights is 'imagenet', 'none' or an existing local .h5 file."""
    if weights in WEIGHT_CHOICES:
        return
    path = Path(weights)
    if not path.name.endswith(WEIGHT_FILE_SUFFIX):
        raise UserError(
            f"--weights {weights!r} is not valid: use 'imagenet', 'none' or the path of a local "
            ".h5/.weights.h5 file"
        )
    if not path.is_file():
        raise UserError(f"weights file {path} not found: give an existing .h5/.weights.h5 file")


def load_base(weights: str, image_size: int) -> keras.Model:
    """Return ResNet50 without its top, initialised as --weights says (imagenet, none or a file)."""
    check_weights(weights)
    shape = (image_size, image_size, CHANNELS)
    if weights == "imagenet":
        try:
            return keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=shape)
        except Exception as exc:  # Keras raises a bare Exception when the download fails
            raise UserError(
                f"cannot download the ImageNet weights for ResNet50 ({exc}); without internet access "
                "use --weights none or --weights PATH to a local .h5/.weights.h5 file"
            ) from exc
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=shape)
    if weights == "none":
        return base
    try:
        with warnings.catch_warnings():
            # Keras only warns about parts of the file that match no layer: a half-loaded base is an error.
            warnings.simplefilter("error", UserWarning)
            base.load_weights(weights)
    except Exception as exc:  # h5py, Keras and TF each raise their own types for bad files
        reason = (
            str(exc).strip().splitlines()[0][:MAX_REASON_CHARS] if str(exc).strip() else type(exc).__name__
        )
        raise UserError(
            f"cannot load weights file {weights} into ResNet50 without its top: {reason}; "
            "give weights saved from keras.applications.ResNet50(include_top=False)"
        ) from exc
    return base


def tunable_layers(base: keras.Model) -> list[keras.layers.Layer]:
    """The base's layers that fine-tuning may train: those with weights, BatchNormalization excepted."""
    return [
        layer
        for layer in base.layers
        if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]


def unfreeze_top(network: Network, layer_count: int) -> list[str]:
    """Make the top layer_count tunable layers of the base trainable, all others frozen; return their names.

    Only layers with weights count (in ResNet50, the convolutions), so K always means K layers that
    learn. BatchNormalization stays frozen, as Keras' fine-tuning guide advises for small datasets.
    """
    tunable = tunable_layers(network.base)
    if not 0 < layer_count <= len(tunable):
        raise UserError(
            f"--fine-tune-layers {layer_count} is out of range: ResNet50 has {len(tunable)} layers with "
            f"weights outside BatchNormalization (use 1-{len(tunable)}, or 0 to skip fine-tuning)"
        )
    chosen = tunable[-layer_count:]
    network.base.trainable = True
    for layer in network.base.layers:
        layer.trainable = layer in chosen
    return [layer.name for layer in chosen]
