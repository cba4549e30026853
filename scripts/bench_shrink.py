"""Measure whether shrinking images on the consumer makes classification faster end to end.

Starts `imgsieve serve` on a model (by default a freshly exported ResNet50 with random weights: the
real architecture, so the real server cost), then sends the same sample photos through the
consumer's path, `inspect` then `ModelClient.predict`, with and without `shrink`, alternating the
two for several rounds. Prints images/s and CPU milliseconds per image of the client (this process:
vetting, shrinking, base64 and JSON) and of the server (from /proc/PID/stat), and how far the
shrunk images' scores move. Client and server share this machine's cores, as they do in the demo.

    .venv/bin/python scripts/bench_shrink.py [--model-base-path DIR] [--model tiny] [--images 48]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from imgsieve.stream.client import ModelClient, Prediction, PredictionError
from imgsieve.stream.images import ImageInfo, inspect, shrink

MODEL_NAME = "bench"
CLASS_NAMES = ["drugs", "other"]
JPEG_QUALITY = (85, 95)
MAX_BYTES = 20_000_000
MAX_PIXELS = 40_000_000
START_TIMEOUT_S = 300
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MODES = ("original", "shrunk")

log = logging.getLogger("bench_shrink")


@dataclass
class Totals:
    """What one mode cost over all its rounds."""

    images: int = 0
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    bytes_sent: int = 0


def parse_args() -> argparse.Namespace:
    """Parse the benchmark's flags."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model-base-path", type=Path, help="model to serve (default: export one to a temp dir)"
    )
    parser.add_argument(
        "--model",
        choices=["resnet50", "tiny"],
        default="resnet50",
        help="what to export without --model-base-path",
    )
    parser.add_argument("--image-size", type=int, default=224, help="model input side, pixels (default 224)")
    parser.add_argument("--images", type=int, default=48, help="sample photos per round (default 48)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per mode (default 3)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per predict request (default 8)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample photos (default 0)")
    parser.add_argument(
        "--upscale",
        type=float,
        default=1.0,
        help="enlarge each photo's sides by this factor; 2.5 gives 2-12 MP, like phone photos (default 1)",
    )
    return parser.parse_args()


def export(base: Path, model: str, image_size: int) -> None:
    """Export an untrained ResNet50 classifier or a tiny conv net under base."""
    import keras

    from imgsieve.model.export import export_model

    inputs = keras.Input((image_size, image_size, 3))
    if model == "resnet50":
        resnet = keras.applications.ResNet50(
            weights=None, include_top=False, input_shape=(image_size, image_size, 3)
        )
        pooled = keras.layers.GlobalAveragePooling2D()(resnet(inputs))
    else:
        pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, strides=2)(inputs))
    network = keras.Model(inputs, keras.layers.Dense(len(CLASS_NAMES), activation="softmax")(pooled))
    export_model(network, CLASS_NAMES, base, image_size)


def sample_photos(count: int, seed: int, upscale: float) -> list[bytes]:
    """Render count synthetic 0.3-2 MP photos, enlarged by upscale, as JPEGs of quality 85-95."""
    from imgsieve.sampledata import render_photo

    rng = np.random.default_rng(seed)
    photos = []
    for i in tqdm(range(count), desc="rendering photos", unit="photo", file=sys.stderr):
        out = io.BytesIO()
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        photo = render_photo(CLASS_NAMES[i % 2], rng)
        if upscale != 1:
            size = (round(photo.width * upscale), round(photo.height * upscale))
            photo = photo.resize(size, Image.Resampling.BICUBIC)
        photo.save(out, format="JPEG", quality=quality)
        photos.append(out.getvalue())
    return photos


