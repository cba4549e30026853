"""S3 access shared by training (syncing a labelled prefix) and the stream (listing and reading images).

The endpoint comes from boto3's own configuration, so `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`)
points every client at an S3-compatible server such as moto or MinIO without code changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from tqdm import tqdm

from imgsieve.errors import UserError

S3_SCHEME = "s3"
LIST_PAGE_SIZE = 1000
MAX_POOL_CONNECTIONS = 32
SYNC_WORKERS = 16
SYNC_MANIFEST = ".imgsieve-sync.json"  # hidden, so dataset scans never take it for an image


@dataclass(frozen=True)
class S3Object:
    """One listed object: where it is and how big it is."""

    bucket: str
    key: str
    size: int
    etag: str

    @property
    def uri(self) -> str:
        """The object's s3:// URI."""
        return f"s3://{self.bucket}/{self.key}"


def is_s3_url(location: str) -> bool:
    """Tell whether location is an s3:// URL rather than a local path."""
    return location.startswith(f"{S3_SCHEME}://")


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split s3://bucket/prefix into (bucket, prefix); the prefix may be empty."""
    parsed = urlparse(url)
    if parsed.scheme != S3_SCHEME or not parsed.netloc:
        raise UserError(f"not an S3 URL: {url!r} (expected s3://BUCKET/PREFIX/)")
    return parsed.netloc, parsed.path.lstrip("/")


def make_client(max_pool_connections: int = MAX_POOL_CONNECTIONS) -> Any:
    """Return a thread-safe S3 client with a connection pool sized for concurrent GETs."""
    config = Config(max_pool_connections=max_pool_connections, retries={"mode": "standard"})
    return boto3.client("s3", config=config)


def iter_objects(client: Any, bucket: str, prefix: str) -> Iterator[S3Object]:
    """Yield every object under prefix, one listing page at a time (never the whole bucket at once)."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
    ):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):
                continue  # a "folder" placeholder object, not an image
            yield S3Object(bucket, item["Key"], int(item["Size"]), str(item.get("ETag", "")).strip('"'))


@dataclass(frozen=True)
class SyncResult:
    """What a sync did: objects fetched, objects already up to date, stale local files removed."""

    downloaded: int
    unchanged: int
    removed: int


def sync_prefix(client: Any, url: str, dest: Path, workers: int = SYNC_WORKERS) -> SyncResult:
    """Mirror every object under the s3:// URL into dest, fetching only new or changed ones.

    An object is unchanged when the manifest of the last sync records the same size and ETag and
    the local file still has that size. Local files whose objects are gone are removed, so the
    cache never trains on images that no longer exist in the bucket.
    """
    bucket, prefix = parse_s3_url(url)
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # a prefix names a folder: s3://b/cats must not also match s3://b/catsup/
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / SYNC_MANIFEST
    old = _read_manifest(manifest_path)
    new: dict[str, list[Any]] = {}
    todo: list[tuple[S3Object, Path]] = []
    try:
        for obj in iter_objects(client, bucket, prefix):
            local = _local_path(dest, obj.key[len(prefix) :], obj.uri)
            if (
                old.get(obj.key) == [obj.size, obj.etag]
                and local.is_file()
                and local.stat().st_size == obj.size
            ):
                new[obj.key] = [obj.size, obj.etag]
            else:
                todo.append((obj, local))
        unchanged = len(new)
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            tqdm(total=sum(o.size for o, _ in todo), unit="B", unit_scale=True, desc=f"sync {url}") as bar,
        ):
            futures = {pool.submit(_download, client, obj, local): obj for obj, local in todo}
            for future in as_completed(futures):
                obj = futures[future]
                future.result()
                new[obj.key] = [obj.size, obj.etag]
                bar.update(obj.size)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(
            f"cannot sync {url} to {dest}: {exc}; check the URL, credentials and endpoint"
        ) from exc
    finally:
        # Written even after a failure, so a rerun fetches only what is still missing.
        manifest_path.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    removed = 0
    for key in old.keys() - new.keys():
        stale = dest / key[len(prefix) :] if key.startswith(prefix) else None
        if stale is not None and stale.is_file():
            stale.unlink()
            removed += 1
    return SyncResult(downloaded=len(todo), unchanged=unchanged, removed=removed)


def _read_manifest(path: Path) -> dict[str, list[Any]]:
    """Return the {key: [size, etag]} record of the last sync, or {} when there is none."""
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _local_path(dest: Path, relative: str, uri: str) -> Path:
    """Return where the object with this key (relative to the prefix) is stored under dest."""
    local = (dest / relative).resolve()
    if not local.is_relative_to(dest.resolve()):
        raise UserError(f"refusing to sync {uri}: its key escapes the cache folder {dest}")
    return local


def _download(client: Any, obj: S3Object, local: Path) -> None:
    """Fetch one object to local through a temporary file, so a cut-off download never looks complete."""
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(f".{local.name}.partial")
    client.download_file(obj.bucket, obj.key, str(partial))
    os.replace(partial, local)
