"""The producer's bookkeeping of one job: which image is where, who may take more, what to re-send.

Pure state without sockets or clocks of its own (callers pass `now`), so every delivery rule is
testable on its own. An image stays in the ledger, bytes included, until some consumer acknowledges
it; it is re-sent when its consumer is lost, NACKs it, or lets its deadline pass without reporting
progress. After max_attempts deliveries it is sent once more flagged final, so that a consumer
writes it as an error row instead of it circling forever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Entry:
    """One image of the job, from the moment it is fetched until its row is acknowledged."""

    id: int
    uri: str
    data: bytes | None
    error: str | None = None  # set when the image could not even be fetched
    attempts: int = 0
    failure: str | None = None  # why the last delivery failed
    holder: bytes | None = None
    deadline: float = 0.0
    final: bool = False  # its error row is all that is left to write
    final_failures: int = 0


@dataclass
class Peer:
    """One consumer connection: its remaining credit and the images it holds."""

    identity: bytes
    host: str
    credit: int
    last_seen: float
    held: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Dispatch:
    """An instruction to send entry to the consumer identity; final entries carry the error to write."""

    identity: bytes
    entry: Entry
    final: bool
    error: str | None


class Ledger:
    """Images waiting, images held by consumers, and the consumers themselves."""

    def __init__(self, max_attempts: int, item_timeout: float, peer_timeout: float):
        self.max_attempts = max_attempts
        self.item_timeout = item_timeout
        self.peer_timeout = peer_timeout
        self.entries: dict[int, Entry] = {}
        self.queue: deque[int] = deque()
        self.peers: dict[bytes, Peer] = {}
        self.acked = 0
        self.redelivered = 0
        # Images whose error row itself could not be written max_attempts times: (uri, reason).
        self.abandoned: list[tuple[str, str]] = []
        self._next_id = 1

    def add(self, uri: str, data: bytes | None, error: str | None = None) -> Entry:
        """Register a fetched image (or its fetch error) and queue it for delivery."""
        entry = Entry(self._next_id, uri, data, error)
        self._next_id += 1
        self.entries[entry.id] = entry
        self.queue.append(entry.id)
        return entry

    def join(self, identity: bytes, host: str, credit: int, now: float) -> None:
        """Admit a consumer with its first credit."""
        self.peers[identity] = Peer(identity, host, credit, now)

    def touch(self, identity: bytes, now: float) -> Peer | None:
        """Note that a consumer spoke; return it, or None if it is unknown."""
        peer = self.peers.get(identity)
        if peer is not None:
            peer.last_seen = now
        return peer

    def progress(self, identity: bytes, working: Iterable[int], now: float) -> None:
        """Push back the deadlines of the images a consumer reports as still being worked on."""
        for item_id in working:
            entry = self.entries.get(item_id)
            if entry is not None and entry.holder == identity:
                entry.deadline = now + self.item_timeout

    def grant(self, identity: bytes, n: int) -> None:
        """Add n to a consumer's credit."""
        if identity in self.peers:
            self.peers[identity].credit += n

    def ack(self, ids: Iterable[int]) -> int:
        """Forget acknowledged images (from whichever consumer); return how many were still pending."""
        done = 0
        for item_id in ids:
            entry = self.entries.pop(item_id, None)
            if entry is None:
                continue  # acknowledged twice after a redelivery: the row is there already
            if entry.holder in self.peers:
                self.peers[entry.holder].held.discard(item_id)
            done += 1
        self.acked += done
        return done

    def nack(self, identity: bytes, ids: Iterable[int], reason: str) -> None:
        """Re-queue images a consumer failed to process; give up on error rows that keep failing."""
        for item_id in ids:
            entry = self.entries.get(item_id)
            if entry is None or entry.holder != identity:
                continue
            if entry.final:
                entry.final_failures += 1
                if entry.final_failures >= self.max_attempts:
                    self._abandon(entry, reason)
                    continue
            self._requeue(entry, reason)

    def leave(self, identity: bytes, returned: Iterable[int]) -> None:
        """Drop a consumer that said BYE: returned images were never started and cost no attempt."""
        for item_id in returned:
            entry = self.entries.get(item_id)
            if entry is not None and entry.holder == identity and not entry.error:
                entry.attempts = max(entry.attempts - 1, 0)
                self._requeue(entry, entry.failure)
        self.lose(identity, "consumer stopped while processing")

    def lose(self, identity: bytes, reason: str) -> None:
        """Drop a consumer and re-queue everything it held."""
        peer = self.peers.pop(identity, None)
        if peer is None:
            return
        for item_id in sorted(peer.held):
            entry = self.entries.get(item_id)
            if entry is not None and entry.holder == identity:
                self._requeue(entry, reason)

    def expire(self, now: float) -> list[bytes]:
        """Drop silent consumers and re-queue overdue images; return the consumers dropped."""
        silent = [p.identity for p in self.peers.values() if now - p.last_seen > self.peer_timeout]
        for identity in silent:
            self.lose(identity, "consumer lost while processing")
        for entry in list(self.entries.values()):
            if entry.holder is not None and entry.deadline < now:
                self._requeue(entry, f"not acknowledged within {self.item_timeout:g} s")
        return silent

    def dispatch(self, now: float) -> list[Dispatch]:
        """Assign queued images to consumers with credit, the one with most credit first."""
        sends = []
        while self.queue:
            peer = max(self.peers.values(), key=lambda p: p.credit, default=None)
            if peer is None or peer.credit <= 0:
                break
            entry = self.entries.get(self.queue.popleft())
            if entry is None or entry.holder is not None:
                continue  # acknowledged while it waited for a redelivery
            final, error = self._verdict(entry)
            if final:
                # A final delivery only writes an error row: the bytes can go, the reason stays.
                entry.data, entry.error, entry.final = None, error, True
            else:
                entry.attempts += 1
            entry.holder, entry.deadline = peer.identity, now + self.item_timeout
            peer.credit -= 1
            peer.held.add(entry.id)
            sends.append(Dispatch(peer.identity, entry, final, error))
        return sends

    def _verdict(self, entry: Entry) -> tuple[bool, str | None]:
        """Tell whether entry must be delivered final (as an error row), and with which error."""
        if entry.error is not None:
            return True, entry.error
        if entry.attempts >= self.max_attempts:
            return True, f"failed after {entry.attempts} attempts: {entry.failure}"
        return False, None

    def _abandon(self, entry: Entry, reason: str) -> None:
        """Drop an image whose error row cannot be written either, so that the job still ends."""
        del self.entries[entry.id]
        if entry.holder in self.peers:
            self.peers[entry.holder].held.discard(entry.id)
        self.abandoned.append((entry.uri, reason))

    def _requeue(self, entry: Entry, reason: str | None) -> None:
        """Take entry back from its holder and put it first in line."""
        if entry.holder in self.peers:
            self.peers[entry.holder].held.discard(entry.id)
        entry.holder = None
        entry.failure = reason
        self.redelivered += 1
        self.queue.appendleft(entry.id)

    @property
    def pending(self) -> int:
        """Images fetched but not yet acknowledged."""
        return len(self.entries)

    @property
    def waiting(self) -> int:
        """Images queued for delivery (new or re-sent)."""
        return len(self.queue)
