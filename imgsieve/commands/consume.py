"""Placeholder for the `consume` subcommand (being written)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the consume flags."""


def run(args: argparse.Namespace) -> int:
    """Run the consume subcommand."""
    raise NotImplementedError
