"""Where the producer's images come from: an S3 prefix or a local folder, listed lazily page by page.

A source lists references (URI and size) one page at a time and fetches each referenced image's
bytes. `fetch_all` fetches a page's images with bounded concurrency, in listing order, holding at
most a small window of images in memory. A failure to fetch one image (deleted after listing, access
denied, unreadable, too large) is returned as that image's error, with a readable reason, so the
stream records it and goes on.
"""

from __future__ import annotations

import fnmatch
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from imgsieve import s3
from imgsieve.errors import UserError

PAGE_SIZE = s3.LIST_PAGE_SIZE
# S3 error codes and what they mean for one image, said so that an operator knows what to do.
S3_REASONS = {
    "NoSuchKey": "object not found (deleted after it was listed?)",
    "AccessDenied": "access denied: the credentials may not s3:GetObject this key",
    "InvalidObjectState": "object is archived (Glacier storage class): restore it first",
}


class SourceError(Exception):
    """One image could not be fetched; the message is the reason recorded in its error row."""


@dataclass(frozen=True)
class SourceRef:
    """One listed image: its URI (the row's key) and its size in bytes."""

    uri: str
    size: int


@dataclass(frozen=True)
class Fetched:
    """One fetched image: its bytes, or the reason it could not be fetched."""

    uri: str
    data: bytes | None
    error: str | None = None


class Source(Protocol):
    """A lazily listed collection of images."""

    location: str

    def pages(self) -> Iterator[list[SourceRef]]:
        """Yield the matching images one listing page at a time."""
        ...

    def read(self, ref: SourceRef, max_bytes: int) -> bytes:
        """Return the image's bytes; raise SourceError with a readable reason."""
        ...


def matches(name: str, include: Sequence[str]) -> bool:
    """Tell whether a file name matches one of the include globs, ignoring case."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in include)


def _chunks(refs: Iterable[SourceRef], size: int) -> Iterator[list[SourceRef]]:
    """Group refs into lists of at most size."""
    page: list[SourceRef] = []
    for ref in refs:
        page.append(ref)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


class FolderSource:
    """Every matching file under a folder, walked lazily, each directory in name order."""

    def __init__(self, root: Path, include: Sequence[str], page_size: int = PAGE_SIZE):
        if not root.is_dir():
            raise UserError(f"cannot stream {root}: not a folder; give a folder or s3://bucket/prefix/")
        self.root = root.resolve()
        self.location = str(self.root)
        self.include = list(include)
        self.page_size = page_size

    def pages(self) -> Iterator[list[SourceRef]]:
        """Yield matching files one page at a time, recursing into subfolders in name order."""
        return _chunks(self._walk(self.root), self.page_size)

    def _walk(self, folder: Path) -> Iterator[SourceRef]:
        """Yield matching files under folder; hidden entries and folder symlinks are skipped."""
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path))
            elif entry.is_file() and matches(entry.name, self.include):
                yield SourceRef(entry.path, entry.stat().st_size)

    def read(self, ref: SourceRef, max_bytes: int) -> bytes:
        """Return the file's bytes; raise SourceError if it is unreadable or too large."""
        try:
            with open(ref.uri, "rb") as file:
                data = file.read(max_bytes + 1)
        except OSError as exc:
            raise SourceError(f"cannot read file: {exc.strerror}") from None
        return _within(data, max_bytes)


class S3Source:
    """Every matching object under an s3://bucket/prefix/, listed one page at a time."""

    def __init__(self, url: str, include: Sequence[str], client: Any = None, page_size: int = PAGE_SIZE):
        self.bucket, self.prefix = s3.parse_s3_url(url)
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"  # a prefix names a folder: s3://b/cats must not also match s3://b/catsup/
        self.location = url
        self.include = list(include)
        self.client = client if client is not None else s3.make_client()
        self.page_size = page_size

    def pages(self) -> Iterator[list[SourceRef]]:
        """Yield matching objects one listing page at a time; listing failures are UserErrors."""
        objects = s3.iter_objects(self.client, self.bucket, self.prefix)
        refs = (
            SourceRef(obj.uri, obj.size)
            for obj in objects
            if matches(obj.key.rsplit("/", 1)[-1], self.include)
        )
        try:
            yield from _chunks(refs, self.page_size)
        except (BotoCoreError, ClientError) as exc:
            raise UserError(
                f"cannot list {self.location}: {exc}; check the URL, credentials and endpoint"
            ) from None

    def read(self, ref: SourceRef, max_bytes: int) -> bytes:
        """Return the object's bytes; raise SourceError naming the S3 error."""
        _, key = s3.parse_s3_url(ref.uri)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with body:
                data = body.read(max_bytes + 1)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            raise SourceError(f"cannot get object: {S3_REASONS.get(code, str(exc))} ({code})") from None
        except BotoCoreError as exc:
            raise SourceError(f"cannot get object: {exc}") from None
        return _within(data, max_bytes)


def _within(data: bytes, max_bytes: int) -> bytes:
    """Return data, or raise SourceError if it is over max_bytes (read capped at max_bytes + 1)."""
    if len(data) > max_bytes:
        raise SourceError(f"image is over the {max_bytes:,}-byte limit; raise max_bytes to accept it")
    return data


def open_source(location: str, include: Sequence[str]) -> Source:
    """Return the source for an s3:// URL or a local folder path."""
    if s3.is_s3_url(location):
        return S3Source(location, include)
    return FolderSource(Path(location), include)


def fetch_all(
    source: Source, refs: Iterable[SourceRef], concurrency: int, max_bytes: int
) -> Iterator[Fetched]:
    """Fetch refs with up to concurrency reads at once and yield them in order, bounded in memory."""
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fetch")
    window: deque[tuple[SourceRef, Future[bytes]]] = deque()
    try:
        for ref in refs:
            if ref.size > max_bytes:
                window.append(
                    (ref, _failed(f"image is {ref.size:,} bytes, over the {max_bytes:,}-byte limit"))
                )
            else:
                window.append((ref, pool.submit(source.read, ref, max_bytes)))
            if len(window) >= 2 * concurrency:
                yield _result(*window.popleft())
        while window:
            yield _result(*window.popleft())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _failed(reason: str) -> Future[bytes]:
    """Return a future already failed with SourceError(reason)."""
    future: Future[bytes] = Future()
    future.set_exception(SourceError(reason))
    return future


def _result(ref: SourceRef, future: Future[bytes]) -> Fetched:
    """Wait for one read and wrap its bytes or its failure."""
    try:
        return Fetched(ref.uri, future.result())
    except SourceError as exc:
        return Fetched(ref.uri, None, str(exc))
