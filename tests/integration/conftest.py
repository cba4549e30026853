"""Fixtures for integration tests: a private MariaDB server for the session and a fresh database per test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgsieve.store.connection import PASSWORD_ENV
from tests.integration.mariadb import MAX_SOCKET_PATH, MariaDB, start_private_server


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """A private MariaDB 10.11 on 127.0.0.1 (free port), shut down cleanly at the end of the session."""
    base = tmp_path_factory.mktemp("mariadb")
    short_base = None
    if len(str(base / "sock")) > MAX_SOCKET_PATH:
        short_base = Path(tempfile.mkdtemp(prefix="imgsieve-mdb-"))
        base = short_base
    server = start_private_server(base)
    try:
        yield server
    finally:
        server.stop()
        if short_base is not None:
            shutil.rmtree(short_base, ignore_errors=True)


@pytest.fixture
def db_url(mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch) -> str:
    """URL of a fresh empty database for the `imgsieve` test account; its password is in $IMGSIEVE_DB_PASSWORD."""
    monkeypatch.setenv(PASSWORD_ENV, mariadb.password)
    return mariadb.new_database_url()
