"""Read-only views of the result store: a job's figures and the schema's state, computed with SQL
aggregates on the server (a job's rows are counted there, never loaded into Python)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pymysql.cursors import Cursor

from imgsieve.errors import UserError
from imgsieve.store import schema

SUMMARY_ERROR_REASONS = 5
DATA_TABLES = ("predictions", "jobs")

JOB_ROW = (
    "SELECT source, model_name, model_version, started_at, finished_at, images, seconds"
    " FROM jobs WHERE job = %s"
)
# Served from the (job, status, predicted_class) index alone.
JOB_COUNTS = (
    "SELECT status, predicted_class, COUNT(*) FROM predictions WHERE job = %s"
    " GROUP BY status, predicted_class"
)
JOB_ERROR_REASONS = (
    "SELECT error_reason, COUNT(*) AS n FROM predictions WHERE job = %s AND status = 'error'"
    " GROUP BY error_reason ORDER BY n DESC, MIN(id) LIMIT %s"
)


@dataclass
class JobSummary:
    """What a job did: its row counts, ok rows per class, and its most frequent error reasons."""

    job: str
    source: str | None  # None when rows exist but the job was never started with start_job
    model_name: str | None
    model_version: int | None
    rows: int
    ok: int
    errors: int
    classes: dict[str, int]  # ok rows per predicted class, most frequent first
    error_reasons: list[tuple[str, int]]  # (reason, rows), most frequent first, at most 5
    started_at: datetime | None
    finished_at: datetime | None
    images: int | None  # what the producer sent, as recorded by finish_job
    seconds: float | None


@dataclass
class StoreStatus:
    """The server, the schema version against the newest this code knows, and each table's row count."""

    where: str
    server_version: str
    schema_version: int  # 0: no schema yet
    latest_version: int
    pending: list[str]
    counts: dict[str, int]  # rows of predictions and jobs, if they exist


def utc(moment: datetime | None) -> datetime | None:
    """A DATETIME read from the store (always UTC) as an aware datetime."""
    return moment.replace(tzinfo=UTC) if moment is not None else None


def read_job_summary(cursor: Cursor, job: str, where: str) -> JobSummary:
    """Build job's summary from the jobs row and aggregates over its predictions."""
    cursor.execute(JOB_ROW, (job,))
    job_row = cursor.fetchone()
    cursor.execute(JOB_COUNTS, (job,))
    ok = errors = 0
    classes: dict[str, int] = {}
    for status, predicted_class, count in cursor.fetchall():
        if status == "ok":
            ok += int(count)
            classes[predicted_class] = classes.get(predicted_class, 0) + int(count)
        else:
            errors += int(count)
    if job_row is None and ok + errors == 0:
        raise UserError(f"no job {job!r} in {where}: it has no jobs row and no predictions; check the name")
    cursor.execute(JOB_ERROR_REASONS, (job, SUMMARY_ERROR_REASONS))
    reasons = [(str(reason), int(count)) for reason, count in cursor.fetchall()]
    source, model_name, model_version, started, finished, images, seconds = job_row or (None,) * 7
    return JobSummary(
        job=job,
        source=source,
        model_name=model_name,
        model_version=None if model_version is None else int(model_version),
        rows=ok + errors,
        ok=ok,
        errors=errors,
        classes=dict(sorted(classes.items(), key=lambda item: (-item[1], item[0]))),
        error_reasons=reasons,
        started_at=utc(started),
        finished_at=utc(finished),
        images=None if images is None else int(images),
        seconds=seconds,
    )


def read_status(cursor: Cursor, where: str) -> StoreStatus:
    """Read the server version, the applied migrations and the row count of each table that exists."""
    cursor.execute("SELECT VERSION()")
    (server_version,) = cursor.fetchone() or ("unknown",)
    cursor.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
        f" AND table_name IN ({', '.join(['%s'] * (len(DATA_TABLES) + 1))})",
        (schema.MIGRATIONS_TABLE, *DATA_TABLES),
    )
    existing = {name for (name,) in cursor.fetchall()}
    counts: dict[str, int] = {}
    for table in DATA_TABLES:
        if table in existing:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            counts[table] = int((cursor.fetchone() or (0,))[0])
    applied: set[int] = set()
    if schema.MIGRATIONS_TABLE in existing:
        cursor.execute(f"SELECT version FROM {schema.MIGRATIONS_TABLE}")
        applied = {int(version) for (version,) in cursor.fetchall()}
    return StoreStatus(
        where=where,
        server_version=str(server_version),
        schema_version=max(applied, default=0),
        latest_version=schema.LATEST_VERSION,
        pending=[m.label for m in schema.pending_migrations(applied)],
        counts=counts,
    )
