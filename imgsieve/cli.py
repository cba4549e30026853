"""The `imgsieve` command: one entry point, one subcommand per stage.

Each subcommand lives in `imgsieve.commands.<name>` and exposes `add_arguments(parser)` and
`run(args) -> int`. Those modules import only argparse-level code at the top, so `imgsieve --help`
and the stream commands start fast and never pull in TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from imgsieve import __version__
from imgsieve.errors import UserError

# (subcommand, module under imgsieve.commands, one-line help)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("sample-data", "sample_data", "write synthetic labelled and unlabelled photos for demos and tests"),
    ("train", "train", "train a ResNet50 classifier on a folder of <class>/ images and export it"),
    ("serve", "serve", "serve exported models over TensorFlow Serving's REST API"),
    ("db", "db", "create or migrate the MySQL schema, inspect jobs"),
    ("produce", "produce", "stream every image of an S3 prefix or folder to the consumers, as one job"),
    ("consume", "consume", "classify images from a producer with the model server, write rows to MySQL"),
    ("keys", "keys", "make a CURVE key pair that encrypts and authenticates the producer-consumer link"),
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="imgsieve",
        description="Train, export, serve and stream an image classifier at scale.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"imgsieve {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log on stderr",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(f"imgsieve.commands.{module_name}")
        sub = subparsers.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the chosen subcommand and return its exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except UserError as exc:
        print(f"imgsieve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
