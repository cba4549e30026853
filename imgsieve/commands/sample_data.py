"""Write synthetic photos: a labelled set OUT/<class>/*.jpg for training, or with --unlabelled N a flat
set OUT/*.jpg for streaming (its true classes in OUT/_truth.csv). Deterministic from the seed."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sample-data flags."""
    parser.add_argument("out", type=Path, metavar="OUT", help="folder to write (created if missing)")
    parser.add_argument("--per-class", type=int, default=100, help="labelled images per class")
    parser.add_argument(
        "--unlabelled",
        type=int,
        default=0,
        metavar="N",
        help="write N unlabelled images as OUT/*.jpg instead of the labelled set",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed writes the same files"
    )


def run(args: argparse.Namespace) -> int:
    """Write the sample images and print what was written."""
    raise NotImplementedError
