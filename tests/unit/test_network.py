"""Tests for imgsieve.model.network: shapes, shared layers, weights options and fine-tuning switches."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from imgsieve.errors import UserError
from imgsieve.model.network import (
    Network,
    Standardizer,
    assemble,
    build_model,
    load_base,
    tunable_layers,
    unfreeze_top,
)

SIZE = 32  # the smallest input ResNet50 takes: fast to build and run


@pytest.fixture(scope="module")
def network() -> Network:
    """A 3-class classifier's parts with random weights at the smallest size."""
    keras.utils.set_random_seed(0)
    return build_model(class_count=3, image_size=SIZE, weights="none", seed=0)


def random_images(count: int, seed: int) -> np.ndarray:
    """Inputs in the range ResNet50's preprocessing produces."""
    return np.random.default_rng(seed).uniform(-120, 150, (count, SIZE, SIZE, 3)).astype("float32")


def test_shapes_of_features_head_and_assembled_model(network: Network) -> None:
    assert tuple(network.features.input_shape) == (None, SIZE, SIZE, 3)
    assert tuple(network.features.output_shape) == (None, 2048)
    assert tuple(network.head.input_shape) == (None, 2048)
    assert tuple(network.head.output_shape) == (None, 3)
    vectors = network.features.predict_on_batch(random_images(4, 0))
    model = assemble(network, Standardizer.fit(vectors))
    assert tuple(model.input_shape) == (None, SIZE, SIZE, 3)
    assert tuple(model.output_shape) == (None, 3)
    assert [layer.name for layer in model.layers[-4:]] == ["avg_pool", "standardize", "dropout", "scores"]
    scores = model.predict_on_batch(random_images(2, 1))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_only_the_head_trains_while_the_base_is_frozen(network: Network) -> None:
    model = assemble(network, Standardizer.fit(network.features.predict_on_batch(random_images(4, 0))))
    names = sorted(w.path for w in model.trainable_weights)
    assert names == ["scores/bias", "scores/kernel"]


def test_assembled_model_computes_what_the_trained_head_computes(network: Network) -> None:
    rng = np.random.default_rng(1)
    images = random_images(6, 2)
    vectors = network.features.predict_on_batch(images)
    standardize = Standardizer.fit(vectors)
    dense = network.head.get_layer("scores")
    kernel, bias = dense.get_weights()
    dense.set_weights([rng.normal(size=kernel.shape), rng.normal(size=bias.shape)])

    model = assemble(network, standardize)

    expected = network.head.predict_on_batch(standardize(vectors))
    assert np.ptp(expected[:, 0]) > 0.01  # scores that differ per image
    np.testing.assert_allclose(model.predict_on_batch(images), expected, atol=1e-5)


def test_standardizer_centres_and_scales_and_floors_constant_features() -> None:
    rng = np.random.default_rng(3)
    vectors = np.column_stack([rng.normal(5, 2, 500), rng.normal(-1, 0.5, 500), np.full(500, 7.0)])
    standardize = Standardizer.fit(vectors)
    out = standardize(vectors)
    np.testing.assert_allclose(out[:, :2].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out[:, :2].std(axis=0), 1, atol=1e-4)
    # a constant feature gets a floor scale, not a near-zero one that would explode unseen values
    assert standardize.scale[2] == pytest.approx(0.01 * np.median(vectors.std(axis=0)))
    assert abs(standardize(np.array([[5.0, -1.0, 8.0]]))[0, 2]) < 1000


def test_unfreeze_top_trains_convolutions_and_keeps_batchnorm_frozen() -> None:
    net = build_model(class_count=2, image_size=SIZE, weights="none", seed=0)
    model = assemble(net, Standardizer.fit(net.features.predict_on_batch(random_images(4, 0))))
    names = unfreeze_top(net, 3)
    assert names == ["conv5_block3_1_conv", "conv5_block3_2_conv", "conv5_block3_3_conv"]
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {*names, "scores"}
    assert not any(
        layer.trainable for layer in net.base.layers if isinstance(layer, keras.layers.BatchNormalization)
    )


@pytest.mark.parametrize("count", [-1, 0, 54])
def test_unfreeze_top_rejects_counts_outside_the_base(count: int) -> None:
    net = build_model(class_count=2, image_size=SIZE, weights="none", seed=0)
    assert len(tunable_layers(net.base)) == 53
    with pytest.raises(UserError, match=r"out of range.*1-53"):
        unfreeze_top(net, count)


def test_unknown_weights_value_lists_the_choices() -> None:
    with pytest.raises(UserError, match="'imagenet', 'none' or the path"):
        load_base("imagnet", SIZE)


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "base.weights.h5"
    with pytest.raises(UserError, match=re.escape(f"{missing} not found")):
        load_base(str(missing), SIZE)


def test_local_weights_file_is_loaded(tmp_path: Path) -> None:
    keras.utils.set_random_seed(4)
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    path = tmp_path / "base.weights.h5"
    source.save_weights(path)
    keras.utils.set_random_seed(5)
    loaded = load_base(str(path), SIZE)
    for expected, actual in zip(source.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(expected, actual)


def test_corrupt_weights_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.h5"
    path.write_text("this is not HDF5")
    with pytest.raises(UserError, match=re.escape(f"cannot load weights file {path}")):
        load_base(str(path), SIZE)


def test_mismatched_weights_file_is_named(tmp_path: Path) -> None:
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with pytest.raises(UserError, match=re.escape(f"cannot load weights file {path}")):
        load_base(str(path), SIZE)
