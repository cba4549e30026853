"""Unit tests of imgsieve.store.schema: migration bookkeeping and the GRANT statements of each role."""

from __future__ import annotations

import re

import pytest

from imgsieve.errors import UserError
from imgsieve.store.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    ROLE_PRIVILEGES,
    grants_for,
    pending_migrations,
)


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert len(MIGRATIONS) == LATEST_VERSION
    assert MIGRATIONS[0].label == "0001_initial"


def test_pending_migrations_skips_applied_ones_and_keeps_order() -> None:
    assert pending_migrations(set()) == list(MIGRATIONS)
    assert pending_migrations({m.version for m in MIGRATIONS}) == []


def test_every_table_states_engine_charset_and_is_rerunnable() -> None:
    for migration in MIGRATIONS:
        for statement in migration.statements:
            if statement.lstrip().startswith("CREATE TABLE"):
                assert "IF NOT EXISTS" in statement
                assert "ENGINE=InnoDB" in statement
                assert "CHARSET=utf8mb4" in statement


def test_consumer_may_only_write_predictions_and_read_the_schema_version() -> None:
    assert grants_for("consumer", "worker", "10.0.%", "results") == [
        "GRANT SELECT, INSERT, UPDATE ON `results`.`predictions` TO 'worker'@'10.0.%'",
        "GRANT SELECT ON `results`.`schema_migrations` TO 'worker'@'10.0.%'",
    ]


def test_producer_reads_predictions_and_owns_jobs() -> None:
    assert grants_for("producer", "prod", "%", "results") == [
        "GRANT SELECT ON `results`.`predictions` TO 'prod'@'%'",
        "GRANT SELECT, INSERT, UPDATE ON `results`.`jobs` TO 'prod'@'%'",
        "GRANT SELECT ON `results`.`schema_migrations` TO 'prod'@'%'",
    ]


def test_admin_grant_escapes_database_wildcards() -> None:
    (statement,) = grants_for("admin", "owner", "localhost", "img_results")
    assert statement == "GRANT ALL PRIVILEGES ON `img\\_results`.* TO 'owner'@'localhost'"


def test_grants_quote_odd_names() -> None:
    statement, _ = grants_for("consumer", "o'brien", "h", "we`ird")
    assert "`we``ird`.`predictions`" in statement
    assert "'o''brien'@'h'" in statement


def test_no_role_may_delete_or_drop() -> None:
    for role in ROLE_PRIVILEGES:
        if role == "admin":
            continue
        for statement in grants_for(role, "u", "h", "d"):
            assert not re.search(r"DELETE|DROP|ALTER|ALL", statement)


def test_unknown_role_lists_the_valid_ones() -> None:
    with pytest.raises(UserError, match="choose one of admin, consumer, producer"):
        grants_for("reader", "u", "h", "d")
