"""Classify images from a producer with the model server and write one row per image to MySQL.

Runs until SIGTERM or SIGINT (it is a daemon): reconnects when the producer restarts and serves one
job after another. On SIGTERM it finishes the batches in flight, returns the images it never
started, and exits 0. The DB password comes from IMGSIEVE_DB_PASSWORD or the config file's
[db] password, never from the command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from imgsieve.commands.produce import store_opener, stream_config
from imgsieve.config import add_flag
from imgsieve.stream.consumer import Consumer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the consume flags."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML config file ([consumer], [db], [model])",
    )
    add_flag(parser, "--producer", "consumer", "producer", metavar="ENDPOINT")
    add_flag(parser, "--model-url", "model", "url", metavar="URL")
    add_flag(parser, "--db", "db", "url", metavar="URL")
    add_flag(parser, "--ssl-ca", "db", "ssl_ca", type=Path, metavar="FILE")
    add_flag(parser, "--batch-size", "consumer", "batch_size", type=int, metavar="N")
    add_flag(parser, "--concurrency", "consumer", "concurrency", type=int, metavar="N")
    add_flag(parser, "--credit", "consumer", "credit", type=int, metavar="N")
    add_flag(parser, "--max-bytes", "consumer", "max_bytes", type=int, metavar="BYTES")
    add_flag(parser, "--max-pixels", "consumer", "max_pixels", type=int, metavar="PIXELS")
    add_flag(parser, "--shrink-side", "consumer", "shrink_side", type=int, metavar="PIXELS")
    add_flag(parser, "--curve-secret-key", "consumer", "curve_secret_key", type=Path, metavar="FILE")
    add_flag(parser, "--curve-producer-key", "consumer", "curve_producer_key", type=Path, metavar="FILE")


async def _serve(consumer: Consumer) -> None:
    """Run the consumer until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await consumer.run(stop)


def run(args: argparse.Namespace) -> int:
    """Serve producers until stopped; exit 0 after a clean stop."""
    config = stream_config(args)
    asyncio.run(_serve(Consumer(config, store_opener(config))))
    return 0
