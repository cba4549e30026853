"""Run the model server process: load the current version, listen, poll for new versions, and on
SIGTERM or SIGINT stop accepting, answer the requests in flight and exit 0.

As TF Serving does, the highest version on disk is loaded before the port opens, so a server that
answers has a model; on an empty base path it starts without one and picks up the first version
dropped in.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from imgsieve.errors import UserError
from imgsieve.serve.app import create_app
from imgsieve.serve.metrics import Metrics
from imgsieve.serve.registry import ModelRegistry

SHUTDOWN_TIMEOUT_SECONDS = 30.0  # longest wait for requests in flight after SIGTERM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig:
    """What `imgsieve serve` serves and how."""

    model_name: str
    base_path: Path
    host: str = "0.0.0.0"
    port: int = 8501
    max_batch_size: int = 64
    batch_timeout_ms: float = 5.0
    poll_seconds: float = 2.0


def serve(config: ServeConfig) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status (0 after a clean shutdown)."""
    registry = ModelRegistry(config.model_name, config.base_path, config.poll_seconds)
    try:
        asyncio.run(_serve(config, registry))
    finally:
        registry.stop()
    return 0


async def _serve(config: ServeConfig, registry: ModelRegistry) -> None:
    """Load, listen, and wait for a stop signal."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await loop.run_in_executor(None, registry.poll_once)
    if stop.is_set():
        return
    metrics = Metrics()
    app = create_app(registry, metrics, config.max_batch_size, config.batch_timeout_ms / 1000.0)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, config.host, config.port).start()
        except OSError as exc:
            raise UserError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}; "
                "stop what uses that port or pass another --port"
            ) from exc
        registry.start_polling()
        version = registry.latest_version()
        log.info(
            "serving model %s version %s from %s at http://%s:%d/v1/models/%s (batches of up to %d, %g ms)",
            config.model_name,
            version if version is not None else "(none yet)",
            config.base_path,
            config.host,
            config.port,
            config.model_name,
            config.max_batch_size,
            config.batch_timeout_ms,
        )
        await stop.wait()
        log.info("stopping: no new connections; finishing the requests in flight")
    finally:
        await runner.cleanup()
    log.info("stopped")
