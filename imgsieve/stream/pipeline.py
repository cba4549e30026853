"""A consumer's work on the images it holds: vet, shrink, batch, classify, write rows.

Each received image is vetted in a worker thread (bad input becomes an error row with its reason),
optionally shrunk, then queued. The batcher forms batches of up to batch_size (waiting at most
batch_wait for a part-full one) and runs up to `concurrency` of them at once: predict on the model
server, build one row per image, write them in one upsert and commit on the store's own thread (so
the event loop keeps heartbeating), then report the batch as done. A batch whose model call or write
fails is reported failed with the reason, and the producer re-sends its images.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from imgsieve.config import ConsumerConfig
from imgsieve.store.db import PredictionRow, row_params
from imgsieve.stream import images
from imgsieve.stream.client import ModelClient, ModelError, Prediction, PredictionError

log = logging.getLogger(__name__)


@dataclass
class Work:
    """One image a consumer holds: from the link (generation) it came on, until it is done."""

    generation: int
    id: int
    uri: str
    job: str
    model: tuple[str, int]
    attempt: int
    received: float
    data: bytes | None = None
    error: str | None = None  # the error row to write instead of classifying

    @property
    def key(self) -> tuple[int, int]:
        """Item ids are unique per link, so a held image is known by (generation, id)."""
        return (self.generation, self.id)


def _storable(rows: list[PredictionRow]) -> tuple[list[PredictionRow], dict[str, str]]:
    """Turn rows the store would refuse into error rows saying why; return {uri: reason} for the hopeless."""
    kept, hopeless = [], {}
    for row in rows:
        candidate = row
        try:
            row_params(candidate)
        except ValueError as exc:
            candidate = dataclasses.replace(
                row, status="error", predicted_class=None, score=None, scores=None, error=str(exc)
            )
            try:
                row_params(candidate)
            except ValueError as again:
                hopeless[row.source_uri] = str(again)
                continue
        kept.append(candidate)
    return kept, hopeless


class VersionChangedError(Exception):
    """The model server answered with another model version than the job's."""


# (batch, failure reason or None when its rows are committed)
Done = Callable[[list[Work], str | None], None]
WriteRows = Callable[[list[PredictionRow]], Awaitable[None]]


class Pipeline:
    """Vets, batches and classifies Works, calling done(works, reason) when their fate is decided."""

    def __init__(self, config: ConsumerConfig, client: ModelClient, write_rows: WriteRows, done: Done):
        self.config = config
        self.client = client
        self.write_rows = write_rows
        self.done = done
        self.queue: asyncio.Queue[Work] = asyncio.Queue()
        self.vetting: set[asyncio.Task[None]] = set()
        self.batches: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(config.concurrency)
        self._batcher: asyncio.Task[None] | None = None
        self._forming: list[Work] = []
        # Set when the model server answers with another version than the job's: the link must re-HELLO.
        self.version_changed = False

    def start(self) -> None:
        """Start forming batches."""
        self._batcher = asyncio.create_task(self._form_batches(), name="batcher")

    def submit(self, work: Work) -> None:
        """Take in one image: final ones go straight to the batcher, others are vetted first."""
        if work.error is not None:
            self.queue.put_nowait(work)
            return
        task = asyncio.create_task(self._vet(work))
        self.vetting.add(task)
        task.add_done_callback(self.vetting.discard)

    async def _vet(self, work: Work) -> None:
        """Check (and maybe shrink) the image off the event loop; bad input turns into an error row."""
        try:
            work.data = await asyncio.to_thread(self._checked, work.data or b"", work.uri)
        except images.BadImage as exc:
            work.data, work.error = None, exc.reason
        self.queue.put_nowait(work)

    def _checked(self, data: bytes, uri: str) -> bytes:
        """Return the bytes to send for one image, or raise BadImage."""
        info = images.inspect(data, uri, self.config.max_bytes, self.config.max_pixels)
        if self.config.shrink_side:
            return images.shrink(data, info, self.config.shrink_side)
        return data

    async def _form_batches(self) -> None:
        """Group queued images into batches and start each when a concurrency slot is free."""
        loop = asyncio.get_running_loop()
        while True:
            # The batch being formed lives on self, so that stop_taking can return it if cancelled here.
            self._forming = batch = [await self.queue.get()]
            deadline = loop.time() + self.config.batch_wait
            while len(batch) < self.config.batch_size:
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time())))
                except TimeoutError:
                    break
            await self.slots.acquire()
            self._forming = []
            task = asyncio.create_task(self._run_batch(batch))
            self.batches.add(task)
            task.add_done_callback(self._batch_finished)

    def _batch_finished(self, task: asyncio.Task[None]) -> None:
        """Free the batch's concurrency slot."""
        self.batches.discard(task)
        self.slots.release()

    async def _run_batch(self, batch: list[Work]) -> None:
        """Classify, write and report one batch."""
        try:
            rows = await self._rows(batch)
            rows, unstorable = _storable(rows)
            await self.write_rows(rows)
        except asyncio.CancelledError:
            raise
        except VersionChangedError as exc:
            self.version_changed = True
            self.done(batch, str(exc))
            return
        except ModelError as exc:
            self.done(batch, f"model server: {exc}")
            return
        except Exception as exc:
            log.warning("batch of %d failed: %s", len(batch), exc)
            self.done(batch, f"{type(exc).__name__}: {exc}")
            return
        for uri, reason in unstorable.items():
            self.done([w for w in batch if w.uri == uri], reason)
        self.done([w for w in batch if w.uri not in unstorable], None)

    async def _rows(self, batch: list[Work]) -> list[PredictionRow]:
        """Predict the batch's good images and return one row per image."""
        good = [w for w in batch if w.error is None]
        results = await self.client.predict([w.data or b"" for w in good]) if good else []
        finished = time.monotonic()
        by_key = {w.key: r for w, r in zip(good, results, strict=True)}
        rows = []
        for work in batch:
            result = by_key.get(work.key)
            name, version = work.model
            reason = result.reason if isinstance(result, PredictionError) else "no answer"
            row = PredictionRow(
                source_uri=work.uri,
                job=work.job,
                model_name=name,
                model_version=version,
                status="error",
                predicted_class=None,
                score=None,
                scores=None,
                error=work.error or f"model server rejected the image: {reason}",
                consumer_host=self.config.host,
                latency_ms=(finished - work.received) * 1000,
                attempts=work.attempt,
            )
            if isinstance(result, Prediction):
                if result.model_version != version:
                    raise VersionChangedError(
                        f"model server switched to version {result.model_version}; the job uses {version}"
                    )
                row = dataclasses.replace(
                    row,
                    status="ok",
                    predicted_class=result.top_class,
                    score=result.top_score,
                    scores=result.scores,
                    error=None,
                )
            rows.append(row)
        return rows

    async def stop_taking(self) -> list[Work]:
        """Stop forming batches; return the images that were received but never started."""
        if self.vetting:
            await asyncio.gather(*self.vetting, return_exceptions=True)
        if self._batcher is not None:
            self._batcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._batcher
        unstarted, self._forming = self._forming, []
        while not self.queue.empty():
            unstarted.append(self.queue.get_nowait())
        return unstarted

    async def finish(self, grace: float) -> None:
        """Wait up to grace seconds for batches in flight, then cancel what is left."""
        if not self.batches:
            return
        _, late = await asyncio.wait(set(self.batches), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            log.warning(
                "%d batch(es) still running after %.0f s: the producer re-sends them", len(late), grace
            )
            await asyncio.wait(late)
