"""The producer: one job, every image of a source handed to consumers until each has a committed row.

The producer binds a ROUTER socket; consumers connect DEALERs, say HELLO with their model version
and a credit, and get at most that many images. An image leaves the producer's ledger only when a
consumer ACKs it, which it does after committing the image's row. Consumers that go silent lose
their images to others; images that keep failing are finally sent flagged final, so that a consumer
writes them as error rows. The producer never writes predictions itself. See docs/protocol.md.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq
from tqdm import tqdm

from imgsieve.config import ProducerConfig
from imgsieve.errors import UserError
from imgsieve.store.db import Store
from imgsieve.stream import curve, feeder, protocol
from imgsieve.stream.ledger import Dispatch, Ledger
from imgsieve.stream.protocol import (
    Ack,
    Bye,
    Credit,
    End,
    Heartbeat,
    Hello,
    Item,
    Nack,
    Reject,
    Reset,
    Welcome,
)
from imgsieve.stream.source import Source

LINGER_MS = 1000  # let the last END messages go out before the context is terminated
ROUTER_HWM = 10_000
WAITING_LOG_SECONDS = 30.0

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    """What one producer run did."""

    job: str
    model: tuple[str, int]
    listed: int
    skipped: int
    acked: int
    redelivered: int
    seconds: float
    abandoned: list[tuple[str, str]]  # (uri, reason): images left without a row


class Producer:
    """Runs one job: `Producer(config, job, source, open_store).run(stop)`."""

    def __init__(self, config: ProducerConfig, job: str, source: Source, open_store: Callable[[], Store]):
        self.config = config
        self.job = job
        self.source = source
        self.open_store = open_store
        self.run_id = uuid.uuid4().hex[:12]
        self.ledger = Ledger(config.max_attempts, config.item_timeout, config.peer_timeout)
        self.model: tuple[str, int] | None = None
        self.listed = self.skipped = 0
        self.listing_done = False
        self._feeder: feeder.Feeder | None = None
        self._bar: tqdm[Any] | None = None
        self._store: Store | None = None
        self._started: float | None = None  # when the first consumer joined: the job's clock starts
        self._authenticator: curve.ThreadAuthenticator | None = None

    def run(self, stop: threading.Event | None = None) -> JobResult:
        """Serve the job until every image is acknowledged (or stop is set); return its figures."""
        stop = stop or threading.Event()
        context: zmq.Context[Any] = zmq.Context()
        # consumers: <- HELLO CREDIT ACK NACK HEARTBEAT BYE; -> WELCOME ITEM HEARTBEAT REJECT RESET END
        self.consumers = context.socket(zmq.ROUTER)
        self.consumers.setsockopt(zmq.LINGER, LINGER_MS)
        self.consumers.setsockopt(zmq.ROUTER_MANDATORY, 1)  # an unroutable send raises instead of vanishing
        self.consumers.setsockopt(zmq.SNDHWM, ROUTER_HWM)
        self.consumers.setsockopt(zmq.RCVHWM, ROUTER_HWM)
        # feed: <- PAGE IMAGE DONE FAILED from the feeder thread
        self.feed = context.socket(zmq.PAIR)
        self.feed.setsockopt(zmq.LINGER, 0)
        feed_endpoint = f"inproc://feed-{self.run_id}"
        start = time.monotonic()
        try:
            self._store = self.open_store()
            if self.config.curve_secret_key and self.config.curve_authorized_keys:
                self._authenticator = curve.serve_securely(
                    context, self.consumers, self.config.curve_secret_key, self.config.curve_authorized_keys
                )
            try:
                self.consumers.bind(self.config.bind)
            except zmq.ZMQError as exc:
                raise UserError(
                    f"cannot bind {self.config.bind}: {exc}; is another producer running?"
                ) from None
            self.feed.bind(feed_endpoint)
            log.info(
                "job %s: serving %s on %s (%s)",
                self.job,
                self.source.location,
                self.config.bind,
                "CURVE: encrypted, authorized consumers only" if self._authenticator else "unencrypted",
            )
            # Under systemd or in a pipe a redrawn bar is noise in the log: the summary says it all.
            self._bar = tqdm(
                desc=f"job {self.job}",
                unit="img",
                dynamic_ncols=True,
                total=0,
                disable=not sys.stderr.isatty(),
            )
            self._loop(stop, context, feed_endpoint)
        finally:
            self._shutdown(context)
        assert self.model is not None or stop.is_set()
        return JobResult(
            self.job, self.model or ("", 0), self.listed, self.skipped, self.ledger.acked,
            self.ledger.redelivered, time.monotonic() - (self._started or start), self.ledger.abandoned,
        )  # fmt: skip

    @property
    def finished(self) -> bool:
        """Every listed image is skipped or acknowledged."""
        return self.listing_done and self.ledger.pending == 0

    def _loop(self, stop: threading.Event, context: zmq.Context[Any], feed_endpoint: str) -> None:
        """Poll consumers and the feeder, keep time, and hand out images until the job is finished."""
        poller = zmq.Poller()
        poller.register(self.consumers, zmq.POLLIN)
        interval = self.config.heartbeat_interval
        next_beat = time.monotonic() + interval
        next_waiting_log = time.monotonic()
        while not self.finished and not stop.is_set():
            wants_feed = self._feeder is not None and not self.listing_done
            wants_feed = wants_feed and self.ledger.waiting < self.config.prefetch
            if wants_feed:
                poller.register(self.feed, zmq.POLLIN)
            elif self.feed in poller:
                poller.unregister(self.feed)
            timeout_ms = max(0.0, next_beat - time.monotonic()) * 1000
            events = dict(poller.poll(int(timeout_ms)))
            if self.consumers in events:
                self._drain_consumers()
            if self.feed in events:
                self._drain_feed()
            if self.model is not None and self._feeder is None:
                self._start_feeder(context, feed_endpoint)
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + interval
                self._beat(now)
                if not self.ledger.peers and now >= next_waiting_log:
                    log.info("job %s: waiting for consumers on %s", self.job, self.config.bind)
                    next_waiting_log = now + WAITING_LOG_SECONDS
            for dispatch in self.ledger.dispatch(now):
                self._send_item(dispatch)
            self._show_progress()

    def _drain_consumers(self) -> None:
        """Handle every message the consumers have sent."""
        while True:
            try:
                frames = self.consumers.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = frames[0].bytes
            try:
                message, _ = protocol.decode(frames[1:])
            except protocol.ProtocolError as exc:
                log.warning("dropped a malformed message from %r: %s", identity, exc)
                continue
            self._handle(identity, message)

    def _handle(self, identity: bytes, message: protocol.Message) -> None:
        """Apply one consumer message to the ledger."""
        now = time.monotonic()
        if isinstance(message, Hello):
            self._hello(identity, message, now)
            return
        peer = self.ledger.touch(identity, now)
        if peer is None:
            if not isinstance(message, Bye):
                self._send(
                    identity, Reset(reason=f"unknown consumer for job {self.job} (producer restarted?)")
                )
        elif isinstance(message, Credit):
            self.ledger.grant(identity, message.n)
        elif isinstance(message, Ack):
            self.ledger.ack(message.ids)
        elif isinstance(message, Heartbeat):
            self.ledger.progress(identity, message.working, now)
        elif isinstance(message, Nack):
            log.warning("%s gave back %d image(s): %s", peer.host, len(message.ids), message.reason)
            self.ledger.nack(identity, message.ids, message.reason)
        elif isinstance(message, Bye):
            log.info("consumer %s left, returning %d image(s)", peer.host, len(message.returned))
            self.ledger.leave(identity, message.returned)

    def _hello(self, identity: bytes, hello: Hello, now: float) -> None:
        """Admit a consumer whose model version is the job's (the first one decides it), else reject it."""
        model = (hello.model_name, hello.model_version)
        if self.model is None:
            assert self._store is not None
            self._store.start_job(self.job, self.source.location, *model)
            self.model = model
            self._started = now
            log.info("job %s: classifying with model %s version %d", self.job, *model)
        elif model != self.model:
            reason = (
                f"job {self.job} classifies with model {self.model[0]} version {self.model[1]}, "
                f"this consumer serves {model[0]} version {model[1]}; one job never mixes versions"
            )
            log.warning("rejected consumer %s: %s", hello.host, reason)
            self._send(identity, Reject(reason=reason))
            return
        self.ledger.lose(identity, "consumer said HELLO again")  # a reconnect under the same identity
        self.ledger.join(identity, hello.host, hello.credit, now)
        log.info("consumer %s (pid %d) joined with credit %d", hello.host, hello.pid, hello.credit)
        self._send(
            identity,
            Welcome(
                job=self.job,
                run=self.run_id,
                heartbeat_interval=self.config.heartbeat_interval,
                peer_timeout=self.config.peer_timeout,
            ),
        )

    def _start_feeder(self, context: zmq.Context[Any], feed_endpoint: str) -> None:
        """Start listing and fetching, now that the model version (needed to skip done images) is known."""
        assert self.model is not None
        self._feeder = feeder.Feeder(
            context=context,
            endpoint=feed_endpoint,
            source=self.source,
            open_store=self.open_store,
            model=self.model,
            fetch_concurrency=self.config.fetch_concurrency,
            max_bytes=self.config.max_bytes,
        )
        self._feeder.start()

    def _drain_feed(self) -> None:
        """Take fetched images from the feeder until the prefetch queue is full."""
        while self.ledger.waiting < self.config.prefetch and not self.listing_done:
            try:
                frames = self.feed.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            kind, meta = frames[0], json.loads(frames[1])
            if kind == feeder.IMAGE:
                self.ledger.add(meta["uri"], frames[2] if len(frames) > 2 else None, meta["error"])
            elif kind == feeder.PAGE:
                self.listed += meta["listed"]
                self.skipped += meta["skipped"]
            elif kind == feeder.DONE:
                self.listing_done = True
                log.info(
                    "job %s: listing done: %d images, %d already classified",
                    self.job,
                    self.listed,
                    self.skipped,
                )
            elif kind == feeder.FAILED:
                raise UserError(f"job {self.job}: {meta['reason']}")

    def _send_item(self, dispatch: Dispatch) -> None:
        """Send one image (or a final error instruction) to the consumer it was assigned to."""
        entry = dispatch.entry
        item = Item(
            id=entry.id,
            uri=entry.uri,
            attempt=max(entry.attempts, 1),
            final=dispatch.final,
            error=dispatch.error,
        )
        self._send(dispatch.identity, item, None if dispatch.final else entry.data)

    def _beat(self, now: float) -> None:
        """Heartbeat every consumer and drop the silent ones and their overdue images."""
        for identity in self.ledger.expire(now):
            log.warning("consumer %r went silent; its images go to others", identity)
        for identity in list(self.ledger.peers):
            self._send(identity, Heartbeat())

    def _send(self, identity: bytes, message: protocol.Message, payload: bytes | None = None) -> None:
        """Send a message to one consumer; an unreachable consumer is dropped and its images re-queued."""
        try:
            self.consumers.send_multipart([identity, *protocol.encode(message, payload)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH (gone) or EAGAIN (its queue is full: stuck)
            log.warning("consumer %r unreachable (%s); its images go to others", identity, exc.strerror)
            self.ledger.lose(identity, "consumer lost while processing")

    def _show_progress(self) -> None:
        """Update the bar: images done (skipped or acknowledged) of those listed so far."""
        if self._bar is None:
            return
        done = self.skipped + self.ledger.acked
        if self._bar.total != self.listed:
            self._bar.total = self.listed
            self._bar.refresh()
        if done > self._bar.n:
            self._bar.set_postfix(
                consumers=len(self.ledger.peers), resent=self.ledger.redelivered, refresh=False
            )
            self._bar.update(done - self._bar.n)  # tqdm itself limits how often it redraws

    def _shutdown(self, context: zmq.Context[Any]) -> None:
        """Tell consumers the job is over, stop the feeder, close sockets and the store."""
        for identity in list(self.ledger.peers):
            self._send(identity, End(job=self.job))
        if self._feeder is not None:
            self._feeder.stop.set()
            self._feeder.join()
        if self._bar is not None:
            self._bar.close()
        self.consumers.close()
        self.feed.close()
        if self._authenticator is not None:
            self._authenticator.stop()
        context.term()
        if self._store is not None:
            self._store.close()
