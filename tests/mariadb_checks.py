"""Checks of a deployed store shared by the mysql role's molecule verifier and tests/infra: SQL as root on the
db host, GRANT statements parsed for comparison, and the statements each role may and may not run."""

from __future__ import annotations

import re
import shlex

from testinfra.host import Host  # type: ignore[import-untyped]

GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<target>\S+) TO ")
# Server error codes: a statement refused on a table, and a login refused.
TABLE_ACCESS_DENIED = 1142
ACCESS_DENIED = 1045


def sql(host: Host, statement: str) -> list[str]:
    """Run statement as root through the unix socket on host; return the output rows."""
    return host.check_output(f"mariadb -N -B -e {shlex.quote(statement)}").splitlines()


def parse_grants(statements: list[str]) -> set[tuple[frozenset[str], str]]:
    """(privileges, target) of each GRANT, leaving out the bare USAGE that every account has."""
    parsed = set()
    for statement in statements:
        match = GRANT.match(statement)
        assert match, f"unexpected grant {statement!r}"
        privileges = frozenset(p.strip() for p in match["privileges"].split(","))
        if privileges != {"USAGE"}:
            parsed.add((privileges, match["target"]))
    return parsed


def role_statements(consumer: str, producer: str) -> list[tuple[str, str, bool]]:
    """(user, statement, allowed): what the consumer and producer accounts may and may not do on the tables."""
    return [
        (consumer, "SELECT COUNT(*) FROM predictions", True),
        (
            consumer,
            "INSERT INTO predictions (source_uri, uri_sha256, job, model_name, model_version, status, consumer_host)"
            " VALUES ('s3://b/a.jpg', UNHEX(SHA2('s3://b/a.jpg', 256)), 'check', 'm', 1, 'ok', 'c')"
            " ON DUPLICATE KEY UPDATE attempts = attempts + 1",
            True,
        ),
        (consumer, "SELECT MAX(version) FROM schema_migrations", True),
        (consumer, "SELECT COUNT(*) FROM jobs", False),
        (consumer, "DELETE FROM predictions", False),
        (producer, "SELECT COUNT(*) FROM predictions", True),
        (
            producer,
            "INSERT INTO jobs (job, source, model_name, model_version, started_at)"
            " VALUES ('check', 's', 'm', 1, NOW(6)) ON DUPLICATE KEY UPDATE started_at = NOW(6)",
            True,
        ),
        (producer, "SELECT MAX(version) FROM schema_migrations", True),
        (producer, "UPDATE predictions SET attempts = 1", False),
        (producer, "DELETE FROM schema_migrations", False),
        (producer, "DROP TABLE jobs", False),
    ]


def statement_id(user: str, statement: str) -> str:
    """A short test id for a (user, statement) pair."""
    return f"{user}-{statement.split(' (', maxsplit=1)[0][:40]}"
