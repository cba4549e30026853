"""The consumer daemon: connects to the producer, takes images within its credit, acknowledges rows.

One DEALER socket at a time is the consumer's link to the producer. A link starts with HELLO (model
name and version from the model server, and the free part of the consumer's window as credit) and
lasts while the producer is heard from; when it falls silent for its peer timeout, RESETs us, or
ENDs its job, the socket is closed and a new link says HELLO again: that is how a consumer outlives
producer restarts and serves one job after another. Images still being processed from an old link
are finished and written (the upsert makes that harmless) but never acknowledged on the new one,
whose item ids mean other images. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import zmq
import zmq.asyncio

from imgsieve.config import Config
from imgsieve.store.db import PredictionRow, Store
from imgsieve.stream import curve, protocol
from imgsieve.stream.client import ModelClient, ModelError
from imgsieve.stream.pipeline import Pipeline, Work
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

HELLO_RETRY_SECONDS = 5.0  # a HELLO unanswered this long is sent again on a fresh socket
REJECTED_RETRY_SECONDS = 10.0
MODEL_RETRY_SECONDS = 5.0
BEAT_SECONDS = 1.0  # until the producer's WELCOME says otherwise
CLOSE_LINGER_MS = 1000  # at exit, give the last ACKs and BYE time to leave
RECONNECT_IVL_MS, RECONNECT_IVL_MAX_MS = 100, 2000
HWM_MARGIN = 100

log = logging.getLogger(__name__)


class Consumer:
    """Serves producers until stop is set: `await Consumer(config, open_store).run(stop)`."""

    def __init__(self, config: Config, open_store: Callable[[], Store]):
        self.config = config
        self.open_store = open_store
        self.window = config.consumer.window()
        self.held: dict[tuple[int, int], Work] = {}
        self.generation = 0
        self.welcome: Welcome | None = None
        self.model: tuple[str, int] = ("", 0)
        self.spare_credit = 0  # freed slots not yet granted to the current link
        self.unanswered_hellos = 0
        self.stopping = False
        self.socket: zmq.asyncio.Socket | None = None
        self.context = zmq.asyncio.Context()
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._store: Store | None = None
        settings = config.consumer
        self.curve_keys = (
            curve.client_keys(settings.curve_secret_key, settings.curve_producer_key)
            if settings.curve_secret_key and settings.curve_producer_key
            else None
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve jobs and reconnect until stop; then finish or return held images and leave."""
        loop = asyncio.get_running_loop()
        self._store = await loop.run_in_executor(self._store_thread, self.open_store)
        try:
            async with ModelClient(
                self.config.model.url, concurrency=self.config.consumer.concurrency
            ) as client:
                self.pipeline = Pipeline(self.config.consumer, client, self._write_rows, self._done)
                self.pipeline.start()
                while not stop.is_set():
                    if await self._open_link(client, stop):
                        await self._serve_link(stop)
                await self._leave()
        finally:
            if self.socket is not None:
                self.socket.close(CLOSE_LINGER_MS)
            self.context.term()
            await loop.run_in_executor(self._store_thread, self._store.close)
            self._store_thread.shutdown()

    async def _open_link(self, client: ModelClient, stop: asyncio.Event) -> bool:
        """Ask the model server for its version and say HELLO on a fresh socket; False to try again."""
        try:
            self.model = await client.model_version()
        except ModelError as exc:
            log.error("cannot learn the model version: %s; retrying in %.0f s", exc, MODEL_RETRY_SECONDS)
            await _wait(stop, MODEL_RETRY_SECONDS)
            return False
        if self.socket is not None:
            self.socket.close(0)  # drop whatever the old link still had queued
        self.generation += 1
        self.welcome = None
        self.spare_credit = 0
        # producer: -> HELLO CREDIT ACK NACK HEARTBEAT BYE; <- WELCOME ITEM HEARTBEAT REJECT RESET END
        self.socket = self.context.socket(zmq.DEALER)
        host = self.config.consumer.host
        self.socket.setsockopt(zmq.ROUTING_ID, f"{host}/{os.getpid()}/{self.generation}".encode())
        self.socket.setsockopt(zmq.LINGER, 0)
        # Credit bounds the images in flight; the margin is for heartbeats and control messages.
        self.socket.setsockopt(zmq.RCVHWM, self.window + HWM_MARGIN)
        self.socket.setsockopt(zmq.SNDHWM, self.window + HWM_MARGIN)
        self.socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        security = "unencrypted"
        if self.curve_keys is not None:
            curve.connect_securely(self.socket, self.curve_keys)
            security = (
                f"CURVE, our public key {self.curve_keys.public.decode()}: the producer must authorize it"
            )
        self.socket.connect(self.config.consumer.producer)
        name, version = self.model
        credit = max(self.window - len(self.held), 0)
        self._send(Hello(host=host, pid=os.getpid(), model_name=name, model_version=version, credit=credit))
        # An idle consumer says HELLO again every few seconds until a producer answers: tell that once.
        log.log(
            logging.DEBUG if self.unanswered_hellos else logging.INFO,
            "said HELLO to %s (model %s version %d, credit %d; %s)%s",
            self.config.consumer.producer,
            name,
            version,
            credit,
            security,
            "" if self.unanswered_hellos else "; waiting for a producer",
        )
        self.unanswered_hellos += 1
        return True

    async def _serve_link(self, stop: asyncio.Event) -> None:
        """Receive and heartbeat on the current link until it is over (silence, RESET, END) or stop."""
        assert self.socket is not None
        opened = last_heard = time.monotonic()
        next_beat = opened
        while not stop.is_set():
            beat = self.welcome.heartbeat_interval if self.welcome else BEAT_SECONDS
            timeout = max(0.0, next_beat - time.monotonic())
            if await self.socket.poll(int(timeout * 1000)):
                frames = await self.socket.recv_multipart(copy=False)
                last_heard = time.monotonic()
                try:
                    message, payload = protocol.decode(frames)
                except protocol.ProtocolError as exc:
                    log.warning("dropped a malformed message from the producer: %s", exc)
                    continue
                if not await self._handle(message, payload, stop):
                    return
            now = time.monotonic()
            if self.pipeline.version_changed:
                self.pipeline.version_changed = False
                log.warning("the model server changed version: saying HELLO again")
                return
            if self.welcome is None and now - opened > HELLO_RETRY_SECONDS:
                return  # no producer yet (or it missed us): a fresh socket says HELLO again
            if self.welcome is not None and now - last_heard > self.welcome.peer_timeout:
                log.warning("producer silent for %.0f s: reconnecting", now - last_heard)
                return
            if now >= next_beat:
                next_beat = now + beat
                if self.welcome is not None:
                    working = sorted(w.id for w in self.held.values() if w.generation == self.generation)
                    self._send(Heartbeat(working=working))

    async def _handle(self, message: protocol.Message, payload: bytes | None, stop: asyncio.Event) -> bool:
        """Act on one producer message; return False when the link is over."""
        if isinstance(message, Item):
            self._take(message, payload)
        elif isinstance(message, Welcome):
            self.welcome = message
            self.unanswered_hellos = 0
            log.info("joined job %s (run %s)", message.job, message.run)
            self._grant()
        elif isinstance(message, End):
            log.info("job %s is complete", message.job)
            return False
        elif isinstance(message, Reset):
            log.info("producer asked for a new HELLO: %s", message.reason)
            return False
        elif isinstance(message, Reject):
            log.error(
                "producer rejected us: %s; trying again in %.0f s", message.reason, REJECTED_RETRY_SECONDS
            )
            await _wait(stop, REJECTED_RETRY_SECONDS)
            return False
        return True

    def _take(self, item: Item, payload: bytes | None) -> None:
        """Hold one image and hand it to the pipeline."""
        if self.welcome is None:
            log.warning("dropped image %s sent before WELCOME", item.uri)
            return
        work = Work(
            self.generation, item.id, item.uri, self.welcome.job, self.model, item.attempt, time.monotonic(),
            data=payload, error=item.error if item.final else None,
        )  # fmt: skip
        if item.final and work.error is None:
            work.error = "failed: no reason given"
        self.held[work.key] = work
        self.pipeline.submit(work)

    async def _write_rows(self, rows: list[PredictionRow]) -> None:
        """Write one batch's rows on the store's own thread."""
        assert self._store is not None
        await asyncio.get_running_loop().run_in_executor(
            self._store_thread, self._store.write_predictions, rows
        )

    def _done(self, batch: list[Work], failure: str | None) -> None:
        """Release a finished batch: ACK (or NACK) it on its link if still current, and grant its slots."""
        current = []
        for work in batch:
            self.held.pop(work.key, None)
            if work.generation == self.generation:
                current.append(work.id)
        self.spare_credit += len(batch)
        if current and self.welcome is not None:
            message: protocol.Message = (
                Ack(ids=current) if failure is None else Nack(ids=current, reason=failure)
            )
            self._send(message)
        if failure is not None:
            log.warning("gave back %d image(s): %s", len(batch), failure)
        self._grant()

    def _grant(self) -> None:
        """Grant the current link the slots freed since the last grant."""
        if self.welcome is not None and self.spare_credit > 0 and not self.stopping:
            n, self.spare_credit = self.spare_credit, 0
            self._send(Credit(n=n))

    async def _leave(self) -> None:
        """On stop: return images never started, finish those in flight (up to the grace), say BYE."""
        unstarted = await self.pipeline.stop_taking()
        self.stopping = True  # grant nothing more
        for work in unstarted:
            self.held.pop(work.key, None)
        await self.pipeline.finish(self.config.consumer.shutdown_grace)
        returned = [w.id for w in unstarted if w.generation == self.generation]
        if self.welcome is not None:
            self._send(Bye(returned=returned))
        log.info("stopped: returned %d unstarted image(s)", len(returned))

    def _send(self, message: protocol.Message) -> None:
        """Queue one message on the current link; sends on one socket keep their order."""
        if self.socket is not None and not self.socket.closed:
            self.socket.send_multipart(protocol.encode(message))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep for seconds, or less if stop is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
