"""Integration tests for `imgsieve train`: the real CLI on real images, the exported SavedModel that
serving loads, fine-tuning, an S3 source on a real (moto) S3 server, and skipped unreadable images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from imgsieve import s3
from imgsieve.cli import main
from imgsieve.model.dataset import load_data
from imgsieve.model.network import build_model
from imgsieve.model.preprocess import decode_batch, normalize
from imgsieve.model.train import TrainConfig, run_training, train
from tests.conftest import free_port

pytestmark = pytest.mark.integration

SIZE = 64
FAST = ["--weights", "none", "--image-size", str(SIZE), "--batch-size", "8", "--seed", "1"]
VERSION_FILES = ("metrics.json", "run.json", "training_curves.png", "confusion_matrix.png")


def subset(source: Path, dest: Path, per_class: int) -> Path:
    """Copy the first per_class images of each class folder of source into dest."""
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        (dest / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            shutil.copy(image, dest / class_dir.name / image.name)
    return dest


def read_metrics(version_dir: Path) -> dict:
    """The metrics.json exported with a version."""
    return json.loads((version_dir / "metrics.json").read_text())


def test_export_holds_model_metrics_plots_and_run_record(tiny_model: Path, sample_labelled: Path) -> None:
    version = tiny_model / "1"
    class_names = sorted(p.name for p in sample_labelled.iterdir() if p.is_dir())
    image_count = sum(1 for p in sample_labelled.rglob("*") if p.is_file())
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets" / "labels.txt").read_text().split() == class_names
    for name in VERSION_FILES:
        assert (version / name).is_file(), name
    for name in ("training_curves.png", "confusion_matrix.png"):
        with Image.open(version / name) as image:
            assert image.format == "PNG"

    metrics = read_metrics(version)
    assert metrics["class_names"] == class_names
    assert metrics["counts"]["used"] == image_count
    assert metrics["counts"]["skipped"] == 0
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["counts"]["validation"]
    assert all(c["validation"] >= 1 for c in metrics["counts"]["per_class"].values())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert 0.0 <= metrics["roc_auc"] <= 1.0
    assert 0.0 <= metrics["decision_threshold"] <= 1.0
    assert set(metrics["timings_seconds"]) >= {"load_data", "features", "head", "evaluate"}
    assert len(metrics["history"]["head"]["val_loss"]) == 1

    run = json.loads((version / "run.json").read_text())
    assert run["arguments"]["image_size"] == SIZE
    assert run["arguments"]["weights"] == "none"
    assert set(run["versions"]) >= {"python", "tensorflow", "keras", "numpy", "imgsieve"}
    assert isinstance(run["argv"], list)

    info = json.loads((version / "assets.extra" / "imgsieve.json").read_text())
    assert info["image_size"] == SIZE
    assert info["decision_threshold"] == metrics["decision_threshold"]


def test_saved_model_predicts_what_the_keras_model_predicts(sample_labelled: Path, tmp_path: Path) -> None:
    base = tmp_path / "model"
    assert main(["train", str(sample_labelled), "--model-dir", str(base), "--epochs", "2", *FAST]) == 0
    config = TrainConfig(
        data=str(sample_labelled), model_dir=base, weights="none", image_size=SIZE, epochs=3, batch_size=8
    )
    result = run_training(config, {"argv": ["test"]})
    assert result.version_dir == base / "2"  # the second run exports the next version
    assert (base / "1" / "metrics.json").is_file()

    raw = [Path(p).read_bytes() for p in result.data.val_paths]
    expected = result.model.predict_on_batch(normalize(decode_batch(tf.constant(raw), SIZE)))
    serve = tf.saved_model.load(str(result.version_dir)).signatures["serving_default"]
    served = serve(image_bytes=tf.constant(raw))

    assert np.std(expected[:, 0]) > 1e-4  # scores that differ per image, so the comparison means something
    np.testing.assert_allclose(served["scores"].numpy(), expected, atol=1e-5)
    names = np.array(result.data.class_names)
    assert [c.decode() for c in served["top_class"].numpy()] == names[expected.argmax(axis=1)].tolist()
    np.testing.assert_allclose(served["top_score"].numpy(), expected.max(axis=1), atol=1e-5)


def test_fine_tuning_changes_only_the_unfrozen_layers(sample_labelled: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        data=str(sample_labelled),
        model_dir=tmp_path,
        weights="none",
        image_size=SIZE,
        epochs=1,
        fine_tune_layers=3,
        fine_tune_epochs=1,
        batch_size=8,
    )
    data = load_data(config.data, config.cache_dir, config.val_split, config.seed)
    network = build_model(len(data.class_names), SIZE, "none", seed=0)
    watched = ("conv5_block3_3_conv", "conv5_block3_3_bn", "conv5_block2_3_conv")
    before = {name: network.base.get_layer(name).get_weights() for name in watched}

    timings: dict[str, float] = {}
    _, histories = train(network, data, config, timings)

    after = {name: network.base.get_layer(name).get_weights() for name in watched}
    assert [name for name, _ in histories] == ["head", "fine-tune"]
    assert "fine_tune" in timings
    assert not np.array_equal(before["conv5_block3_3_conv"][0], after["conv5_block3_3_conv"][0])
    for name in ("conv5_block3_3_bn", "conv5_block2_3_conv"):  # frozen BatchNorm, layer below the top 3
        for old, new in zip(before[name], after[name], strict=True):
            np.testing.assert_array_equal(old, new)


@pytest.mark.slow
def test_fine_tune_run_through_the_cli(sample_labelled: Path, tmp_path: Path) -> None:
    base = tmp_path / "model"
    argv = ["train", str(sample_labelled), "--model-dir", str(base), "--epochs", "2", *FAST]
    assert main([*argv, "--fine-tune-layers", "3", "--fine-tune-epochs", "1"]) == 0
    metrics = read_metrics(base / "1")
    assert len(metrics["history"]["head"]["loss"]) == 2
    assert len(metrics["history"]["fine-tune"]["loss"]) == 1
    assert metrics["timings_seconds"]["fine_tune"] > 0


def test_unreadable_images_are_skipped_and_counted(
    sample_labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = subset(sample_labelled, tmp_path / "data", per_class=5)
    first, second = sorted(p for p in data.iterdir())
    good = next(first.iterdir()).read_bytes()
    (first / "empty.jpg").write_bytes(b"")
    (first / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (second / "readme.txt").write_text("not an image")

    base = tmp_path / "model"
    assert main(["train", str(data), "--model-dir", str(base), "--epochs", "1", *FAST]) == 0

    metrics = read_metrics(base / "1")
    assert metrics["counts"]["skipped"] == 3
    assert metrics["counts"]["used"] == 10
    skipped = sorted(Path(item["path"]).name for item in metrics["skipped_images"])
    assert skipped == ["empty.jpg", "readme.txt", "truncated.jpg"]
    out = capsys.readouterr().out
    assert "3 unreadable skipped" in out
    assert str(base / "1") in out


def test_s3_source_is_synced_and_trained(s3_endpoint: str, sample_labelled: Path, tmp_path: Path) -> None:
    local = subset(sample_labelled, tmp_path / "local", per_class=4)
    client = boto3.client("s3")
    client.create_bucket(Bucket="training")
    for path in sorted(local.rglob("*.jpg")):
        client.upload_file(str(path), "training", f"sets/small/{path.relative_to(local)}")
    base, cache = tmp_path / "model", tmp_path / "cache"

    argv = ["train", "s3://training/sets/small/", "--model-dir", str(base), "--cache-dir", str(cache)]
    assert main([*argv, "--epochs", "1", *FAST]) == 0

    assert read_metrics(base / "1")["counts"]["used"] == 8
    synced = sorted(p.relative_to(cache / "training" / "sets" / "small") for p in cache.rglob("*.jpg"))
    assert synced == sorted(p.relative_to(local) for p in local.rglob("*.jpg"))


def test_sync_fetches_only_new_or_changed_objects(s3_endpoint: str, tmp_path: Path) -> None:
    client = s3.make_client()
    client.create_bucket(Bucket="syncs")
    for key in ("p/a/1.jpg", "p/a/2.jpg", "p/b/1.jpg", "other/x.jpg"):
        client.put_object(Bucket="syncs", Key=key, Body=key.encode())
    dest = tmp_path / "cache"

    first = s3.sync_prefix(client, "s3://syncs/p", dest)
    assert (first.downloaded, first.unchanged, first.removed) == (3, 0, 0)
    assert (dest / "a" / "2.jpg").read_bytes() == b"p/a/2.jpg"
    assert not (dest / "x.jpg").exists()

    again = s3.sync_prefix(client, "s3://syncs/p/", dest)
    assert (again.downloaded, again.unchanged, again.removed) == (0, 3, 0)

    client.put_object(Bucket="syncs", Key="p/a/1.jpg", Body=b"new content")
    client.delete_object(Bucket="syncs", Key="p/b/1.jpg")
    changed = s3.sync_prefix(client, "s3://syncs/p/", dest)
    assert (changed.downloaded, changed.unchanged, changed.removed) == (1, 1, 1)
    assert (dest / "a" / "1.jpg").read_bytes() == b"new content"
    assert not (dest / "b" / "1.jpg").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--image-size", "16"], "--image-size 16 is too small"),
        (["--val-split", "1.0"], "--val-split 1.0 is out of range"),
        (["--weights", "best"], "'imagenet', 'none' or the path"),
    ],
)
def test_bad_flags_are_user_errors(
    sample_labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    argv = ["train", str(sample_labelled), "--model-dir", str(tmp_path / "m"), "--weights", "none", *flags]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_missing_data_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", str(tmp_path / "absent"), "--model-dir", str(tmp_path / "m"), "--weights", "none"]
    assert main(argv) == 2
    assert "not found" in capsys.readouterr().err


def test_imagenet_download_failure_says_what_to_do(sample_labelled: Path, tmp_path: Path) -> None:
    # An empty Keras cache and a proxy nobody listens on: the download fails the way it does offline.
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "NO_PROXY": "", "no_proxy": ""}
    env["HTTPS_PROXY"] = env["https_proxy"] = f"http://127.0.0.1:{free_port()}"
    data = subset(sample_labelled, tmp_path / "data", per_class=2)
    argv = ["train", str(data), "--model-dir", str(tmp_path / "m"), "--weights", "imagenet"]
    proc = subprocess.run(
        [sys.executable, "-m", "imgsieve", *argv],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "cannot download the ImageNet weights" in proc.stderr
    assert "--weights none" in proc.stderr
