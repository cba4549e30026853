"""Train a ResNet50 transfer-learning classifier on DATA (a folder of <class>/ subfolders, or
s3://bucket/prefix/ with the same layout) and export it as the next version under --model-dir.

Phase 1 trains a new softmax head on features that the frozen base computes once; phase 2
(--fine-tune-layers K > 0) unfreezes the base's top K layers at a low learning rate. metrics.json,
plots and the run's command and library versions are written beside the exported model."""

from __future__ import annotations

import argparse
from pathlib import Path


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
        help="unfreeze the top K layers of the base for phase 2; 0 skips phase 2",
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
    raise NotImplementedError
