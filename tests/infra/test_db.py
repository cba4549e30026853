"""The deployed result store: MariaDB on the db host only, reachable by name from the pipeline's hosts, with
the store's accounts holding exactly the privileges imgsieve.store.schema defines and nothing else open."""

from __future__ import annotations

import json
import shlex
import subprocess

import pymysql
import pytest
from testinfra.host import Host  # type: ignore[import-untyped]

from imgsieve.store.schema import grants_for
from tests.infra.conftest import LocalCopy, hosts_of
from tests.mariadb_checks import (
    ACCESS_DENIED,
    TABLE_ACCESS_DENIED,
    parse_grants,
    role_statements,
    sql,
    statement_id,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DB_HOST = hosts_of("db")[0]
OTHER_HOSTS = [name for name in hosts_of("imgsieve") if name != DB_HOST]
CLIENT_HOSTS = hosts_of("producers") + hosts_of("consumers")
PORT = 3306
DATABASE = "imgsieve"
# (user, role); the admin may log in from the db host itself only, the others from the hosts' subnet.
ACCOUNTS = [("imgsieve_admin", "admin"), ("imgsieve_producer", "producer"), ("imgsieve_consumer", "consumer")]
# Run from this machine, which is inside the hosts' subnet (the network's gateway).
STATEMENTS = role_statements("imgsieve_consumer", "imgsieve_producer")
STATEMENT_IDS = [statement_id(user, statement) for user, statement, _ in STATEMENTS]


def account_host(local_copy: LocalCopy, user: str) -> str:
    """The host part of a store account: 127.0.0.1 for the admin, the hosts' subnet for the others."""
    return "127.0.0.1" if user == "imgsieve_admin" else local_copy.client_host


def connect(local_copy: LocalCopy, user: str) -> pymysql.connections.Connection:
    """Log in to the store as user from this machine, over the hosts' network, with the inventory's password."""
    address = json.loads(
        subprocess.run(
            ["podman", "inspect", local_copy.container(DB_HOST)], check=True, capture_output=True, text=True
        ).stdout
    )[0]["NetworkSettings"]["Networks"][local_copy.prefix]["IPAddress"]
    password = local_copy.variables(DB_HOST)[f"{user.replace('imgsieve_', 'imgsieve_db_')}_password"]
    return pymysql.connect(
        host=address, port=PORT, user=user, password=password, database=DATABASE, connect_timeout=10
    )


def test_mariadb_is_active_and_enabled(db_host: Host) -> None:
    """MariaDB runs on the db host and starts at boot; otherwise the failure shows its journal."""
    service = db_host.service("mariadb")
    if not (service.is_running and service.is_enabled):
        pytest.fail(
            "mariadb is not active and enabled:\n"
            + db_host.run("journalctl -u mariadb -n 40 --no-pager").stdout
        )


def test_mariadb_listens_on_the_network(db_host: Host) -> None:
    """The db host's server listens on every address, so the other hosts can reach it."""
    assert db_host.socket(f"tcp://0.0.0.0:{PORT}").is_listening


@pytest.mark.parametrize("name", OTHER_HOSTS)
def test_no_database_port_on_other_hosts(local_copy: LocalCopy, name: str) -> None:
    """Nothing listens on the database port on any host but the db host."""
    assert not local_copy.host(name).socket(f"tcp://{PORT}").is_listening


@pytest.mark.parametrize("name", CLIENT_HOSTS)
def test_pipeline_hosts_reach_the_database_by_name(local_copy: LocalCopy, name: str) -> None:
    """Producers and consumers open a TCP connection to the db host's container name and port."""
    target = f"/dev/tcp/{local_copy.container(DB_HOST)}/{PORT}"
    assert local_copy.host(name).run(f"timeout 5 bash -c {shlex.quote(f'exec 3<>{target}')}").rc == 0


def test_no_anonymous_accounts(db_host: Host) -> None:
    """No account has an empty user name."""
    assert sql(db_host, "SELECT COUNT(*) FROM mysql.user WHERE User = ''") == ["0"]


def test_no_test_database(db_host: Host) -> None:
    """Neither the test database nor grants on test databases exist."""
    assert "test" not in sql(db_host, "SHOW DATABASES")
    assert sql(db_host, "SELECT COUNT(*) FROM mysql.db WHERE Db LIKE 'test%'") == ["0"]


def test_root_only_through_the_socket(db_host: Host) -> None:
    """root exists only for localhost and is refused over TCP with any password."""
    assert sql(db_host, "SELECT Host FROM mysql.user WHERE User = 'root'") == ["localhost"]
    refused = db_host.run("MYSQL_PWD=invalid mariadb -h 127.0.0.1 -u root -e 'SELECT 1'")
    assert refused.rc != 0 and "Access denied" in refused.stderr


def test_only_the_store_accounts_exist(db_host: Host) -> None:
    """Apart from MariaDB's own system accounts, the store's accounts are the only ones."""
    users = set(sql(db_host, "SELECT User FROM mysql.user")) - {"root", "mysql", "mariadb.sys"}
    assert users == {user for user, _ in ACCOUNTS}


@pytest.mark.parametrize(("user", "role"), ACCOUNTS)
def test_account_has_exactly_its_roles_grants(
    local_copy: LocalCopy, db_host: Host, user: str, role: str
) -> None:
    """Each account's grants equal imgsieve.store.schema.grants_for its role, for its host pattern."""
    host = account_host(local_copy, user)
    shown = sql(db_host, f"SHOW GRANTS FOR '{user}'@'{host}'")
    assert parse_grants(shown) == parse_grants(grants_for(role, user, host, DATABASE))


@pytest.mark.parametrize(("user", "statement", "allowed"), STATEMENTS, ids=STATEMENT_IDS)
def test_account_may_run_only_what_its_role_allows(
    local_copy: LocalCopy, user: str, statement: str, allowed: bool
) -> None:
    """Over the network, an account can run its role's statements and is refused the others."""
    with connect(local_copy, user) as connection, connection.cursor() as cursor:
        if allowed:
            cursor.execute(statement)
            connection.commit()
        else:
            with pytest.raises(pymysql.MySQLError) as denied:
                cursor.execute(statement)
            assert denied.value.args[0] == TABLE_ACCESS_DENIED


def test_admin_cannot_log_in_over_the_network(local_copy: LocalCopy) -> None:
    """The admin account, meant for `imgsieve db init` on the db host, is refused from elsewhere."""
    with pytest.raises(pymysql.MySQLError) as denied:
        connect(local_copy, "imgsieve_admin")
    assert denied.value.args[0] == ACCESS_DENIED


# Run as the service user with a client host's imgsieve Python: connect as the consumer account (password on stdin) to the db host
# named in argv[1], over TLS when argv[2] is a CA file (verified, name included) or without TLS when it is "off";
# print the session's TLS version.
TLS_PROBE = """
import sys, pymysql
host, ca = sys.argv[1], sys.argv[2]
options = {"ssl_disabled": True} if ca == "off" else {"ssl": {"ca": ca}}
try:
    conn = pymysql.connect(host=host, user="imgsieve_consumer", password=sys.stdin.read(), connect_timeout=10, **options)
except pymysql.MySQLError as exc:
    sys.exit(f"refused: {exc.args}")
with conn.cursor() as cursor:
    cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
    print(cursor.fetchone()[1])
"""
CLIENT_CA = "/etc/imgsieve/db-ca.pem"
TLS_FILES = [
    ("/etc/mysql/tls/ca.key", "root", "root", 0o600),
    ("/etc/mysql/tls/ca.pem", "root", "root", 0o644),
    ("/etc/mysql/tls/server.key", "root", "mysql", 0o640),
    ("/etc/mysql/tls/server.pem", "root", "root", 0o644),
]


def tls_probe(local_copy: LocalCopy, name: str, ca: str) -> subprocess.CompletedProcess[str]:
    """Run TLS_PROBE on a client host as the service user (who may read the CA) against the db host by name."""
    password = local_copy.variables(DB_HOST)["imgsieve_db_consumer_password"]
    python = ["sudo", "-n", "-u", "imgsieve", "/opt/imgsieve/venv/bin/python"]
    command = [*python, "-c", TLS_PROBE, local_copy.container(DB_HOST), ca]
    return subprocess.run(
        ["ssh", "-F", str(local_copy.ssh_config), name, shlex.join(command)],
        input=password,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("expected", TLS_FILES, ids=[path for path, *_ in TLS_FILES])
def test_tls_file_owner_and_mode(db_host: Host, expected: tuple[str, str, str, int]) -> None:
    """The CA's key is root's alone; MariaDB's group may read the server's key."""
    path, owner, group, mode = expected
    found = db_host.file(path)
    assert (found.user, found.group, oct(found.mode)) == (owner, group, oct(mode))


@pytest.mark.parametrize("name", CLIENT_HOSTS)
def test_clients_verify_the_servers_certificate(local_copy: LocalCopy, name: str) -> None:
    """Each client host has the store's CA and reaches the server by name over verified TLS."""
    result = tls_probe(local_copy, name, CLIENT_CA)
    assert result.returncode == 0 and result.stdout.startswith("TLSv1."), result.stderr


def test_connection_without_tls_is_refused(local_copy: LocalCopy) -> None:
    """The server turns away a client that will not use TLS, with the right password."""
    result = tls_probe(local_copy, CLIENT_HOSTS[0], "off")
    assert result.returncode != 0 and "refused: (1045" in result.stderr, (result.stdout, result.stderr)


def test_client_configs_name_the_ca(local_copy: LocalCopy) -> None:
    """The consumers' config and the producer's job environment point the store's connections at the CA."""
    for name in hosts_of("consumers"):
        config = local_copy.host(name).file("/etc/imgsieve/consumer.toml").content_string
        assert f'ssl_ca = "{CLIENT_CA}"' in config
    for name in hosts_of("producers"):
        assert (
            f"IMGSIEVE_DB_SSL_CA={CLIENT_CA}"
            in local_copy.host(name).file("/etc/imgsieve/producer.env").content_string
        )
