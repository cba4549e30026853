"""Reaching the result store: parse a mysql:// URL, find the password, open a PyMySQL connection, and
turn the server's error codes into either "retry later" or one readable UserError.

Passwords never travel on a command line: they come from the caller, the URL, or IMGSIEVE_DB_PASSWORD.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from imgsieve.errors import UserError

PASSWORD_ENV = "IMGSIEVE_DB_PASSWORD"
URL_SCHEMES = ("mysql", "mariadb")
DEFAULT_PORT = 3306
URL_FORM = "mysql://USER@HOST[:PORT]/DATABASE"
# Every session writes and reads DATETIME(6) in UTC, whatever the server's own time zone is.
INIT_COMMAND = "SET time_zone = '+00:00'"

# Client and server codes that mean "this connection is gone or the server is not there right now".
LOST_CONNECTION_CODES = frozenset(
    {
        1053,  # ER_SERVER_SHUTDOWN: the server is shutting down
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        2003,  # CR_CONN_HOST_ERROR: nothing listens on host:port
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST: lost during a query
        2014,  # CR_COMMANDS_OUT_OF_SYNC: the protocol state is broken, start over
        2055,  # CR_SERVER_LOST_EXTENDED
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8): idle connection closed by the server
    }
)
# The server rolled back (part of) the transaction; running it again is how these are meant to be handled.
TRANSIENT_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock


@dataclass(frozen=True)
class DbTarget:
    """Where the store lives, parsed from its URL; `where` names it in messages without the password."""

    user: str
    host: str
    port: int
    database: str
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """host:port/database, as messages name it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.database}"


def parse_db_url(url: str) -> DbTarget:
    """Parse mysql://USER[:PASSWORD]@HOST[:PORT]/DB; a bad URL is a UserError that shows the expected form."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise UserError(f"bad database URL {_redact(url)!r}: {exc}; expected {URL_FORM}") from None
    database = unquote(parts.path.lstrip("/"))
    problem = None
    if parts.scheme not in URL_SCHEMES:
        problem = f"scheme must be one of {', '.join(URL_SCHEMES)}, not {parts.scheme!r}"
    elif not parts.username:
        problem = "no user name"
    elif not parts.hostname:
        problem = "no host"
    elif not database or "/" in database:
        problem = "no database name" if not database else f"bad database name {database!r}"
    elif parts.query or parts.fragment:
        problem = "unexpected ?query or #fragment"
    if problem:
        raise UserError(f"bad database URL {_redact(url)!r}: {problem}; expected {URL_FORM}")
    password = unquote(parts.password) if parts.password is not None else None
    return DbTarget(unquote(parts.username or ""), parts.hostname or "", port, database, password)


def resolve_password(target: DbTarget, password: str | None) -> str:
    """The password to use: the caller's, else the URL's, else $IMGSIEVE_DB_PASSWORD, else none."""
    for candidate in (password, target.password, os.environ.get(PASSWORD_ENV)):
        if candidate is not None:
            return candidate
    return ""


def tls_options(ca_file: Path | None) -> dict[str, Any] | None:
    """PyMySQL's ssl argument for a CA file: TLS that verifies the server's certificate and its name.

    Without a CA file PyMySQL still uses TLS when the server offers it, but cannot tell the server from an
    impostor; with one, a certificate the CA did not sign, or one that does not name the URL's host, fails.
    """
    if ca_file is None:
        return None
    if not ca_file.is_file() or not os.access(ca_file, os.R_OK):
        raise UserError(
            f"cannot read the database's CA certificate {ca_file}: no such readable file; check [db] ssl_ca "
            f"or --ssl-ca"
        )
    return {"ca": str(ca_file)}


def open_connection(
    target: DbTarget,
    password: str,
    *,
    connect_timeout: float,
    io_timeout: float,
    ssl: dict[str, Any] | None = None,
) -> pymysql.connections.Connection[Any]:
    """Open one connection: utf8mb4, UTC session, explicit transactions, bounded waits on the socket."""
    return pymysql.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        password=password,
        database=target.database,
        charset="utf8mb4",
        autocommit=False,
        init_command=INIT_COMMAND,
        connect_timeout=connect_timeout,
        read_timeout=io_timeout,
        write_timeout=io_timeout,
        ssl=ssl,
    )


def error_code(exc: BaseException) -> int | None:
    """The MySQL error number carried by a PyMySQL error, if any."""
    args = exc.args
    return args[0] if args and isinstance(args[0], int) else None


def is_connection_lost(exc: BaseException) -> bool:
    """Tell whether exc means the connection is gone, so the work should be redone on a new one."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True  # PyMySQL's word for "this connection object is already closed"
    return isinstance(exc, pymysql.err.OperationalError) and error_code(exc) in LOST_CONNECTION_CODES


def is_transient(exc: BaseException) -> bool:
    """Tell whether exc is worth retrying: a lost connection, a deadlock or a lock wait timeout."""
    return is_connection_lost(exc) or (
        isinstance(exc, pymysql.err.MySQLError) and error_code(exc) in TRANSIENT_CODES
    )


def explain(exc: BaseException, target: DbTarget) -> UserError | None:
    """A readable UserError for errors a user can fix (reachability, credentials, schema, grants), else None."""
    code = error_code(exc)
    reason = _reason(exc)
    where = target.where
    if code == 2003 and "CERTIFICATE_VERIFY_FAILED" in reason:
        return UserError(
            f"MySQL at {where} presented a TLS certificate that does not verify: {reason}; check that [db] "
            f"ssl_ca (--ssl-ca) is the CA that signed the server's certificate and that the certificate names "
            f"the URL's host"
        )
    if code in (2003, 2005) or (code in LOST_CONNECTION_CODES and code != 2014):
        return UserError(
            f"cannot reach MySQL at {where}: {reason}; check that the server is running, "
            f"that host and port in the URL are right and that a firewall lets you through"
        )
    if code == 1045:
        return UserError(
            f"MySQL at {where} refused user {target.user!r}: access denied; check the password "
            f"(${PASSWORD_ENV} or --password-file) and that the user exists for your client host"
        )
    if code == 1130:
        return UserError(
            f"MySQL at {where} does not let user {target.user!r} connect from this host; "
            f"check the host part of the account (CREATE USER '{target.user}'@'HOST')"
        )
    if code == 1044:
        return UserError(
            f"MySQL at {where}: user {target.user!r} may not use database {target.database!r}; "
            f"check the user's grants (imgsieve.store.schema.grants_for)"
        )
    if code == 1049:
        return UserError(
            f"MySQL at {where}: database {target.database!r} does not exist; create it "
            f"(CREATE DATABASE `{target.database}` CHARACTER SET utf8mb4) or fix the name in the URL"
        )
    if code == 1146:
        return UserError(
            f"MySQL at {where}: {reason}; create the schema first with `imgsieve db init --db URL`"
        )
    if code in (1142, 1143):
        return UserError(
            f"MySQL at {where}: {reason}; user {target.user!r} lacks a grant for this "
            f"(see imgsieve.store.schema.grants_for)"
        )
    return None


def _reason(exc: BaseException) -> str:
    """The server's or client's message without the error number."""
    args = exc.args
    return str(args[1]) if len(args) > 1 else str(exc) or type(exc).__name__


def _redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostpart}"
