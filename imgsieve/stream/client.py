"""The consumers' client of the model server: TensorFlow Serving's REST API, which `imgsieve serve` also speaks.

A `ModelClient` keeps a keep-alive connection pool and lets at most `concurrency` requests be in
flight, so that several batches wait at the server and its batcher stays fed. Images travel as
`{"b64": ...}` instances, the cheapest encoding the API has.

Which version answered: TF Serving does not say in a predict response, so the client pins one. On
its first predict it asks the model's status for the highest AVAILABLE version N and posts to
`/versions/N:predict` from then on; every `Prediction` carries N. When N is unloaded (the server moved
to a newer version) that answers 404, and the client re-resolves the version and sends again. A URL
that names a version itself (`.../versions/N`) pins N for good.

Failures:
- Refused or dropped connections, 503 (model loading) and 429 (server busy) are retried with
  exponential backoff and jitter until `deadline_s` has passed, so a server restart is ridden out.
- Timeouts and other 5xx answers are retried too, but at most `max_retries` times.
- Either way the call then raises `ModelUnavailable`.
- A 404 for the model's status is what TF Serving answers both for a wrong name and before its
  first version has loaded, so it is waited out like a loading model; after `deadline_s` it raises
  `ModelNotFound`.
- A 400 means the server rejected an image (413: the body was too large). The batch is split in
  halves and each half is sent again, down to single images, so only the bad images end as
  `PredictionError` with the server's text.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp

from imgsieve.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S = 120.0
URL_PATTERN = re.compile(
    r"^(?P<root>https?://[^/?#]+)/v1/models/(?P<name>[^/:?#]+)(?:/versions/(?P<version>[0-9]+))?/?$"
)
# The server is not there or not ready yet: retried until the deadline.
NOT_READY_STATUSES = frozenset({429, 503})
# A rejected image (400) or a body over the server's limit (413): halve the batch and send again.
SPLIT_STATUSES = frozenset({400, 413})
ERROR_TEXT_CHARS = 500
MAX_BACKOFF_EXPONENT = 30


class ModelError(UserError):
    """The model server answered something the client cannot use."""


class ModelNotFound(ModelError):  # noqa: N818 - named like ModelUnavailable
    """The server has no such model, or no longer has the version asked for."""


class ModelUnavailable(ModelError):  # noqa: N818 - the stream's API names it so
    """The server could not be reached, or kept failing, until the client gave up."""


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image."""

    top_class: str
    top_score: float
    scores: dict[str, float]
    model_version: int


@dataclass(frozen=True)
class PredictionError:
    """The server rejected one image; reason is its error text."""

    reason: str


def _error_text(payload: bytes) -> str:
    """Return the server's error message from a TF Serving error body {"error": ...}, or the raw body."""
    try:
        message = json.loads(payload)["error"]
    except (ValueError, KeyError, TypeError):
        message = payload.decode("utf-8", "replace")
    return str(message).strip()[:ERROR_TEXT_CHARS]


def _predict_body(images: Sequence[bytes]) -> bytes:
    """Return the JSON body {"instances": [{"b64": ...}, ...]} for images, built in a single join."""
    # Base64 needs no JSON escaping, so the body is assembled from bytes without a JSON encoder.
    parts = [b'{"instances":[']
    for i, data in enumerate(images):
        parts += (b'{"b64":"' if i == 0 else b',{"b64":"', base64.b64encode(data), b'"}')
    parts.append(b"]}")
    return b"".join(parts)


