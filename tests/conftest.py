"""Fixtures shared by all tests: sample images, a tiny model trained through the real CLI, an S3 server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def sample_labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small labelled set OUT/<class>/*.jpg written by `imgsieve sample-data`."""
    from imgsieve.cli import main

    out = tmp_path_factory.mktemp("sample") / "labelled"
    assert main(["sample-data", str(out), "--per-class", "16", "--seed", "7"]) == 0
    return out


@pytest.fixture(scope="session")
def sample_unlabelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small unlabelled set OUT/*.jpg with OUT/_truth.csv, written by `imgsieve sample-data`."""
    from imgsieve.cli import main

    out = tmp_path_factory.mktemp("sample") / "unlabelled"
    assert main(["sample-data", str(out), "--unlabelled", "24", "--seed", "8"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_model(sample_labelled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Base path of a model trained by `imgsieve train` (random weights, 64 px, one epoch), version 1."""
    from imgsieve.cli import main

    base = tmp_path_factory.mktemp("models") / "tiny"
    argv = ["train", str(sample_labelled), "--model-dir", str(base), "--weights", "none"]
    argv += ["--image-size", "64", "--epochs", "1", "--batch-size", "8", "--seed", "1"]
    assert main(argv) == 0
    assert (base / "1" / "saved_model.pb").is_file()
    return base


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 protocol server (moto in server mode) on a free port; sets the AWS_* variables."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not start on {url}") from None
            time.sleep(0.1)
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        proc.wait(timeout=10)
