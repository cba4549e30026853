"""Server-side batching: merging, chunking, timeouts, and isolating a bad request in a merged batch.

The model call is a plain function that doubles its input and records each call's batch, so the
tests see exactly which requests were merged into which call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

import numpy as np
import pytest

from imgsieve.serve.batcher import Batcher, Tensors, batch_dimension
from imgsieve.serve.status import INTERNAL, INVALID_ARGUMENT, UNAVAILABLE, ServingError

T = TypeVar("T")


class DoublingModel:
    """A model call: y = 2x; fails with INVALID_ARGUMENT on negative x and INTERNAL on x == 13."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls: list[tuple[Hashable, list[float]]] = []
        self.seconds = seconds
        self.threads: set[str] = set()

    def __call__(self, target: Hashable, inputs: Tensors) -> Tensors:
        """Run one call."""
        self.threads.add(threading.current_thread().name)
        self.calls.append((target, inputs["x"].tolist()))
        time.sleep(self.seconds)
        if (inputs["x"] < 0).any():
            raise ServingError(INVALID_ARGUMENT, "negative input")
        if (inputs["x"] == 13).any():
            raise ServingError(INTERNAL, "unlucky")
        return {"y": inputs["x"] * 2}

    def sizes(self) -> list[int]:
        """Items per call, in call order."""
        return [len(values) for _, values in self.calls]


def run_with_batcher(
    model: DoublingModel, max_batch_size: int, timeout: float, body: Callable[[Batcher], Awaitable[T]]
) -> T:
    """Run body with a fresh batcher in a fresh event loop, then close the batcher."""

    async def main() -> T:
        batcher = Batcher(model, max_batch_size, timeout)
        try:
            return await body(batcher)
        finally:
            await batcher.close()

    return asyncio.run(main())


def x(*values: float) -> Tensors:
    """A request of the given items."""
    return {"x": np.array(values, dtype=np.float32)}


def test_concurrent_requests_are_merged_up_to_max_batch_size() -> None:
    model = DoublingModel()

    async def body(batcher: Batcher) -> list[Tensors]:
        return await asyncio.gather(*(batcher.submit("m", x(i)) for i in range(10)))

    results = run_with_batcher(model, 4, 0.05, body)
    assert [result["y"].tolist() for result in results] == [[2.0 * i] for i in range(10)]
    assert model.sizes() == [4, 4, 2]
    assert model.threads == {"model-call_0"}


def test_large_request_is_cut_into_chunks_and_reassembled_in_order() -> None:
    model = DoublingModel()

    async def body(batcher: Batcher) -> Tensors:
        return await batcher.submit("m", x(*range(10)))

    result = run_with_batcher(model, 4, 0.0, body)
    assert result["y"].tolist() == [2.0 * i for i in range(10)]
    assert model.sizes() == [4, 4, 2]


def test_a_lone_request_waits_at_most_the_timeout() -> None:
    model = DoublingModel()

    async def body(batcher: Batcher) -> float:
        start = time.monotonic()
        await batcher.submit("m", x(1))
        return time.monotonic() - start

    waited = run_with_batcher(model, 8, 0.2, body)
    assert 0.18 <= waited < 2.0
    assert run_with_batcher(DoublingModel(), 1, 5.0, body) < 2.0, "a full batch must not wait"


def test_a_batch_the_next_request_does_not_fit_leaves_at_once() -> None:
    model = DoublingModel()

    async def body(batcher: Batcher) -> float:
        start = time.monotonic()
        await asyncio.gather(
            batcher.submit("m", x(1, 2, 3)), batcher.submit("m", x(4, 5)), batcher.submit("m", x(6, 7))
        )
        return time.monotonic() - start

    assert run_with_batcher(model, 4, 5.0, body) < 2.0
    assert model.sizes() == [3, 4]


def test_requests_that_queue_during_a_call_fill_the_next_batch() -> None:
    model = DoublingModel(seconds=0.2)

    async def body(batcher: Batcher) -> None:
        first = asyncio.ensure_future(batcher.submit("m", x(0)))
        await asyncio.sleep(0.05)  # the first call is running now
        await asyncio.gather(first, *(batcher.submit("m", x(i)) for i in range(1, 6)))

    run_with_batcher(model, 8, 0.0, body)
    assert model.sizes() == [1, 5]


def test_different_targets_and_shapes_are_never_merged() -> None:
    model = DoublingModel()

    async def body(batcher: Batcher) -> None:
        wide = {"x": np.zeros((1, 3), dtype=np.float32)}
        await asyncio.gather(batcher.submit("a", x(1)), batcher.submit("b", x(2)), batcher.submit("a", wide))

    run_with_batcher(model, 8, 0.05, body)
    assert sorted((str(target), len(values)) for target, values in model.calls) == [
        ("a", 1),
        ("a", 1),
        ("b", 1),
    ]


def test_bad_input_in_a_merged_batch_fails_only_its_own_request() -> None:
    model = DoublingModel()
    splits: list[int] = []

    async def main() -> list[Tensors | BaseException]:
        batcher = Batcher(model, 8, 0.05, on_split=splits.append)
        requests = [batcher.submit("m", x(i)) for i in range(5)]
        requests.insert(2, batcher.submit("m", x(-1)))
        try:
            return await asyncio.gather(*requests, return_exceptions=True)
        finally:
            await batcher.close()

    results = asyncio.run(main())
    error = results.pop(2)
    assert isinstance(error, ServingError) and error.code == INVALID_ARGUMENT
    assert [result["y"].tolist() for result in results if isinstance(result, dict)] == [
        [2.0 * i] for i in range(5)
    ]
    assert splits == [6]
    assert model.sizes() == [6, 1, 1, 1, 1, 1, 1]


def test_other_errors_fail_the_whole_batch() -> None:
    model = DoublingModel()

    async def body(batcher: Batcher) -> list[Tensors | BaseException]:
        requests = [batcher.submit("m", x(1)), batcher.submit("m", x(13))]
        return await asyncio.gather(*requests, return_exceptions=True)

    results = run_with_batcher(model, 8, 0.05, body)
    assert all(isinstance(result, ServingError) and result.code == INTERNAL for result in results)
    assert model.sizes() == [2]


def test_close_answers_what_is_queued_then_refuses_new_requests() -> None:
    model = DoublingModel()

    async def main() -> None:
        batcher = Batcher(model, 8, 10.0)
        queued = asyncio.ensure_future(batcher.submit("m", x(3)))
        await asyncio.sleep(0.01)
        start = time.monotonic()
        await batcher.close()
        assert time.monotonic() - start < 5.0, "close must not wait out the batch timeout"
        assert (await queued)["y"].tolist() == [6.0]
        with pytest.raises(ServingError) as refused:
            await batcher.submit("m", x(1))
        assert refused.value.code == UNAVAILABLE

    asyncio.run(main())


def test_unbatchable_inputs_run_alone() -> None:
    model = DoublingModel()

    async def body(batcher: Batcher) -> Tensors:
        return await batcher.submit("m", {"x": np.float32(4.0) * np.ones((), dtype=np.float32)})

    assert run_with_batcher(model, 8, 0.05, body)["y"].tolist() == 8.0


def test_batch_dimension() -> None:
    assert batch_dimension({"a": np.zeros((3, 2)), "b": np.zeros(3)}) == 3
    assert batch_dimension({"a": np.zeros((3, 2)), "b": np.zeros(2)}) is None
    assert batch_dimension({"a": np.zeros(())}) is None
