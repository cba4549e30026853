"""Serve exported models over TensorFlow Serving's REST API (a local stand-in for the official
tensorflow/serving image): status, metadata and :predict, server-side batching, new versions picked
up while running, Prometheus metrics at /monitoring/prometheus/metrics."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the serve flags."""
    parser.add_argument(
        "--model-base-path",
        type=Path,
        required=True,
        help="folder holding numbered versions <N>/ of one SavedModel; the highest is served",
    )
    parser.add_argument("--model-name", required=True, help="name in the URL: /v1/models/NAME")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8501, help="REST port (TF Serving's default)")
    parser.add_argument(
        "--max-batch-size", type=int, default=64, help="most images merged into one model call"
    )
    parser.add_argument(
        "--batch-timeout-ms",
        type=float,
        default=5.0,
        help="longest a request waits for others to fill a batch, milliseconds",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=2.0,
        help="how often the base path is checked for a new version",
    )


def run(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM or SIGINT."""
    raise NotImplementedError
