"""The result store: consumers write one row per classified image, the producer records jobs and resumes.

Every public method of Store is one transaction, committed before it returns, and safe to run twice
(writes are upserts). So when the connection is lost (server restarted, network cut) the store
reconnects with backoff and runs the whole method again, up to a deadline; any other failure rolls the
transaction back and raises. A Store holds one connection: give each thread its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from types import TracebackType
from typing import Any, TypeVar

import pymysql
from pymysql.cursors import Cursor, DictCursor

from imgsieve.errors import UserError
from imgsieve.store import schema
from imgsieve.store.connection import (
    DbTarget,
    explain,
    is_connection_lost,
    is_transient,
    open_connection,
    parse_db_url,
    resolve_password,
)
from imgsieve.store.rows import UPSERT_PREDICTIONS, PredictionRow, Status, row_params, uri_hash
from imgsieve.store.summary import JobSummary, StoreStatus, read_job_summary, read_status

RECONNECT_DEADLINE_S = 60.0
FIRST_RETRY_DELAY_S = 0.2
MAX_RETRY_DELAY_S = 5.0
IO_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0
# One IN (...) query per S3 listing page of 1000 keys.
EXISTING_CHUNK = 1000

T = TypeVar("T")
log = logging.getLogger(__name__)

# A re-run of a job keeps when it first started and is unfinished again.
UPSERT_JOB = (
    "INSERT INTO jobs (job, source, model_name, model_version, started_at)"
    " VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE source = VALUES(source),"
    " model_name = VALUES(model_name), model_version = VALUES(model_version),"
    " images = NULL, ok = NULL, errors = NULL, finished_at = NULL, seconds = NULL"
)
FINISH_JOB = (
    "UPDATE jobs SET images = %s, seconds = %s, finished_at = UTC_TIMESTAMP(6),"
    " ok = (SELECT COUNT(*) FROM predictions WHERE job = %s AND status = 'ok'),"
    " errors = (SELECT COUNT(*) FROM predictions WHERE job = %s AND status = 'error')"
    " WHERE job = %s"
)
RECENT_ROWS = (
    "SELECT source_uri, job, model_name, model_version, status, predicted_class, score, scores,"
    " error_reason AS error, consumer_host, latency_ms, attempts, created_at, updated_at"
    " FROM predictions WHERE job = %s ORDER BY updated_at DESC, id DESC LIMIT %s"
)


__all__ = ["PredictionRow", "Status", "Store", "StoreUnavailableError"]


class StoreUnavailableError(UserError):
    """The store stayed unreachable past the reconnect deadline."""


class Store:
    """One connection to the result store; open it with Store.connect(url)."""

    def __init__(
        self,
        target: DbTarget,
        password: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        io_timeout: float = IO_TIMEOUT_S,
        reconnect_deadline: float = RECONNECT_DEADLINE_S,
        ssl: dict[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.reconnect_deadline = reconnect_deadline
        self._password = password
        self._connect_timeout = connect_timeout
        self._io_timeout = io_timeout
        self._ssl = ssl
        self._conn: pymysql.connections.Connection[Any] | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        password: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        *,
        io_timeout: float = IO_TIMEOUT_S,
        reconnect_deadline: float = RECONNECT_DEADLINE_S,
        ssl: dict[str, Any] | None = None,
    ) -> Store:
        """Connect to mysql://USER@HOST[:PORT]/DB now; an unreachable or refusing server is a UserError."""
        target = parse_db_url(url)
        store = cls(
            target,
            resolve_password(target, password),
            connect_timeout=connect_timeout,
            io_timeout=io_timeout,
            reconnect_deadline=reconnect_deadline,
            ssl=ssl,
        )
        try:
            store._conn = store._open()
        except pymysql.MySQLError as exc:
            raise explain(exc, target) or UserError(
                f"cannot connect to MySQL at {target.where}: {exc}"
            ) from exc
        return store

    def __enter__(self) -> Store:
        """Use the store in a with-block that closes it."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store at the end of the with-block."""
        self.close()

    def close(self) -> None:
        """Close the connection; an unfinished transaction is rolled back by the server."""
        conn, self._conn = self._conn, None
        if conn is not None and conn.open:
            with contextlib.suppress(pymysql.MySQLError, OSError):
                conn.close()

    def init_schema(self) -> list[str]:
        """Create or migrate the schema; return the labels of the migrations applied (none if up to date)."""
        lock = schema.MIGRATION_LOCK_PREFIX + self.target.database[:48]  # lock names stop at 64 chars

        def migrate(cursor: Cursor) -> list[str]:
            cursor.execute("SELECT GET_LOCK(%s, %s)", (lock, schema.MIGRATION_LOCK_SECONDS))
            if cursor.fetchone() != (1,):
                raise UserError(
                    f"another `imgsieve db init` is migrating {self.target.where} (lock {lock!r} held for "
                    f"{schema.MIGRATION_LOCK_SECONDS} s); wait for it to finish and run this again"
                )
            try:
                cursor.execute(schema.CREATE_MIGRATIONS_TABLE)
                cursor.execute(f"SELECT version FROM {schema.MIGRATIONS_TABLE}")
                applied = {int(version) for (version,) in cursor.fetchall()}
                labels = []
                for migration in schema.pending_migrations(applied):
                    for statement in migration.statements:
                        cursor.execute(statement)
                    cursor.execute(
                        f"INSERT INTO {schema.MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                    cursor.connection.commit()
                    log.info("applied migration %s to %s", migration.label, self.target.where)
                    labels.append(migration.label)
                return labels
            finally:
                with contextlib.suppress(pymysql.MySQLError):
                    cursor.execute("SELECT RELEASE_LOCK(%s)", (lock,))

        return self._run("migrating the schema", migrate)

    def write_predictions(self, rows: Sequence[PredictionRow]) -> None:
        """Upsert rows keyed by (URI, model, version) in one multi-row INSERT and one commit."""
        if not rows:
            return
        # Sorted by key, concurrent batches lock rows in the same order and cannot deadlock each other.
        params = sorted((row_params(r) for r in rows), key=lambda p: (p[1], p[3], p[4]))  # the unique key
        self._run(f"writing {len(params)} predictions", lambda c: c.executemany(UPSERT_PREDICTIONS, params))

    def existing_uris(self, model_name: str, model_version: int, uris: Sequence[str]) -> set[str]:
        """Which of uris already have a row (ok or error) for this model version."""
        by_hash = {uri_hash(uri): uri for uri in uris}
        hashes = list(by_hash)
        found: set[str] = set()
        for start in range(0, len(hashes), EXISTING_CHUNK):
            chunk = hashes[start : start + EXISTING_CHUNK]
            query = (
                "SELECT uri_sha256 FROM predictions WHERE model_name = %s AND model_version = %s"
                f" AND uri_sha256 IN ({', '.join(['%s'] * len(chunk))})"
            )

            def select(cursor: Cursor, query: str = query, chunk: list[bytes] = chunk) -> list[bytes]:
                cursor.execute(query, (model_name, model_version, *chunk))
                return [bytes(digest) for (digest,) in cursor.fetchall()]

            found.update(by_hash[digest] for digest in self._run("looking up existing rows", select))
        return found

    def start_job(self, job: str, source: str, model_name: str, model_version: int) -> None:
        """Record that job started (a re-run keeps its first start time and is unfinished again)."""
        self._run(
            f"starting job {job!r}", lambda c: c.execute(UPSERT_JOB, (job, source, model_name, model_version))
        )

    def finish_job(self, job: str, images: int, seconds: float) -> None:
        """Record that job finished after sending images in seconds, with its ok/error counts as of now."""
        changed = self._run(
            f"finishing job {job!r}", lambda c: c.execute(FINISH_JOB, (images, seconds, job, job, job))
        )
        if not changed:
            raise UserError(
                f"no job {job!r} in {self.target.where}; start_job() must come before finish_job()"
            )

    def job_summary(self, job: str) -> JobSummary:
        """The job's figures, computed with SQL aggregates over its predictions."""
        return self._run(f"summarising job {job!r}", lambda c: read_job_summary(c, job, self.target.where))

    def recent_rows(self, job: str, limit: int = 20) -> list[dict[str, Any]]:
        """The job's last written rows, newest first, as dicts keyed like PredictionRow plus timestamps."""
        rows = self._run(f"reading rows of job {job!r}", lambda c: _fetch_dicts(c, RECENT_ROWS, (job, limit)))
        for row in rows:
            row["scores"] = json.loads(row["scores"]) if row["scores"] is not None else None
            row["created_at"] = row["created_at"].replace(tzinfo=UTC)
            row["updated_at"] = row["updated_at"].replace(tzinfo=UTC)
        return rows

    def status(self) -> StoreStatus:
        """Server version, schema version, pending migrations and row counts."""
        return self._run("reading the schema status", lambda c: read_status(c, self.target.where))

    def _open(self) -> pymysql.connections.Connection[Any]:
        """Open a new connection to the target."""
        return open_connection(
            self.target,
            self._password,
            connect_timeout=self._connect_timeout,
            io_timeout=self._io_timeout,
            ssl=self._ssl,
        )

    def _run(self, what: str, work: Callable[[Cursor], T]) -> T:
        """Run work in one transaction and commit; redo it on a new connection while the failure is transient."""
        deadline = time.monotonic() + self.reconnect_deadline
        delay = FIRST_RETRY_DELAY_S
        while True:
            try:
                if self._conn is None:
                    self._conn = self._open()
                with self._conn.cursor() as cursor:
                    result = work(cursor)
                self._conn.commit()
                return result
            except pymysql.MySQLError as exc:
                self._abandon_transaction(exc)
                if not is_transient(exc):
                    user_error = explain(exc, self.target)
                    if user_error is not None:
                        raise user_error from exc
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreUnavailableError(
                        f"gave up {what} on MySQL at {self.target.where} after {self.reconnect_deadline:.0f} s "
                        f"of retries: {exc}; check that the server is running and reachable"
                    ) from exc
                pause = min(delay, remaining)
                log.warning("%s on %s failed (%s); retrying in %.1f s", what, self.target.where, exc, pause)
                time.sleep(pause)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
            except BaseException:
                # Interrupted mid-statement the protocol state is unknown: drop the connection, and with it
                # the transaction, rather than risk committing half of it later.
                self.close()
                raise

    def _abandon_transaction(self, exc: BaseException) -> None:
        """Roll back after a failure, or drop the connection if it is gone (the server rolls back then)."""
        if self._conn is None:
            return
        if not is_connection_lost(exc):
            try:
                self._conn.rollback()
                return
            except pymysql.MySQLError:
                pass
        self.close()


def _fetch_dicts(cursor: Cursor, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Run query and return its rows as dicts."""
    with cursor.connection.cursor(DictCursor) as dict_cursor:
        dict_cursor.execute(query, params)
        return list(dict_cursor.fetchall())