def server_cpu_s(pid: int) -> float:
    """Return the user + system CPU seconds the process pid has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat


@contextmanager
def model_server(base: Path, port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `imgsieve serve` on base until the block ends; yield the process once a version is up."""
    command = [sys.executable, "-m", "imgsieve", "serve", "--model-base-path", str(base)]
    command += ["--model-name", MODEL_NAME, "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}/metadata", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"imgsieve serve did not start:\n{log_path.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def prepare(photos: list[bytes], image_size: int, shrinking: bool) -> list[bytes]:
    """Vet photos as a consumer does, and shrink them if asked."""
    infos: list[ImageInfo] = [
        inspect(data, f"photo {i}", MAX_BYTES, MAX_PIXELS) for i, data in enumerate(photos)
    ]
    if not shrinking:
        return photos
    return [shrink(data, info, image_size) for data, info in zip(photos, infos, strict=True)]


async def one_round(
    client: ModelClient, photos: list[bytes], image_size: int, batch_size: int, shrinking: bool
) -> tuple[int, list[Prediction | PredictionError]]:
    """Vet (and shrink) then classify photos in batches, batches in parallel; return bytes sent and results."""
    batches = [photos[i : i + batch_size] for i in range(0, len(photos), batch_size)]
    sent = 0

    async def one_batch(batch: list[bytes]) -> list[Prediction | PredictionError]:
        nonlocal sent
        ready = await asyncio.to_thread(prepare, batch, image_size, shrinking)
        sent += sum(len(data) for data in ready)
        return await client.predict(ready)

    results = await asyncio.gather(*(one_batch(batch) for batch in batches))
    return sent, [r for batch_results in results for r in batch_results]


async def measure(
    args: argparse.Namespace, url: str, pid: int, photos: list[bytes]
) -> tuple[dict[str, Totals], dict[str, list[float]]]:
    """Run warm-up and measured rounds of both modes; return their totals and first-round scores."""
    totals = {mode: Totals() for mode in MODES}
    scores: dict[str, list[float]] = {mode: [] for mode in MODES}
    async with ModelClient(url, concurrency=args.concurrency) as client:
        for mode in MODES:  # warm-up: the first calls trace functions and fill caches
            await one_round(
                client, photos[: args.batch_size * 2], args.image_size, args.batch_size, mode == MODES[1]
            )
        for round_number in range(args.rounds):
            for mode in MODES if round_number % 2 == 0 else MODES[::-1]:
                started, cpu, server = time.perf_counter(), time.process_time(), server_cpu_s(pid)
                sent, results = await one_round(
                    client, photos, args.image_size, args.batch_size, mode == MODES[1]
                )
                total = totals[mode]
                total.wall_s += time.perf_counter() - started
                total.client_cpu_s += time.process_time() - cpu
                total.server_cpu_s += server_cpu_s(pid) - server
                total.images += len(photos)
                total.bytes_sent += sent
                if round_number == 0:
                    scores[mode] = [r.scores[CLASS_NAMES[0]] for r in results if isinstance(r, Prediction)]
                log.info("round %d %s: %.1f s", round_number + 1, mode, time.perf_counter() - started)
    return totals, scores


def report(
    args: argparse.Namespace, photos: list[bytes], totals: dict[str, Totals], scores: dict[str, list[float]]
) -> None:
    """Print the photos measured and each mode's throughput, CPU and bytes per image."""
    infos = [inspect(data, "photo", MAX_BYTES, MAX_PIXELS) for data in photos]
    megapixels = [info.width * info.height / 1e6 for info in infos]
    shrunk = sum(
        shrink(data, info, args.image_size) is not data for data, info in zip(photos, infos, strict=True)
    )
    print(
        f"{len(photos)} photos of {min(megapixels):.1f}-{max(megapixels):.1f} MP ({shrunk} shrunk) x {args.rounds} "
        f"rounds, model input {args.image_size} px, batch {args.batch_size}, concurrency {args.concurrency}"
    )
    print(
        f"{'mode':10s} {'images/s':>9s} {'client ms/img':>14s} {'server ms/img':>14s} {'total ms/img':>13s} {'KB/img':>7s}"
    )
    for mode, t in totals.items():
        client_ms, server_ms = 1000 * t.client_cpu_s / t.images, 1000 * t.server_cpu_s / t.images
        print(
            f"{mode:10s} {t.images / t.wall_s:9.1f} {client_ms:14.1f} {server_ms:14.1f} "
            f"{client_ms + server_ms:13.1f} {t.bytes_sent / t.images / 1000:7.0f}"
        )
    moved = np.abs(np.array(scores[MODES[0]]) - np.array(scores[MODES[1]]))
    print(f"score change from shrinking: mean {moved.mean():.4f}, max {moved.max():.4f}")


def main() -> None:
    """Set up the model and photos, run the server, measure."""
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-shrink-") as tmp:
        base = args.model_base_path
        if base is None:
            base = Path(tmp) / "model"
            log.info("exporting an untrained %s at %d px to %s", args.model, args.image_size, base)
            export(base, args.model, args.image_size)
        photos = sample_photos(args.images, args.seed, args.upscale)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with model_server(base, port, Path(tmp) / "server.log") as server:
            url = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}"
            totals, scores = asyncio.run(measure(args, url, server.pid, photos))
    report(args, photos, totals, scores)


if __name__ == "__main__":
    main()
