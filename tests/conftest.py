"""Fixtures shared by all tests: sample images and a tiny model trained through the real CLI."""

from __future__ import annotations

import os
import socket
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
