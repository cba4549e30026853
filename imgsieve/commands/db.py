"""Placeholder for the `db` subcommand (being written)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the db flags."""


def run(args: argparse.Namespace) -> int:
    """Run the db subcommand."""
    raise NotImplementedError