class ModelClient:
    """Async client for one model: `async with ModelClient(url) as client: await client.predict(...)`."""

    def __init__(
        self,
        model_url: str,
        concurrency: int = 4,
        *,
        timeout_s: float = 30,
        max_retries: int = 8,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ) -> None:
        match = URL_PATTERN.match(model_url)
        if not match:
            raise UserError(
                f"bad model URL {model_url!r}: expected http://HOST:PORT/v1/models/NAME "
                "or http://HOST:PORT/v1/models/NAME/versions/N"
            )
        if concurrency < 1:
            raise UserError(f"bad model client concurrency {concurrency}: it must be at least 1")
        self.model_url = model_url
        self.name = match["name"]
        self._root = match["root"]
        self._fixed_version = int(match["version"]) if match["version"] else None
        self._version = self._fixed_version
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.deadline_s = deadline_s
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._resolving = asyncio.Lock()

    async def __aenter__(self) -> Self:
        """Open the connection pool."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"Content-Type": "application/json"},
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _model_path(self, version: int | None) -> str:
        """Return the URL of the model, or of one version of it."""
        base = f"{self._root}/v1/models/{self.name}"
        return base if version is None else f"{base}/versions/{version}"

    def _backoff(self, attempt: int) -> float:
        """Return the wait before retry number attempt (0-based): exponential, capped, with jitter."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** min(attempt, MAX_BACKOFF_EXPONENT))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _send(self, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Send one request, retrying failures, and return the final status and body."""
        if self._session is None:
            raise RuntimeError("use the client as `async with ModelClient(url) as client:`")
        start = time.monotonic()
        attempt = counted = 0
        while True:
            try:
                async with self._slots, self._session.request(method, url, data=body) as response:
                    status, payload = response.status, await response.read()
                if status < 500 and status not in NOT_READY_STATUSES:
                    if attempt:
                        log.info("model server %s answered again after %.1f s", url, time.monotonic() - start)
                    return status, payload
                problem = f"HTTP {status}: {_error_text(payload)}"
                if status not in NOT_READY_STATUSES:
                    counted += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                # A timeout on an open connection means a slow or stuck server, not one that is down.
                if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ConnectionTimeoutError):
                    counted += 1
            elapsed = time.monotonic() - start
            delay = self._backoff(attempt)
            attempt += 1
            if counted > self.max_retries or elapsed + delay > self.deadline_s:
                raise ModelUnavailable(
                    f"model server gave no usable answer to {method} {url} in {attempt} attempts over "
                    f"{elapsed:.0f} s (last: {problem}); check that it is running and healthy"
                )
            log.log(
                logging.WARNING if attempt == 1 else logging.DEBUG,
                "model server %s: %s; retry %d in %.1f s",
                url,
                problem,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)

    async def model_version(self) -> tuple[str, int]:
        """Return the model's name and its highest AVAILABLE version, waiting while none is."""
        url = self._model_path(self._fixed_version)
        start = time.monotonic()
        attempt = 0
        while True:
            status, payload = await self._send("GET", url)
            states: dict[int, str] = {}
            if status == 200:
                try:
                    statuses = json.loads(payload)["model_version_status"]
                    states = {int(s["version"]): str(s["state"]) for s in statuses}
                except (ValueError, KeyError, TypeError) as exc:
                    raise ModelError(
                        f"GET {url} answered an unexpected model status: {payload[:200]!r}"
                    ) from exc
            elif status != 404:
                raise ModelError(f"GET {url} answered HTTP {status}: {_error_text(payload)}")
            available = [v for v, state in states.items() if state == "AVAILABLE"]
            if available:
                return self.name, max(available)
            if self._fixed_version is not None and states.get(self._fixed_version) == "END":
                raise ModelNotFound(
                    f"model server {self._root} no longer serves version {self._fixed_version} of "
                    f"{self.name!r}; drop /versions/N from {self.model_url} to follow the latest"
                )
            elapsed = time.monotonic() - start
            delay = self._backoff(attempt)
            attempt += 1
            if elapsed + delay > self.deadline_s:
                if status == 404:
                    # TF Serving answers 404 both for a wrong name and before its first version loads.
                    raise ModelNotFound(
                        f"model server {self._root} still has no model {self.name!r}"
                        + (f" version {self._fixed_version}" if self._fixed_version is not None else "")
                        + f" after {elapsed:.0f} s ({_error_text(payload)}); check the model name and "
                        f"version in {self.model_url} and the server's model base path"
                    )
                raise ModelUnavailable(
                    f"model {self.name!r} at {self._root} has no AVAILABLE version after {elapsed:.0f} s "
                    f"(versions: {states or 'none'}); check the server's log"
                )
            log.info(
                "model %r has no AVAILABLE version yet (%s); checking again in %.1f s",
                self.name,
                states,
                delay,
            )
            await asyncio.sleep(delay)

    async def _pinned(self, stale: int | None = None) -> int:
        """Return the version predictions go to, resolving it first if unknown or equal to stale."""
        async with self._resolving:
            if self._version is None or self._version == stale:
                _, self._version = await self.model_version()
                log.info("model %r: sending predictions to version %d", self.name, self._version)
            return self._version

    async def predict(self, images: Sequence[bytes]) -> list[Prediction | PredictionError]:
        """Classify encoded images; return one Prediction or PredictionError per image, in order."""
        if not images:
            return []
        return await self._predict(list(images))

    async def _predict(self, images: list[bytes]) -> list[Prediction | PredictionError]:
        """Post images to the pinned version, re-resolving it on 404 and bisecting the batch on 400."""
        version = await self._pinned()
        body = _predict_body(images)
        for attempt in range(self.max_retries + 1):
            url = f"{self._model_path(version)}:predict"
            status, payload = await self._send("POST", url, body)
            if status == 200:
                return self._parse(url, payload, len(images), version)
            if status in SPLIT_STATUSES:
                if len(images) == 1:
                    return [PredictionError(_error_text(payload))]
                half = len(images) // 2
                first, second = await asyncio.gather(
                    self._predict(images[:half]), self._predict(images[half:])
                )
                return first + second
            if status != 404:
                raise ModelError(f"POST {url} answered HTTP {status}: {_error_text(payload)}")
            if self._fixed_version is not None:
                raise ModelNotFound(
                    f"model server {self._root} no longer serves version {version} of {self.name!r} "
                    f"({_error_text(payload)}); drop /versions/N from {self.model_url} to follow the latest"
                )
            newer = await self._pinned(stale=version)
            if newer == version:
                await asyncio.sleep(self._backoff(attempt))  # status and predict disagree for a moment
            version = newer
        raise ModelNotFound(
            f"POST {url} kept answering 404 although the model's status lists version {version}"
        )

    def _parse(
        self, url: str, payload: bytes, count: int, version: int
    ) -> list[Prediction | PredictionError]:
        """Turn a predict response {"predictions": [{scores, classes, top_class, top_score}]} into results."""
        try:
            rows: list[dict[str, Any]] = json.loads(payload)["predictions"]
            results: list[Prediction | PredictionError] = [
                Prediction(
                    top_class=str(row["top_class"]),
                    top_score=float(row["top_score"]),
                    scores=dict(zip(map(str, row["classes"]), map(float, row["scores"]), strict=True)),
                    model_version=version,
                )
                for row in rows
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"POST {url} answered an unexpected body ({exc}): {payload[:200]!r}") from exc
        if len(results) != count:
            raise ModelError(f"POST {url} answered {len(results)} predictions for {count} images")
        return results
