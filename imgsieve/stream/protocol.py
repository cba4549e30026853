"""The wire protocol between the producer (ROUTER, binds) and its consumers (DEALER, connect).

Every message is one ZeroMQ multipart message of frames:

    [PROTOCOL, KIND, META] or [PROTOCOL, KIND, META, PAYLOAD]

PROTOCOL names the protocol and its version, KIND the message type (b"ITEM", ...), META is the
message's fields as UTF-8 JSON, and PAYLOAD (ITEM only) the image's bytes, sent without a copy. The
ROUTER side sees the consumer's routing id as an extra first frame. docs/protocol.md tells how the
messages work together: credits, heartbeats, deadlines, redelivery, poison items and resume.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import ClassVar

import zmq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROTOCOL = b"IMGSIEVE/1"
# Payloads above this size are handed to ZeroMQ by reference; copying small ones is cheaper.
ZERO_COPY_THRESHOLD = 64 * 1024

Frame = bytes | zmq.Frame


class ProtocolError(ValueError):
    """A message that does not follow this protocol (wrong version, unknown kind, bad fields)."""


class Message(BaseModel):
    """Base of every message: its KIND frame and its JSON fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    KIND: ClassVar[bytes] = b""


# consumer -> producer


class Hello(Message):
    """A consumer introduces itself, its model, and grants its first credit."""

    KIND = b"HELLO"
    host: str
    pid: int
    model_name: str
    model_version: int
    credit: int = Field(ge=0)


class Credit(Message):
    """The consumer can take n more items."""

    KIND = b"CREDIT"
    n: int = Field(ge=1)


class Ack(Message):
    """These items' rows are committed: the producer forgets them."""

    KIND = b"ACK"
    ids: list[int]


class Nack(Message):
    """These items failed on the consumer (model server gone, store down): re-send them elsewhere."""

    KIND = b"NACK"
    ids: list[int]
    reason: str


class Heartbeat(Message):
    """I am alive; working lists the items still being processed (consumer -> producer only)."""

    KIND = b"HEARTBEAT"
    working: list[int] = []


class Bye(Message):
    """The consumer is leaving; returned items were never started and go back without an attempt."""

    KIND = b"BYE"
    returned: list[int] = []


# producer -> consumer


class Welcome(Message):
    """The producer accepts the consumer for a job and tells it the timing both sides keep."""

    KIND = b"WELCOME"
    job: str
    run: str
    heartbeat_interval: float
    peer_timeout: float


class Reject(Message):
    """The producer refuses the consumer (e.g. another model version than the job's)."""

    KIND = b"REJECT"
    reason: str


class Item(Message):
    """One image to classify; final items carry no payload and must become an error row."""

    KIND = b"ITEM"
    id: int
    uri: str
    attempt: int = Field(ge=1)
    final: bool = False
    error: str | None = None


class Reset(Message):
    """The producer does not know this consumer (it restarted): say HELLO again on a new socket."""

    KIND = b"RESET"
    reason: str


class End(Message):
    """The job is complete; the consumer resets and says HELLO for the next job."""

    KIND = b"END"
    job: str


KINDS: dict[bytes, type[Message]] = {
    cls.KIND: cls for cls in (Hello, Credit, Ack, Nack, Heartbeat, Bye, Welcome, Reject, Item, Reset, End)
}


def encode(message: Message, payload: bytes | None = None) -> list[Frame]:
    """Return the frames of message, with payload (an ITEM's image) as the last frame."""
    meta = json.dumps(message.model_dump(), separators=(",", ":")).encode()
    frames: list[Frame] = [PROTOCOL, message.KIND, meta]
    if payload is not None:
        frames.append(zmq.Frame(payload, copy=len(payload) < ZERO_COPY_THRESHOLD))
    return frames


def decode(frames: Sequence[Frame]) -> tuple[Message, bytes | None]:
    """Parse frames (without a routing id) into a message and its payload; raise ProtocolError."""
    parts = [frame.bytes if isinstance(frame, zmq.Frame) else bytes(frame) for frame in frames]
    if len(parts) not in (3, 4):
        raise ProtocolError(f"expected 3 or 4 frames, got {len(parts)}")
    protocol, kind, meta = parts[:3]
    if protocol != PROTOCOL:
        raise ProtocolError(f"expected protocol {PROTOCOL!r}, got {protocol[:32]!r}")
    cls = KINDS.get(kind)
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind[:32]!r}")
    try:
        message = cls.model_validate_json(meta)
    except ValidationError as exc:
        raise ProtocolError(f"bad {kind.decode()} fields: {exc.errors()[0]['msg']}") from None
    payload = parts[3] if len(parts) == 4 else None
    if (payload is not None) != (isinstance(message, Item) and not message.final):
        raise ProtocolError(f"{kind.decode()} {'needs' if payload is None else 'takes no'} payload frame")
    return message, payload
