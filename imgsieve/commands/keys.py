"""Make a CURVE key pair for the stream's ZeroMQ link: DIR/NAME.key (public, to copy to the peer) and
DIR/NAME.key_secret (the pair, mode 0600: it never leaves this host). Existing files are kept, so running
it again changes nothing. The producer lists the consumers' NAME.key files in one folder
([producer] curve_authorized_keys); each consumer gets the producer's NAME.key ([consumer] curve_producer_key)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from imgsieve.errors import UserError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the keys flags."""
    parser.add_argument(
        "directory", type=Path, metavar="DIR", help="folder for the key files (created if missing)"
    )
    parser.add_argument(
        "--name",
        default="imgsieve",
        help="base name of the files: NAME.key and NAME.key_secret (letters, digits, '.', '_', '-')",
    )


def run(args: argparse.Namespace) -> int:
    """Make the key pair unless it exists, and print where it is and its public key."""
    from imgsieve.stream import curve

    if not NAME_PATTERN.match(args.name):
        raise UserError(f"--name {args.name!r}: use letters, digits, '.', '_' and '-' only")
    public, secret, created = curve.generate(args.directory, args.name)
    state = "created" if created else "kept existing"
    print(f"{state} {secret} (secret) and {public}: public key {curve.public_key(public).decode()}")
    return 0
