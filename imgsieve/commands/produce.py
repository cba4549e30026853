"""Stream every image of SOURCE (s3://bucket/prefix/ or a folder) to the consumers as one job, and exit
once every image has a committed row; print the job's summary. Re-running a job resumes it: images
that already have a row for the consumers' model version are skipped. The DB password comes from
IMGSIEVE_DB_PASSWORD or the config file's [db] password, never from the command line."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from imgsieve.config import Config, add_flag, flag_overrides, load_config
from imgsieve.errors import UserError
from imgsieve.store.connection import parse_db_url, tls_options
from imgsieve.store.db import Store
from imgsieve.store.summary import JobSummary
from imgsieve.stream.producer import JobResult, Producer
from imgsieve.stream.source import open_source

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the produce flags."""
    parser.add_argument("source", metavar="SOURCE", help="s3://bucket/prefix/ or a local folder")
    parser.add_argument("--job", required=True, help="job name; the same name resumes the job")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML config file ([producer], [db] sections)",
    )
    add_flag(parser, "--bind", "producer", "bind", metavar="ENDPOINT")
    add_flag(parser, "--include", "producer", "include", action="append", metavar="GLOB")
    add_flag(parser, "--db", "db", "url", metavar="URL")
    add_flag(parser, "--ssl-ca", "db", "ssl_ca", type=Path, metavar="FILE")
    add_flag(parser, "--max-attempts", "producer", "max_attempts", type=int, metavar="N")
    add_flag(parser, "--item-timeout", "producer", "item_timeout", type=float, metavar="SECONDS")
    add_flag(parser, "--peer-timeout", "producer", "peer_timeout", type=float, metavar="SECONDS")
    add_flag(parser, "--prefetch", "producer", "prefetch", type=int, metavar="N")
    add_flag(parser, "--fetch-concurrency", "producer", "fetch_concurrency", type=int, metavar="N")
    add_flag(parser, "--max-bytes", "producer", "max_bytes", type=int, metavar="BYTES")
    add_flag(parser, "--curve-secret-key", "producer", "curve_secret_key", type=Path, metavar="FILE")
    add_flag(parser, "--curve-authorized-keys", "producer", "curve_authorized_keys", type=Path, metavar="DIR")


def stream_config(args: argparse.Namespace) -> Config:
    """Load the config for a stream command: file, IMGSIEVE_* environment, then flags."""
    overrides = flag_overrides(args)
    url = overrides.get("db", {}).get("url")
    if url is not None and parse_db_url(url).password is not None:
        raise UserError(
            "--db must not contain a password (command lines are visible to every user of the host); "
            "set IMGSIEVE_DB_PASSWORD or [db] password in the config file"
        )
    return load_config(args.config, os.environ, overrides)


def store_opener(config: Config) -> functools.partial[Store]:
    """Return a function that opens a new store connection (one per thread)."""
    password = config.db.password.get_secret_value() if config.db.password else None
    return functools.partial(Store.connect, config.db.url, password, ssl=tls_options(config.db.ssl_ca))


def run(args: argparse.Namespace) -> int:
    """Run the job to the end and print its summary."""
    config = stream_config(args)
    source = open_source(args.source, config.producer.include)
    open_store = store_opener(config)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, functools.partial(_on_signal, stop))
    result = Producer(config.producer, args.job, source, open_store).run(stop)
    if stop.is_set():
        log.warning("stopped before the end of job %s; run the same command again to resume it", args.job)
        return 143
    with open_store() as store:
        store.finish_job(args.job, result.acked, result.seconds)
        summary = store.job_summary(args.job)
    print(format_summary(summary, result))
    if result.abandoned:
        log.error(
            "%d image(s) have no row: even their error rows could not be written", len(result.abandoned)
        )
        return 1
    return 0


def _on_signal(stop: threading.Event, signum: int, frame: FrameType | None) -> None:
    """Ask the producer to stop at its next turn."""
    stop.set()


def format_summary(summary: JobSummary, result: JobResult) -> str:
    """Render the job's figures for stdout."""
    classes = ", ".join(f"{name} {count}" for name, count in summary.classes.items()) or "none"
    rate = result.acked / result.seconds if result.seconds > 0 else 0.0
    lines = [
        f"job {summary.job}: {result.listed} images in {summary.source} "
        f"(model {result.model[0]} version {result.model[1]})",
        f"  images:      {summary.rows} rows",
        f"  classified:  {summary.ok} ({classes})",
        f"  errors:      {summary.errors}",
    ]
    lines += [f"    {count} x {reason}" for reason, count in summary.error_reasons]
    lines += [
        f"  this run:    {result.acked} classified, {result.skipped} already done, "
        f"{result.redelivered} re-sent, {result.seconds:.1f} s",
        f"  images/s:    {rate:.1f}",
    ]
    lines += [f"  NO ROW for {uri}: {reason}" for uri, reason in result.abandoned]
    return "\n".join(lines)
