"""The store over TLS: a private MariaDB that requires secure transport, with a certificate from a test CA.

A client given the CA verifies the server and its name; a wrong CA or a name the certificate does not list
is refused with a message that says what to check; a client that refuses TLS is turned away by the server.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from imgsieve.cli import main
from imgsieve.errors import UserError
from imgsieve.store.connection import tls_options
from imgsieve.store.db import Store
from tests.integration.mariadb import MariaDB, start_private_server
from tests.integration.tls import ServerTls, make_server_tls

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[MariaDB, ServerTls, Path]]:
    """A private MariaDB requiring TLS, its certificates, and a second CA that did not sign them."""
    base = Path(tempfile.mkdtemp(prefix="imgsieve-tls-"))  # short: the socket path is limited
    tls = make_server_tls(base / "tls", ["127.0.0.1", "db.internal"])
    other = make_server_tls(base / "other", ["127.0.0.1"], ca_name="another CA")
    options = (f"--ssl-ca={tls.ca}", f"--ssl-cert={tls.cert}", f"--ssl-key={tls.key}")
    server = start_private_server(base, (*options, "--require-secure-transport=ON"))
    try:
        yield server, tls, other.ca
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_verified_tls_connection_is_encrypted(tls_server: tuple[MariaDB, ServerTls, Path]) -> None:
    server, tls, _ = tls_server
    url = server.url(server.create_database())
    with Store.connect(url, server.password, ssl=tls_options(tls.ca)) as store:
        store.init_schema()
        status = store.status()
        assert status.schema_version == status.latest_version
    conn = pymysql.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        ssl={"ca": str(tls.ca)},
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
            assert cursor.fetchone()[1].startswith("TLSv1.")
    finally:
        conn.close()


def test_certificate_from_another_ca_is_refused(tls_server: tuple[MariaDB, ServerTls, Path]) -> None:
    server, _, other_ca = tls_server
    with pytest.raises(
        UserError, match=r"does not verify.*certificate verify failed.*check that \[db\] ssl_ca"
    ):
        Store.connect(server.url("mysql"), server.password, ssl=tls_options(other_ca))


def test_host_the_certificate_does_not_name_is_refused(tls_server: tuple[MariaDB, ServerTls, Path]) -> None:
    server, tls, _ = tls_server
    url = f"mysql://{server.user}@localhost:{server.port}/mysql"
    with pytest.raises(UserError, match=r"does not verify.*not valid for 'localhost'"):
        Store.connect(url, server.password, ssl=tls_options(tls.ca))


def test_client_without_tls_is_turned_away(tls_server: tuple[MariaDB, ServerTls, Path]) -> None:
    server, _, _ = tls_server
    with pytest.raises(pymysql.err.OperationalError) as caught:
        pymysql.connect(
            host=server.host, port=server.port, user=server.user, password=server.password, ssl_disabled=True
        )
    assert caught.value.args[0] == 1045  # MariaDB says "access denied" to a plain connection it must refuse


def test_unreadable_ca_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"cannot read the database's CA certificate {tmp_path / 'none.pem'}"):
        tls_options(tmp_path / "none.pem")


def test_db_status_takes_the_ca_from_the_environment(
    tls_server: tuple[MariaDB, ServerTls, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, tls, other_ca = tls_server
    url = server.url(server.create_database())
    monkeypatch.setenv("IMGSIEVE_DB_PASSWORD", server.password)
    monkeypatch.setenv("IMGSIEVE_DB_SSL_CA", str(tls.ca))
    assert main(["db", "init", "--db", url]) == 0
    assert main(["db", "status", "--db", url, "--ssl-ca", str(other_ca)]) == 2
    assert "does not verify" in capsys.readouterr().err
