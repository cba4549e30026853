"""Server-side batching: concurrent :predict requests are merged into one model call.

Requests for the same target (model version and signature) and with the same per-item input shapes
queue up; a batch leaves when it holds max_batch_size items or when its oldest request has waited
batch_timeout seconds, whichever comes first. The model call runs in a worker thread (TensorFlow
releases the GIL), so the event loop keeps accepting requests while the model computes, and those
requests fill the next batch. A request larger than max_batch_size is cut into chunks.

If a merged batch fails with INVALID_ARGUMENT (say, one undecodable image), each request in it is run
again alone, so only the request that carries the bad input fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from imgsieve.serve.status import INVALID_ARGUMENT, UNAVAILABLE, ServingError

log = logging.getLogger(__name__)

Tensors = dict[str, np.ndarray]
# Runs one model call: (target, inputs batched along dimension 0) -> outputs batched the same way.
ModelCall = Callable[[Hashable, Tensors], Tensors]


@dataclass
class _Chunk:
    """Up to max_batch_size items of one request, waiting to join a batch."""

    key: Hashable
    target: Hashable
    inputs: Tensors
    size: int
    enqueued_at: float
    future: asyncio.Future[Tensors] = field(repr=False)


def batch_dimension(inputs: Tensors) -> int | None:
    """The common size of dimension 0 of all inputs, or None if they cannot be batched."""
    sizes = {tensor.shape[0] if tensor.ndim else None for tensor in inputs.values()}
    if len(sizes) != 1:
        return None
    return sizes.pop()


class Batcher:
    """Merges concurrent submissions into model calls of at most max_batch_size items."""

    def __init__(
        self,
        model_call: ModelCall,
        max_batch_size: int,
        batch_timeout: float,
        on_split: Callable[[int], None] | None = None,
    ) -> None:
        """model_call runs in a worker thread; on_split(n) is told when a merged batch of n is rerun alone."""
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self._model_call = model_call
        self._on_split = on_split
        self._max_batch_size = max_batch_size
        self._batch_timeout = batch_timeout
        self._pending: deque[_Chunk] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        # One model call at a time: TensorFlow already spreads a call over every core.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-call")
        self._task = asyncio.get_running_loop().create_task(self._dispatch_forever())

    async def submit(self, target: Hashable, inputs: Tensors) -> Tensors:
        """Run inputs through target's model, batched with other submissions; return its outputs."""
        if self._closing:
            raise ServingError(UNAVAILABLE, "Server is shutting down")
        size = batch_dimension(inputs)
        loop = asyncio.get_running_loop()
        if not size:  # scalars, mismatched or empty first dimensions: TF batching cannot merge these
            return await loop.run_in_executor(self._executor, self._model_call, target, inputs)
        key = (
            target,
            tuple(sorted((name, tensor.shape[1:], tensor.dtype.str) for name, tensor in inputs.items())),
        )
        futures = []
        for start in range(0, size, self._max_batch_size):
            stop = min(start + self._max_batch_size, size)
            chunk_inputs = {name: tensor[start:stop] for name, tensor in inputs.items()}
            future: asyncio.Future[Tensors] = loop.create_future()
            self._pending.append(_Chunk(key, target, chunk_inputs, stop - start, loop.time(), future))
            futures.append(future)
        self._wakeup.set()
        results: list[Tensors] = []
        for outcome in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        if len(results) == 1:
            return results[0]
        return {name: np.concatenate([result[name] for result in results]) for name in results[0]}

    async def close(self) -> None:
        """Run what is queued, then stop the dispatcher and the worker thread."""
        self._closing = True
        self._wakeup.set()
        await self._task
        self._executor.shutdown(wait=True)

    async def _dispatch_forever(self) -> None:
        """Form batches and run them, one at a time, until closed and drained."""
        while True:
            while not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = await self._next_batch()
            try:
                await self._run(batch)
            except Exception as exc:  # a bug, not a bad request: say so, fail the batch, keep dispatching
                log.exception("model call failed")
                for chunk in batch:
                    _settle(chunk, exc)

    async def _next_batch(self) -> list[_Chunk]:
        """Wait until the oldest chunk's batch is full or its timeout is up, then take that batch."""
        loop = asyncio.get_running_loop()
        first = self._pending[0]
        deadline = first.enqueued_at + self._batch_timeout
        while not self._closing and self._fill(first.key) < self._max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)
        return self._take(first.key)

    def _fill(self, key: Hashable) -> int:
        """How many items the batch for key would hold if it left now (max_batch_size if it is full)."""
        batch, full = self._batch_for(key)
        return self._max_batch_size if full else sum(chunk.size for chunk in batch)

    def _take(self, key: Hashable) -> list[_Chunk]:
        """Remove and return the batch for key."""
        batch, _ = self._batch_for(key)
        taken = {id(chunk) for chunk in batch}
        self._pending = deque(chunk for chunk in self._pending if id(chunk) not in taken)
        return batch

    def _batch_for(self, key: Hashable) -> tuple[list[_Chunk], bool]:
        """The queued chunks for key, oldest first, that fit in one batch; and whether it is full."""
        batch: list[_Chunk] = []
        size = 0
        for chunk in self._pending:
            if chunk.key != key:
                continue
            if size + chunk.size > self._max_batch_size:
                return batch, True
            batch.append(chunk)
            size += chunk.size
        return batch, size == self._max_batch_size

    async def _run(self, batch: list[_Chunk]) -> None:
        """Run one merged batch and hand each chunk its slice of the outputs."""
        loop = asyncio.get_running_loop()
        target = batch[0].target
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            inputs = {
                name: np.concatenate([chunk.inputs[name] for chunk in batch]) for name in batch[0].inputs
            }
        try:
            outputs = await loop.run_in_executor(self._executor, self._model_call, target, inputs)
        except ServingError as exc:
            if len(batch) == 1 or exc.code != INVALID_ARGUMENT:
                for chunk in batch:
                    _settle(chunk, exc)
                return
            log.info("a merged batch of %d requests failed (%s); running each alone", len(batch), exc.code)
            if self._on_split is not None:
                self._on_split(len(batch))
            for chunk in batch:
                await self._run([chunk])
            return
        offset = 0
        for chunk in batch:
            _settle(chunk, _slice(outputs, offset, chunk.size, len(batch) > 1))
            offset += chunk.size


def _slice(outputs: Tensors, offset: int, size: int, merged: bool) -> Tensors | Exception:
    """One chunk's rows of batched outputs (or the error if an output has no batch dimension)."""
    if not merged:
        return outputs
    for name, tensor in outputs.items():
        if tensor.ndim == 0:
            return ServingError("INTERNAL", f"Batched output tensor has 0 dimensions: {name}")
    return {name: tensor[offset : offset + size] for name, tensor in outputs.items()}


def _settle(chunk: _Chunk, result: Tensors | BaseException) -> None:
    """Complete a chunk's future unless its request is already gone."""
    if chunk.future.done():
        return
    if isinstance(result, BaseException):
        chunk.future.set_exception(result)
    else:
        chunk.future.set_result(result)
