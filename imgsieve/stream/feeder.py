"""The producer's feeder thread: lists the source page by page, skips what is done, fetches the rest.

The feeder talks to the producer's main thread over an inproc PAIR socket, and blocks when the main
thread stops reading: the main thread reads only while its queue of images is below the prefetch
limit, so listing and fetching never run more than a bounded amount ahead of the consumers.

Messages (frames [KIND, JSON, optional image bytes]):
    PAGE   {"listed": n, "skipped": k}   a listing page; k of its images already have a row
    IMAGE  {"uri": u, "error": e}        one image, its bytes in a third frame unless e is set
    DONE   {}                            the listing is complete and every image was sent
    FAILED {"reason": r}                 the source cannot be listed: the job cannot go on
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import zmq

from imgsieve.errors import UserError
from imgsieve.store.db import Store
from imgsieve.stream.source import Source, fetch_all

PAGE, IMAGE, DONE, FAILED = b"PAGE", b"IMAGE", b"DONE", b"FAILED"
SEND_POLL_MS = 200
# The inproc pipe holds few messages: the bound on what is fetched ahead is the producer's prefetch.
PIPE_HWM = 4

log = logging.getLogger(__name__)


class FeederStoppedError(Exception):
    """The producer asked the feeder to stop."""


class Feeder(threading.Thread):
    """Lists, filters and fetches a source's images for one job and model version."""

    def __init__(
        self,
        *,
        context: zmq.Context[Any],
        endpoint: str,
        source: Source,
        open_store: Callable[[], Store],
        model: tuple[str, int],
        fetch_concurrency: int,
        max_bytes: int,
    ):
        super().__init__(name="feeder", daemon=True)
        self.context = context
        self.endpoint = endpoint
        self.source = source
        self.open_store = open_store
        self.model = model
        self.fetch_concurrency = fetch_concurrency
        self.max_bytes = max_bytes
        self.stop = threading.Event()
        self._pipe: zmq.Socket[Any] | None = None

    def run(self) -> None:
        """List, skip, fetch and send until the source is exhausted or the producer stops us."""
        # pipe: feeder -> producer main thread (PAGE, IMAGE, DONE, FAILED)
        pipe = self.context.socket(zmq.PAIR)
        pipe.setsockopt(zmq.LINGER, 0)
        pipe.setsockopt(zmq.SNDHWM, PIPE_HWM)
        pipe.connect(self.endpoint)
        self._pipe = pipe
        try:
            self._feed()
            self._send(DONE, {})
        except FeederStoppedError:
            pass
        except UserError as exc:
            self._report_failure(str(exc))
        except Exception as exc:
            log.exception("feeder failed")
            self._report_failure(f"{type(exc).__name__}: {exc}")
        finally:
            pipe.close()

    def _feed(self) -> None:
        """Send every page's count and every image not yet classified by this model version."""
        name, version = self.model
        with self.open_store() as store:
            for page in self.source.pages():
                done = store.existing_uris(name, version, [ref.uri for ref in page])
                todo = [ref for ref in page if ref.uri not in done]
                self._send(PAGE, {"listed": len(page), "skipped": len(page) - len(todo)})
                for fetched in fetch_all(self.source, todo, self.fetch_concurrency, self.max_bytes):
                    self._send(IMAGE, {"uri": fetched.uri, "error": fetched.error}, fetched.data)

    def _report_failure(self, reason: str) -> None:
        """Tell the producer the job cannot go on, unless it is already stopping."""
        with contextlib.suppress(FeederStoppedError):
            self._send(FAILED, {"reason": reason})

    def _send(self, kind: bytes, meta: dict[str, Any], data: bytes | None = None) -> None:
        """Send one message, waiting while the producer is not reading; raise FeederStoppedError when told to stop."""
        assert self._pipe is not None
        frames: list[Any] = [kind, json.dumps(meta).encode()]
        if data is not None:
            frames.append(data)
        while not self.stop.is_set():
            if self._pipe.poll(SEND_POLL_MS, zmq.POLLOUT):
                self._pipe.send_multipart(frames, copy=False)
                return
        raise FeederStoppedError
