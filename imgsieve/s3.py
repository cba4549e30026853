"""S3 access shared by training (syncing a labelled prefix) and the stream (listing and reading images).

The endpoint comes from boto3's own configuration, so `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`)
points every client at an S3-compatible server such as moto or MinIO without code changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from imgsieve.errors import UserError

S3_SCHEME = "s3"
LIST_PAGE_SIZE = 1000
MAX_POOL_CONNECTIONS = 32


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
