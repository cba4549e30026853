"""ModelClient against a real `imgsieve serve` on 127.0.0.1: batches, bad images, restarts, versions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imgsieve.stream.client import ModelClient, ModelNotFound, ModelUnavailable, Prediction, PredictionError
from tests.conftest import free_port
from tests.integration.serving import export_tiny_model, running_server, server_process

pytestmark = pytest.mark.integration

MODEL = "tiny"
CLASSES = ["drugs", "other"]
START_TIMEOUT_S = 120
NOT_AN_IMAGE = b"<html><body>403 Forbidden</body></html>"


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function in a fresh event loop (pytest itself calls only plain functions)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def jpeg(seed: int) -> bytes:
    """A small JPEG of random colour blocks; different seeds give different predictions."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(blocks).resize((64, 48), Image.Resampling.NEAREST).save(out, format="JPEG")
    return out.getvalue()


def status(root: str) -> dict[int, str]:
    """Return {version: state} from the server's model status, {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"{root}/v1/models/{MODEL}", timeout=5) as response:
            doc = json.load(response)
    except (OSError, ValueError):
        return {}
    return {int(s["version"]): s["state"] for s in doc.get("model_version_status", [])}


@contextlib.contextmanager
def serve_on(base: Path, port: int) -> Iterator[str]:
    """Run `imgsieve serve` on a given port (running_server picks its own), for restarts on one port."""
    command = [sys.executable, "-m", "imgsieve", "serve", "--model-base-path", str(base)]
    command += ["--model-name", MODEL, "--host", "127.0.0.1", "--port", str(port)]
    root = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while "AVAILABLE" not in status(root).values():
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    log.seek(0)
                    raise RuntimeError(f"imgsieve serve did not start:\n{log.read().decode()[-2000:]}")
                time.sleep(0.2)
            yield root
        finally:
            proc.terminate()
            assert proc.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Base path holding version 1 of the tiny model."""
    base = tmp_path_factory.mktemp("models") / MODEL
    export_tiny_model(base, CLASSES)
    return base


@pytest.fixture(scope="module")
def server(model_base: Path) -> Iterator[str]:
    """Root URL of a server shared by the tests that leave it as it is."""
    with running_server(model_base, MODEL) as root:
        yield root


