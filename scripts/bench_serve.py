"""Measure `imgsieve serve` throughput against the same SavedModel called in-process.

Starts the server on MODEL_BASE_PATH and sends synthetic JPEGs (one image per request) two ways:
sequentially from one client (batch 1), then from --clients concurrent clients (server-side batching
merges them). Then, with the server stopped so both get the machine to themselves, calls the
SavedModel's serving signature in this process at batch 1 and at the mean batch size the server
reached. Prints images/s for each and the server's mean batch size.

    .venv/bin/python scripts/bench_serve.py model/NAME [--model-name NAME] [--images 256] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

START_TIMEOUT_SECONDS = 180.0
WARMUP_REQUESTS = 8

log = logging.getLogger("bench_serve")


def make_jpegs(count: int, width: int, height: int, seed: int = 0) -> list[bytes]:
    """Synthetic photos: smooth random colour fields with noise, JPEG-encoded."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        corners = rng.integers(0, 256, size=(2, 2, 3)).astype(np.float32)
        ys, xs = np.linspace(0, 1, height)[:, None, None], np.linspace(0, 1, width)[None, :, None]
        field = (corners[0, 0] * (1 - ys) * (1 - xs) + corners[0, 1] * (1 - ys) * xs) + (
            corners[1, 0] * ys * (1 - xs) + corners[1, 1] * ys * xs
        )
        pixels = np.clip(field + rng.normal(0, 12, size=(height, width, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(base: Path, name: str, max_batch_size: int, batch_timeout_ms: float) -> Iterator[str]:
    """Run `imgsieve serve` until the block ends; yield its URL once the model answers."""
    port = free_port()
    argv = [sys.executable, "-m", "imgsieve", "serve", "--model-base-path", str(base), "--model-name", name]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--max-batch-size", str(max_batch_size)]
    argv += ["--batch-timeout-ms", str(batch_timeout_ms)]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as server_log:
        process = subprocess.Popen(argv, stdout=server_log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while True:
                try:
                    urllib.request.urlopen(f"{url}/v1/models/{name}/metadata", timeout=5).close()
                    break
                except OSError:  # not listening yet, or 404 before the model loads
                    if process.poll() is not None or time.monotonic() > deadline:
                        server_log.seek(0)
                        tail = server_log.read().decode()[-3000:]
                        raise SystemExit(f"imgsieve serve did not start:\n{tail}") from None
                    time.sleep(0.2)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


async def send_all(url: str, name: str, bodies: list[bytes], clients: int) -> float:
    """Send every body from `clients` concurrent clients; return the seconds it took."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    predict = f"{url}/v1/models/{name}:predict"
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(predict, data=body) as response:
                    if response.status != 200:
                        raise SystemExit(f"predict answered {response.status}: {await response.text()}")
                    await response.read()

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - start


def batch_totals(url: str) -> tuple[float, float]:
    """(images, model calls) so far, from the batch size histogram on the server's Prometheus page."""
    with urllib.request.urlopen(f"{url}/monitoring/prometheus/metrics") as response:
        text = response.read().decode()
    totals = []
    for series in ("sum", "count"):
        match = re.search(rf"^imgsieve_serve_batch_size_{series}\{{[^}}]*\}} (\S+)$", text, re.M)
        totals.append(float(match[1]) if match else 0.0)
    return totals[0], totals[1]


def in_process_rate(version_dir: Path, images: list[bytes], batch_size: int) -> float:
    """Images/s of the serving signature called directly on batches of batch_size."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    batches = [tf.constant(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    signature(image_bytes=batches[0])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        signature(image_bytes=batch)
    return len(images) / (time.perf_counter() - start)


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_base_path", type=Path, help="base path holding numbered versions")
    parser.add_argument(
        "--model-name", default=None, help="model name (default: the base path's folder name)"
    )
    parser.add_argument("--images", type=int, default=256, help="images sent in each phase")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in the batched phase")
    parser.add_argument("--max-batch-size", type=int, default=64, help="server --max-batch-size")
    parser.add_argument("--batch-timeout-ms", type=float, default=5.0, help="server --batch-timeout-ms")
    parser.add_argument("--width", type=int, default=320, help="width of the synthetic photos")
    parser.add_argument("--height", type=int, default=240, help="height of the synthetic photos")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    base = args.model_base_path.resolve()
    name = args.model_name or base.name
    versions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())
    if not versions:
        raise SystemExit(f"no numbered versions under {base}")
    images = make_jpegs(args.images, args.width, args.height)
    bodies = [b'{"instances":[{"b64":"' + base64.b64encode(image) + b'"}]}' for image in images]
    log.info(
        "%d JPEGs of %dx%d, %.0f KB each on average",
        len(images),
        args.width,
        args.height,
        sum(map(len, images)) / len(images) / 1024,
    )

    with running_server(base, name, args.max_batch_size, args.batch_timeout_ms) as url:
        asyncio.run(send_all(url, name, bodies[:WARMUP_REQUESTS], 1))
        log.info("sequential: %d requests of 1 image from 1 client", len(bodies))
        sequential = len(bodies) / asyncio.run(send_all(url, name, bodies, 1))
        images_before, calls_before = batch_totals(url)
        log.info("concurrent: %d requests of 1 image from %d clients", len(bodies), args.clients)
        concurrent = len(bodies) / asyncio.run(send_all(url, name, bodies, args.clients))
        images_after, calls_after = batch_totals(url)
    batch = (images_after - images_before) / (calls_after - calls_before)
    log.info("in-process calls of the SavedModel")
    direct_one = in_process_rate(base / str(versions[-1]), images, 1)
    direct_batched = in_process_rate(base / str(versions[-1]), images, max(1, round(batch)))

    print(f"model {name} version {versions[-1]} ({base}), {len(images)} images of {args.width}x{args.height}")
    print(f"{'server, batch 1 (1 client, sequential)':48s} {sequential:8.1f} images/s")
    print(f"{'server, batching (' + str(args.clients) + ' clients)':48s} {concurrent:8.1f} images/s")
    print(f"{'  mean images per model call while batching':48s} {batch:8.1f}")
    print(f"{'in-process, batch 1':48s} {direct_one:8.1f} images/s")
    print(f"{'in-process, batch ' + str(max(1, round(batch))):48s} {direct_batched:8.1f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
