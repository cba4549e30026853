"""Serve exported models over TensorFlow Serving's REST API (a local stand-in for the official
tensorflow/serving image): status, metadata and :predict, server-side batching, new versions picked
up while running, Prometheus metrics at /monitoring/prometheus/metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from imgsieve.errors import UserError


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
    from imgsieve.serve.server import ServeConfig, serve

    if args.max_batch_size < 1:
        raise UserError(f"--max-batch-size must be at least 1, got {args.max_batch_size}")
    if args.batch_timeout_ms < 0:
        raise UserError(f"--batch-timeout-ms must be 0 or more, got {args.batch_timeout_ms}")
    if args.poll_seconds <= 0:
        raise UserError(f"--poll-seconds must be more than 0, got {args.poll_seconds}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {args.port}")
    if args.model_base_path.exists() and not args.model_base_path.is_dir():
        raise UserError(
            f"--model-base-path {args.model_base_path} is a file; pass the folder that holds the numbered versions"
        )
    config = ServeConfig(
        model_name=args.model_name,
        base_path=args.model_base_path.resolve(),
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms,
        poll_seconds=args.poll_seconds,
    )
    return serve(config)
