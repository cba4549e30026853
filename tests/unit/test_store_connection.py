"""Unit tests of imgsieve.store.connection: URL parsing, where the password comes from, error triage."""

from __future__ import annotations

import pymysql
import pytest

from imgsieve.errors import UserError
from imgsieve.store.connection import (
    PASSWORD_ENV,
    DbTarget,
    explain,
    is_connection_lost,
    is_transient,
    parse_db_url,
    resolve_password,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://imgsieve@db.internal/results", DbTarget("imgsieve", "db.internal", 3306, "results")),
        ("mysql://u@127.0.0.1:33060/r", DbTarget("u", "127.0.0.1", 33060, "r")),
        ("mariadb://u@[::1]:3307/r", DbTarget("u", "::1", 3307, "r")),
        ("mysql://we%40rd@h/d%2Db", DbTarget("we@rd", "h", 3306, "d-b")),
    ],
)
def test_parse_db_url_reads_user_host_port_database(url: str, expected: DbTarget) -> None:
    assert parse_db_url(url) == expected


def test_parse_db_url_accepts_a_password_and_keeps_it_out_of_repr() -> None:
    target = parse_db_url("mysql://u:s%3Acret@h:1/d")
    assert target.password == "s:cret"
    assert "s:cret" not in repr(target)
    assert target.where == "h:1/d"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgres://u@h/d", "scheme must be one of mysql, mariadb"),
        ("mysql://h/d", "no user name"),
        ("mysql://u@h", "no database name"),
        ("mysql://u@h/", "no database name"),
        ("mysql://u@h/d/e", "bad database name"),
        ("mysql://u@h/d?ssl=1", "unexpected ?query"),
        ("mysql://u@h:notaport/d", "Port could not be cast"),
    ],
)
def test_parse_db_url_rejects_bad_urls_with_the_expected_form(url: str, problem: str) -> None:
    with pytest.raises(UserError, match="expected mysql://USER@HOST") as caught:
        parse_db_url(url)
    assert problem in str(caught.value)


def test_bad_url_messages_hide_the_password() -> None:
    with pytest.raises(UserError) as caught:
        parse_db_url("mysql://u:hunter2@h/d/e")
    assert "hunter2" not in str(caught.value)
    assert "u:***@h" in str(caught.value)


def test_password_comes_from_argument_then_url_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    with_url_password = parse_db_url("mysql://u:from-url@h/d")
    without = parse_db_url("mysql://u@h/d")
    assert resolve_password(with_url_password, "from-arg") == "from-arg"
    assert resolve_password(with_url_password, None) == "from-url"
    assert resolve_password(without, None) == "from-env"
    monkeypatch.delenv(PASSWORD_ENV)
    assert resolve_password(without, None) == ""
    assert resolve_password(without, "") == ""


@pytest.mark.parametrize(
    ("exc", "lost", "transient"),
    [
        (pymysql.err.OperationalError(2013, "Lost connection to server during query"), True, True),
        (pymysql.err.OperationalError(2006, "MySQL server has gone away"), True, True),
        (pymysql.err.OperationalError(2003, "Can't connect"), True, True),
        (pymysql.err.InterfaceError(0, ""), True, True),
        (pymysql.err.OperationalError(1213, "Deadlock found"), False, True),
        (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), False, True),
        (pymysql.err.OperationalError(1045, "Access denied"), False, False),
        (pymysql.err.ProgrammingError(1146, "Table 'd.predictions' doesn't exist"), False, False),
        (pymysql.err.DataError(1264, "Out of range value"), False, False),
    ],
)
def test_errors_are_sorted_into_lost_transient_and_final(
    exc: pymysql.MySQLError, lost: bool, transient: bool
) -> None:
    assert is_connection_lost(exc) is lost
    assert is_transient(exc) is transient


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (pymysql.err.OperationalError(2003, "Can't connect"), "cannot reach MySQL at h:3306/d"),
        (pymysql.err.OperationalError(1045, "Access denied"), "refused user 'u'"),
        (pymysql.err.OperationalError(1049, "Unknown database 'd'"), "database 'd' does not exist"),
        (pymysql.err.OperationalError(1044, "Access denied to database"), "may not use database 'd'"),
        (pymysql.err.ProgrammingError(1146, "Table 'd.jobs' doesn't exist"), "imgsieve db init"),
        (pymysql.err.OperationalError(1142, "SELECT command denied"), "lacks a grant"),
    ],
)
def test_explain_names_the_server_and_what_to_check(exc: pymysql.MySQLError, words: str) -> None:
    error = explain(exc, DbTarget("u", "h", 3306, "d"))
    assert error is not None
    assert words in str(error)
    assert "\n" not in str(error)


def test_explain_leaves_programming_errors_alone() -> None:
    assert explain(pymysql.err.DataError(1264, "Out of range"), DbTarget("u", "h", 3306, "d")) is None
