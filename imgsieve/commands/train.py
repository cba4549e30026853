"""Train a ResNet50 transfer-learning classifier on DATA (a folder of <class>/ subfolders, or
s3://bucket/prefix/ with the same layout) and export it as the next version under --model-dir.

Phase 1 trains a new softmax head on features that the frozen base computes once; phase 2
(--fine-tune-layers K > 0) unfreezes the base's top K layers at a low learning rate. metrics.json,
plots and the run's command and library versions are written beside the exported model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from imgsieve.errors import UserError

MIN_IMAGE_SIZE = 32  # ResNet50 halves the image five times; below 32 px nothing is left to pool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the train flags."""
    parser.add_argument("data", metavar="DATA", help="folder of <class>/ subfolders, or s3://bucket/prefix/")
    parser.add_argument(
        "--model-dir",
        type=Path,
        required=True,
        help="model base path, e.g. model/NAME; each run exports the next version NAME/<N>/",
    )
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="base weights: 'imagenet' (Keras download, needs internet), 'none' (random), or a local .h5 file",
    )
    parser.add_argument("--image-size", type=int, default=224, help="side of the square model input, pixels")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of head training (phase 1)")
    parser.add_argument(
        "--fine-tune-layers",
        type=int,
        default=0,
        metavar="K",
        help="unfreeze the base's top K layers with weights (convolutions; BatchNormalization stays "
        "frozen) for phase 2; 0 skips phase 2",
    )
    parser.add_argument("--fine-tune-epochs", type=int, default=3, help="epochs of phase 2")
    parser.add_argument("--batch-size", type=int, default=32, help="images per training batch")
    parser.add_argument(
        "--val-split", type=float, default=0.2, help="fraction of images held out for validation"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed for the split and the initialisation"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".cache/imgsieve"),
        help="where s3:// training data is synced to",
    )


def run(args: argparse.Namespace) -> int:
    """Train, evaluate and export; print where the new version is and its validation metrics."""
    validate(args)
    # Imported here so `imgsieve --help` and the stream commands never load TensorFlow.
    from imgsieve.model.train import TrainConfig, run_training

    config = TrainConfig(
        data=args.data,
        model_dir=args.model_dir,
        weights=args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        fine_tune_layers=args.fine_tune_layers,
        fine_tune_epochs=args.fine_tune_epochs,
        batch_size=args.batch_size,
        val_split=args.val_split,
        seed=args.seed,
        cache_dir=args.cache_dir,
    )
    arguments = {key: _plain(value) for key, value in vars(args).items() if key != "handler"}
    result = run_training(config, {"argv": list(sys.argv), "arguments": arguments})
    print(summary(result.metrics, result.timings, result.version_dir))
    return 0


def validate(args: argparse.Namespace) -> None:
    """Reject flag values that cannot work, before any data is read."""
    if args.image_size < MIN_IMAGE_SIZE:
        raise UserError(
            f"--image-size {args.image_size} is too small: ResNet50 needs at least {MIN_IMAGE_SIZE}"
        )
    if not 0 < args.val_split < 1:
        raise UserError(
            f"--val-split {args.val_split} is out of range: give a fraction between 0 and 1, e.g. 0.2"
        )
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UserError(f"{flag} {value} is out of range: give 1 or more")
    if args.fine_tune_layers < 0:
        raise UserError(
            f"--fine-tune-layers {args.fine_tune_layers} is negative: give 0 (no fine-tuning) or more"
        )
    if args.fine_tune_layers and args.fine_tune_epochs < 1:
        raise UserError(f"--fine-tune-epochs {args.fine_tune_epochs} is out of range: give 1 or more")


def summary(metrics: dict[str, Any], timings: dict[str, float], version_dir: Path) -> str:
    """The few lines printed when training is done."""
    counts = metrics["counts"]
    per_class = ", ".join(f"{name} {c['train']}+{c['validation']}" for name, c in counts["per_class"].items())
    lines = [
        f"classes: {len(metrics['class_names'])} ({per_class} train+validation images)",
        f"images: {counts['used']} used, {counts['skipped']} unreadable skipped",
        f"validation accuracy: {metrics['accuracy']:.4f}",
    ]
    if metrics["roc_auc"] is not None:
        lines.append(
            f"ROC AUC: {metrics['roc_auc']:.4f}; threshold {metrics['decision_threshold']:.4f} on "
            f"{metrics['positive_class']!r} (F1 {metrics['threshold_f1']:.4f})"
        )
    phases = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in timings.items())
    lines.append(f"time: {sum(timings.values()):.1f}s ({phases})")
    lines.append(f"exported: {version_dir}")
    return "\n".join(lines)


def _plain(value: object) -> object:
    """A parsed argument as JSON can hold it (paths as strings)."""
    return str(value) if isinstance(value, Path) else value
