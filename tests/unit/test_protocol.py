"""The wire protocol: frames, message kinds, payloads, and what a malformed message is."""

from __future__ import annotations

import json

import pytest
import zmq

from imgsieve.stream.protocol import (
    KINDS,
    PROTOCOL,
    ZERO_COPY_THRESHOLD,
    Ack,
    Heartbeat,
    Hello,
    Item,
    ProtocolError,
    Welcome,
    decode,
    encode,
)


def test_a_message_is_protocol_kind_and_json_fields() -> None:
    """Three frames: the protocol tag, the kind, and the fields as compact JSON."""
    frames = encode(Ack(ids=[3, 1, 2]))
    assert frames[:2] == [PROTOCOL, b"ACK"]
    assert isinstance(frames[2], bytes)
    assert json.loads(frames[2]) == {"ids": [3, 1, 2]}


@pytest.mark.parametrize(
    "message",
    [
        Hello(host="h", pid=7, model_name="m", model_version=3, credit=48),
        Welcome(job="j", run="r", heartbeat_interval=1.0, peer_timeout=5.0),
        Heartbeat(working=[1, 2]),
        Item(id=9, uri="s3://b/k.jpg", attempt=3, final=True, error="failed after 3 attempts: lost"),
    ],
)
def test_messages_round_trip(message: object) -> None:
    """What encode writes, decode reads back as an equal message."""
    assert decode(encode(message))[0] == message  # type: ignore[arg-type]


def test_an_item_carries_its_image_as_a_last_frame() -> None:
    """Small payloads are copied, large ones go by reference; both arrive whole."""
    for size in (10, ZERO_COPY_THRESHOLD * 2):
        data = bytes(range(256)) * (size // 256 + 1)
        frames = encode(Item(id=1, uri="u", attempt=1), data)
        assert isinstance(frames[3], zmq.Frame)
        message, payload = decode(frames)
        assert payload == data
        assert isinstance(message, Item)


def test_frames_survive_a_real_socket_pair() -> None:
    """A DEALER-ROUTER round trip over inproc delivers the same message and payload."""
    context = zmq.Context()
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    try:
        for sock in (router, dealer):
            sock.setsockopt(zmq.LINGER, 0)
        router.bind("inproc://protocol-test")
        dealer.connect("inproc://protocol-test")
        data = b"\xff\xd8\xff" + b"x" * ZERO_COPY_THRESHOLD
        dealer.send_multipart(encode(Item(id=5, uri="u", attempt=2), data))
        _identity, *frames = router.recv_multipart(copy=False)
        assert decode(frames) == (Item(id=5, uri="u", attempt=2), data)
    finally:
        router.close()
        dealer.close()
        context.term()


@pytest.mark.parametrize(
    ("frames", "problem"),
    [
        ([PROTOCOL, b"ACK"], "expected 3 or 4 frames"),
        ([b"IMGSIEVE/0", b"ACK", b'{"ids":[]}'], "expected protocol"),
        ([PROTOCOL, b"SHOUT", b"{}"], "unknown message kind"),
        ([PROTOCOL, b"ACK", b'{"ids":"x"}'], "bad ACK fields"),
        ([PROTOCOL, b"ACK", b'{"ids":[], "extra":1}'], "bad ACK fields"),
        ([PROTOCOL, b"ACK", b"not json"], "bad ACK fields"),
        ([PROTOCOL, b"ITEM", b'{"id":1,"uri":"u","attempt":1}'], "needs payload"),
        ([PROTOCOL, b"ACK", b'{"ids":[]}', b"data"], "takes no payload"),
        ([PROTOCOL, b"CREDIT", b'{"n":0}'], "bad CREDIT fields"),
    ],
)
def test_malformed_messages_are_protocol_errors(frames: list[bytes], problem: str) -> None:
    """Every way a message can be wrong raises ProtocolError saying which."""
    with pytest.raises(ProtocolError, match=problem):
        decode(frames)


def test_a_final_item_takes_no_payload() -> None:
    """A final item only tells the consumer which error row to write."""
    item = Item(id=1, uri="u", attempt=3, final=True, error="gone")
    assert len(encode(item)) == 3
    assert decode(encode(item)) == (item, None)


def test_every_kind_is_registered_once() -> None:
    """Kinds are unique names, so a decoder never confuses two message types."""
    assert len(KINDS) == 11
    assert all(kind == cls.KIND for kind, cls in KINDS.items())