@contextlib.asynccontextmanager
async def connection_counter(target_port: int) -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP relay to target_port; yields its port and a list of [open connections, most open at once]."""
    counts = [0, 0]

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts[0] += 1
        counts[1] = max(counts)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        counts[0] -= 1

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield relay_server.sockets[0].getsockname()[1], counts
    finally:
        relay_server.close()


def predictions(results: list[Prediction | PredictionError]) -> list[Prediction]:
    """Return results, asserting that every one is a Prediction."""
    assert all(isinstance(r, Prediction) for r in results), results
    return [r for r in results if isinstance(r, Prediction)]


@run_async
async def test_model_version(server: str) -> None:
    async with ModelClient(f"{server}/v1/models/{MODEL}") as client:
        assert await client.model_version() == (MODEL, 1)


@run_async
async def test_batch_predict(server: str) -> None:
    async with ModelClient(f"{server}/v1/models/{MODEL}") as client:
        results = predictions(await client.predict([jpeg(seed) for seed in range(8)]))
    assert len(results) == 8
    for result in results:
        assert list(result.scores) == CLASSES
        assert sum(result.scores.values()) == pytest.approx(1, abs=1e-5)
        assert result.top_class == max(result.scores, key=lambda name: result.scores[name])
        assert result.top_score == pytest.approx(max(result.scores.values()), abs=1e-6)
        assert result.model_version == 1
    assert len({round(r.top_score, 6) for r in results}) > 1  # different images, different answers


@pytest.mark.parametrize("bad_at", [[3], [0, 6]])
@run_async
async def test_bad_images_are_isolated(server: str, bad_at: list[int]) -> None:
    good = [jpeg(seed) for seed in range(8)]
    truncated = good[5][: len(good[5]) // 2]
    batch = [
        (NOT_AN_IMAGE if i == bad_at[0] else truncated) if i in bad_at else data
        for i, data in enumerate(good)
    ]
    async with ModelClient(f"{server}/v1/models/{MODEL}") as client:
        results = await client.predict(batch)
        alone = predictions(await client.predict([data for i, data in enumerate(good) if i not in bad_at]))
    errors = [r for r in results if isinstance(r, PredictionError)]
    assert [i for i, r in enumerate(results) if isinstance(r, PredictionError)] == bad_at
    assert "image file format" in errors[0].reason, errors[0].reason  # the server's own words
    assert all("JPEG" in e.reason for e in errors[1:]), errors
    for got, expected in zip([r for r in results if isinstance(r, Prediction)], alone, strict=True):
        assert got.scores == pytest.approx(expected.scores, abs=1e-5)


@run_async
async def test_unknown_model_is_a_clear_error_after_the_deadline(server: str) -> None:
    # TF Serving answers 404 for a wrong name and before a first version loads alike, so the
    # client waits for the deadline before it gives up.
    async with ModelClient(f"{server}/v1/models/nope", backoff_s=0.1, deadline_s=2) as client:
        with pytest.raises(ModelNotFound, match=r"still has no model 'nope'.*check the model name"):
            await client.predict([jpeg(0)])


@run_async
async def test_gives_up_when_nothing_listens() -> None:
    async with ModelClient(f"http://127.0.0.1:{free_port()}/v1/models/{MODEL}", deadline_s=2) as client:
        with pytest.raises(ModelUnavailable, match="check that it is running"):
            await client.predict([jpeg(0)])


@run_async
async def test_several_requests_in_flight(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    async with connection_counter(port) as (relay_port, counts):
        url = f"http://127.0.0.1:{relay_port}/v1/models/{MODEL}"
        async with ModelClient(url, concurrency=3) as client:
            batches = [[jpeg(seed)] * 4 for seed in range(12)]
            results = await asyncio.gather(*(client.predict(batch) for batch in batches))
            alone = await client.predict([batch[0] for batch in batches])
    assert counts[1] == 3  # requests overlapped, and never more than the pool allows
    for batch_results, expected in zip(results, predictions(alone), strict=True):
        assert [r.scores for r in predictions(batch_results)] == [
            pytest.approx(expected.scores, abs=1e-5)
        ] * 4


@pytest.mark.slow
@run_async
async def test_rides_out_a_server_restart(model_base: Path) -> None:
    port = free_port()
    down_s = 5.0
    url = f"http://127.0.0.1:{port}/v1/models/{MODEL}"
    # Few retries and short waits: a server that is down is waited for until the deadline, not counted.
    async with ModelClient(url, max_retries=2, backoff_s=0.1, max_backoff_s=1, deadline_s=120) as client:
        with contextlib.ExitStack() as running:
            await asyncio.to_thread(running.enter_context, serve_on(model_base, port))
            predictions(await client.predict([jpeg(0)]))  # leaves a keep-alive connection that will break
        stopped = time.monotonic()
        call = asyncio.create_task(client.predict([jpeg(seed) for seed in range(4)]))
        await asyncio.sleep(down_s)
        assert not call.done()
        with contextlib.ExitStack() as running:
            await asyncio.to_thread(running.enter_context, serve_on(model_base, port))
            assert len(predictions(await call)) == 4
    assert time.monotonic() - stopped > down_s


@pytest.mark.slow
@run_async
async def test_follows_a_new_version_and_pins_an_explicit_one(tmp_path: Path) -> None:
    base = tmp_path / MODEL
    export_tiny_model(base, CLASSES)
    with running_server(base, MODEL, poll_seconds=0.5) as root:
        async with (
            ModelClient(f"{root}/v1/models/{MODEL}") as latest,
            ModelClient(f"{root}/v1/models/{MODEL}/versions/1") as pinned,
        ):
            assert predictions(await latest.predict([jpeg(0)]))[0].model_version == 1
            assert predictions(await pinned.predict([jpeg(0)]))[0].model_version == 1
            export_tiny_model(base, CLASSES)
            deadline = time.monotonic() + START_TIMEOUT_S
            while status(root).get(2) != "AVAILABLE" or status(root).get(1, "END") != "END":
                assert time.monotonic() < deadline, status(root)
                await asyncio.sleep(0.2)
            assert predictions(await latest.predict([jpeg(0)]))[0].model_version == 2
            with pytest.raises(ModelNotFound, match="no longer serves version 1"):
                await pinned.predict([jpeg(0)])


@run_async
async def test_waits_for_a_server_that_has_no_version_yet(tmp_path: Path) -> None:
    base = tmp_path / "m"
    base.mkdir()
    with server_process(base, MODEL, wait_for_version=False, poll_seconds=0.2) as proc:
        async with ModelClient(f"{proc.url}/v1/models/{MODEL}", backoff_s=0.1, max_backoff_s=0.5) as client:
            pending = asyncio.ensure_future(client.predict([jpeg(0)]))
            await asyncio.sleep(1.0)
            assert not pending.done()  # 404 from a server with no version yet is waited out
            await asyncio.to_thread(export_tiny_model, base, ["a", "b"])
            (result,) = await asyncio.wait_for(pending, timeout=60)
    assert isinstance(result, Prediction)
    assert result.model_version == 1
