"""Write synthetic photos: a labelled set OUT/<class>/*.jpg for training, or with --unlabelled N a flat
set OUT/*.jpg for streaming (its true classes in OUT/_truth.csv). Deterministic from the seed."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

BYTES_PER_MB = 1_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sample-data flags."""
    parser.add_argument("out", type=Path, metavar="OUT", help="folder to write (created if missing)")
    parser.add_argument("--per-class", type=int, default=100, help="labelled images per class (at least 1)")
    parser.add_argument(
        "--unlabelled",
        type=int,
        default=0,
        metavar="N",
        help="write N unlabelled images as OUT/*.jpg and OUT/_truth.csv instead of the labelled set; "
        "0 writes the labelled set",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed writes byte-identical files"
    )


def run(args: argparse.Namespace) -> int:
    """Write the sample images and print what was written."""
    from imgsieve import sampledata

    started = time.monotonic()
    if args.unlabelled:
        counts = sampledata.write_unlabelled(args.out, args.unlabelled, args.seed)
    else:
        counts = sampledata.write_labelled(args.out, args.per_class, args.seed)
    megabytes = sum(p.stat().st_size for p in args.out.rglob("*.jpg")) / BYTES_PER_MB
    per_class = ", ".join(f"{cls} {n}" for cls, n in counts.items())
    print(
        f"wrote {sum(counts.values())} images ({per_class}) to {args.out}: "
        f"{megabytes:.1f} MB in {time.monotonic() - started:.1f} s"
    )
    return 0
