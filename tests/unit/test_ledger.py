"""The producer's ledger: credit, acknowledgement, redelivery on loss, NACK and deadline, poison items."""

from __future__ import annotations

from imgsieve.stream.ledger import Ledger

A, B = b"consumer-a", b"consumer-b"


def ledger(images: int = 3, max_attempts: int = 3) -> Ledger:
    """A ledger holding images i0, i1, ... with item deadline 10 s and consumer timeout 5 s."""
    book = Ledger(max_attempts=max_attempts, item_timeout=10.0, peer_timeout=5.0)
    for i in range(images):
        book.add(f"i{i}", b"data")
    return book


def test_nothing_is_sent_beyond_credit() -> None:
    """A consumer with credit 2 gets two images; the third waits for more credit."""
    book = ledger()
    book.join(A, "a", credit=2, now=0)
    assert [d.entry.uri for d in book.dispatch(0)] == ["i0", "i1"]
    assert book.dispatch(0) == []
    book.grant(A, 1)
    assert [d.entry.uri for d in book.dispatch(0)] == ["i2"]


def test_acknowledged_images_are_forgotten_once() -> None:
    """An ACK retires an image; a second ACK of it (after a redelivery) counts nothing."""
    book = ledger(1)
    book.join(A, "a", credit=1, now=0)
    (sent,) = book.dispatch(0)
    assert book.ack([sent.entry.id]) == 1
    assert book.ack([sent.entry.id]) == 0
    assert book.pending == 0


def test_a_lost_consumer_s_images_go_to_another_at_once() -> None:
    """A silent consumer is dropped after peer_timeout; its images are re-sent first, as attempt 2."""
    book = ledger(2)
    book.join(A, "a", credit=2, now=0)
    book.dispatch(0)
    book.join(B, "b", credit=5, now=4)
    book.touch(B, now=5.5)
    assert book.expire(now=5.5) == [A]
    resent = book.dispatch(5.5)
    assert {d.entry.uri for d in resent} == {"i0", "i1"}
    assert all(d.identity == B and d.entry.attempts == 2 and not d.final for d in resent)


def test_progress_reports_keep_slow_images_from_being_resent() -> None:
    """Images a live consumer reports as still worked on stay with it past their first deadline."""
    book = ledger(1)
    book.join(A, "a", credit=1, now=0)
    book.dispatch(0)
    for now in range(1, 40):
        book.touch(A, now)
        book.progress(A, [1], now)
        book.expire(now)
    assert book.waiting == 0
    assert book.redelivered == 0


def test_an_image_past_its_deadline_is_resent() -> None:
    """An image a live consumer stops reporting is re-queued after item_timeout."""
    book = ledger(1)
    book.join(A, "a", credit=2, now=0)
    book.dispatch(0)
    book.touch(A, 10.5)
    book.expire(10.5)
    (again,) = book.dispatch(10.5)
    assert again.entry.attempts == 2
    assert again.entry.failure == "not acknowledged within 10 s"


def test_after_max_attempts_an_image_is_sent_final_with_its_reason() -> None:
    """The poison rule: after max_attempts failed deliveries the next one is final, without its bytes."""
    book = ledger(1, max_attempts=2)
    book.join(A, "a", credit=10, now=0)
    for _ in range(2):
        (sent,) = book.dispatch(0)
        assert not sent.final
        book.nack(A, [sent.entry.id], "model server: unavailable")
    (last,) = book.dispatch(0)
    assert last.final
    assert last.error == "failed after 2 attempts: model server: unavailable"
    assert last.entry.data is None


def test_a_source_error_is_sent_final_at_once() -> None:
    """An image that could not be fetched goes out once, final, with the fetch error."""
    book = Ledger(max_attempts=3, item_timeout=10, peer_timeout=5)
    book.add("s3://b/gone.jpg", None, "cannot get object: object not found (NoSuchKey)")
    book.join(A, "a", credit=1, now=0)
    (sent,) = book.dispatch(0)
    assert sent.final
    assert sent.error == "cannot get object: object not found (NoSuchKey)"


def test_bye_returns_unstarted_images_without_an_attempt() -> None:
    """Images returned with BYE keep their attempt count; those in progress count one more."""
    book = ledger(2)
    book.join(A, "a", credit=2, now=0)
    first, second = book.dispatch(0)
    book.leave(A, [second.entry.id])
    book.join(B, "b", credit=2, now=1)
    attempts = {d.entry.uri: d.entry.attempts for d in book.dispatch(1)}
    assert attempts == {first.entry.uri: 2, second.entry.uri: 1}


def test_the_consumer_with_most_credit_is_served_first() -> None:
    """Images spread over consumers by remaining credit."""
    book = ledger(4)
    book.join(A, "a", credit=1, now=0)
    book.join(B, "b", credit=3, now=0)
    identities = [d.identity for d in book.dispatch(0)]
    assert identities.count(A) == 1
    assert identities.count(B) == 3


def test_an_error_row_that_cannot_be_written_is_abandoned_after_max_attempts() -> None:
    """A final delivery NACKed max_attempts times is dropped and reported, so the job still ends."""
    book = Ledger(max_attempts=2, item_timeout=10, peer_timeout=5)
    book.add("s3://b/" + "k" * 5000, None, "cannot get object: NoSuchKey")
    book.join(A, "a", credit=10, now=0)
    for _ in range(2):
        (sent,) = book.dispatch(0)
        assert sent.final
        book.nack(A, [sent.entry.id], "cannot store: source_uri too long")
    assert book.pending == 0
    assert book.abandoned == [("s3://b/" + "k" * 5000, "cannot store: source_uri too long")]
