"""Measure `imgsieve serve` alone: images/s of batches posted straight to the model server.

    bench_stream.py --model-url http://127.0.0.1:8501/v1/models/demo --images data/demo/stream

Reads every *.jpg of the folder into memory first (so disk time is not measured), optionally shrinks
them as the consumers do (--shrink-side), then posts them in batches of --batch-size with
--concurrency batches in flight, twice: a warm-up pass and the measured one. Compare the figure with
the images/s that `imgsieve produce` prints for the same images: the difference is what the stream
(listing, fetching, ZeroMQ, vetting, MySQL) costs on top of the model.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from imgsieve.stream import images
from imgsieve.stream.client import ModelClient


async def classify_all(client: ModelClient, data: list[bytes], batch_size: int) -> float:
    """Post every image once in batches (the client bounds concurrency); return the seconds taken."""
    start = time.perf_counter()
    batches = [data[i : i + batch_size] for i in range(0, len(data), batch_size)]
    await asyncio.gather(*(client.predict(batch) for batch in batches))
    return time.perf_counter() - start


async def bench(args: argparse.Namespace) -> None:
    """Load, optionally shrink, warm up, measure, print."""
    paths = sorted(args.images.glob("*.jpg"))
    data = [p.read_bytes() for p in paths]
    if args.shrink_side:
        shrink_start = time.perf_counter()
        data = [images.shrink(d, images.inspect(d, "x", 1 << 30, 1 << 30), args.shrink_side) for d in data]
        print(f"shrinking {len(data)} images took {time.perf_counter() - shrink_start:.1f} s (one core)")
    async with ModelClient(args.model_url, concurrency=args.concurrency) as client:
        await classify_all(client, data, args.batch_size)
        seconds = await classify_all(client, data, args.batch_size)
    mb = sum(map(len, data)) / 1e6
    print(
        f"imgsieve serve alone: {len(data)} images ({mb:.1f} MB) in batches of {args.batch_size}, "
        f"{args.concurrency} in flight: {seconds:.1f} s, {len(data) / seconds:.1f} images/s"
    )


def main() -> None:
    """Parse the flags and run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-url", required=True, help="TF Serving REST URL of the model")
    parser.add_argument("--images", type=Path, required=True, help="folder of *.jpg images")
    parser.add_argument("--batch-size", type=int, default=32, help="images per request (default: 32)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight (default: 2)")
    parser.add_argument(
        "--shrink-side",
        type=int,
        default=0,
        help="shrink as consumers do with this side; 0 sends originals (default: 0)",
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
