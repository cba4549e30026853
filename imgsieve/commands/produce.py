"""Placeholder for the `produce` subcommand (being written)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the produce flags."""


def run(args: argparse.Namespace) -> int:
    """Run the produce subcommand."""
    raise NotImplementedError
