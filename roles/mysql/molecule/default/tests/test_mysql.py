"""What role mysql leaves on a host, checked inside the molecule container (accounts as in converge.yml)."""

from __future__ import annotations

import shlex

import pytest
from testinfra.host import Host  # type: ignore[import-untyped]

from imgsieve.store.schema import grants_for
from tests.mariadb_checks import parse_grants, role_statements, sql, statement_id

DATABASE = "imgsieve"
# (user, role, password) as converge.yml creates them, all for host 127.0.0.1.
ACCOUNTS = [
    ("molecule_admin", "admin", "molecule-only-admin"),
    ("molecule_producer", "producer", "molecule-only-producer"),
    ("molecule_consumer", "consumer", "molecule-only-consumer"),
]
PASSWORDS = {user: password for user, _, password in ACCOUNTS}
CA = "/etc/mysql/tls/ca.pem"
# The mariadb client over TCP, with TLS verified against the role's CA (the server requires TLS).
TCP_CLIENT = f"mariadb -h 127.0.0.1 --ssl-ca={CA} --ssl-verify-server-cert"
STATEMENTS = role_statements("molecule_consumer", "molecule_producer")


def test_mariadb_is_running_and_enabled(host: Host) -> None:
    """MariaDB runs and starts at boot; otherwise the failure shows its journal."""
    service = host.service("mariadb")
    if not (service.is_running and service.is_enabled):
        pytest.fail(
            "mariadb is not running and enabled:\n"
            + host.run("journalctl -u mariadb -n 40 --no-pager").stdout
        )


def test_listens_on_the_bind_address(host: Host) -> None:
    """The server listens on the configured address (0.0.0.0 in converge.yml) and port."""
    assert host.socket("tcp://0.0.0.0:3306").is_listening


def test_no_anonymous_accounts(host: Host) -> None:
    """No account has an empty user name."""
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User = ''") == ["0"]


def test_no_test_database(host: Host) -> None:
    """Neither the test database nor grants on test databases exist."""
    assert "test" not in sql(host, "SHOW DATABASES")
    assert sql(host, "SELECT COUNT(*) FROM mysql.db WHERE Db LIKE 'test%'") == ["0"]


def test_root_exists_only_for_localhost(host: Host) -> None:
    """root has no account for any other host."""
    assert sql(host, "SELECT Host FROM mysql.user WHERE User = 'root'") == ["localhost"]


def test_root_cannot_log_in_with_a_password(host: Host) -> None:
    """root is refused over TCP whatever the password: only the unix socket lets it in."""
    for password in ("", "invalid", "root"):
        result = host.run(f"MYSQL_PWD={shlex.quote(password)} {TCP_CLIENT} -u root -e 'SELECT 1'")
        assert result.rc != 0 and "Access denied" in result.stderr


@pytest.mark.parametrize(("user", "role"), [(user, role) for user, role, _ in ACCOUNTS])
def test_account_has_exactly_its_roles_grants(host: Host, user: str, role: str) -> None:
    """Each account's grants equal imgsieve.store.schema.grants_for its role."""
    shown = sql(host, f"SHOW GRANTS FOR '{user}'@'127.0.0.1'")
    assert parse_grants(shown) == parse_grants(grants_for(role, user, "127.0.0.1", DATABASE))


@pytest.mark.parametrize(
    ("user", "statement", "allowed"), STATEMENTS, ids=[statement_id(u, s) for u, s, _ in STATEMENTS]
)
def test_account_may_run_only_what_its_role_allows(
    host: Host, user: str, statement: str, allowed: bool
) -> None:
    """Logged in with its password over TCP, an account can run its role's statements and no others."""
    command = f"MYSQL_PWD={shlex.quote(PASSWORDS[user])} {TCP_CLIENT} -u {user} {DATABASE}"
    result = host.run(f"{command} -e {shlex.quote(statement)}")
    assert (result.rc == 0) == allowed, result.stderr
    if not allowed:
        assert "command denied" in result.stderr


def test_tcp_without_tls_is_refused(host: Host) -> None:
    """With the right password but without TLS, the server turns an account away."""
    command = f"MYSQL_PWD={shlex.quote(PASSWORDS['molecule_consumer'])} mariadb -h 127.0.0.1 --skip-ssl"
    result = host.run(f"{command} -u molecule_consumer -e 'SELECT 1'")
    assert result.rc != 0, result.stdout


def test_tcp_session_is_tls_verified_by_the_roles_ca(host: Host) -> None:
    """A client holding the CA's certificate verifies the server's (and its name, 127.0.0.1) and gets TLS."""
    command = (
        f"MYSQL_PWD={shlex.quote(PASSWORDS['molecule_consumer'])} {TCP_CLIENT} -u molecule_consumer -N -B"
    )
    shown = host.check_output(f"{command} -e \"SHOW SESSION STATUS LIKE 'Ssl_version'\"")
    assert shown.split()[1].startswith("TLSv1.")


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        (f"{CA.rsplit('/', 1)[0]}/ca.key", "root", "root", 0o600),
        (CA, "root", "root", 0o644),
        (f"{CA.rsplit('/', 1)[0]}/server.key", "root", "mysql", 0o640),
    ],
)
def test_tls_file_owner_and_mode(host: Host, path: str, owner: str, group: str, mode: int) -> None:
    """The CA's key is root's alone; MariaDB's group may read the server's key."""
    found = host.file(path)
    assert (found.user, found.group, found.mode) == (owner, group, mode)
