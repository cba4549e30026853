"""The result store's schema: numbered migrations (DDL) and the GRANT statements of each role.

Every statement runs on MariaDB 10.11 and MySQL 8 alike. Tables state their character set and
collation themselves (utf8mb4, binary comparison: job names, class names and URIs match exactly), so a
server whose default is latin1 still gets the right tables. Migrations are written to be safe to run
again (IF NOT EXISTS), because MySQL commits DDL implicitly: a migration cut short is simply redone.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgsieve.errors import UserError

TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
MIGRATIONS_TABLE = "schema_migrations"
# GET_LOCK names are server-wide, so the database name is appended to this prefix.
MIGRATION_LOCK_PREFIX = "imgsieve.schema."
MIGRATION_LOCK_SECONDS = 60

# Sizes the store checks before writing, so a bad row is a readable error and not a truncation.
MAX_URI_CHARS = 4096
MAX_NAME_CHARS = 128
MAX_JOB_CHARS = 255
MAX_ERROR_CHARS = 1024

CREATE_MIGRATIONS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version INT UNSIGNED NOT NULL,
    name VARCHAR(128) NOT NULL,
    applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (version)
) {TABLE_OPTIONS}"""

# One row per (image, model version). The URI can be longer than any InnoDB key allows, so the
# unique key uses its SHA-256, computed by the client; the full URI is kept beside it.
CREATE_PREDICTIONS = f"""
CREATE TABLE IF NOT EXISTS predictions (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    source_uri VARCHAR({MAX_URI_CHARS}) NOT NULL,
    uri_sha256 BINARY(32) NOT NULL,
    job VARCHAR({MAX_JOB_CHARS}) NOT NULL,
    model_name VARCHAR({MAX_NAME_CHARS}) NOT NULL,
    model_version BIGINT NOT NULL,
    status ENUM('ok', 'error') NOT NULL,
    predicted_class VARCHAR({MAX_NAME_CHARS}) NULL,
    score DOUBLE NULL,
    scores JSON NULL,
    error_reason VARCHAR({MAX_ERROR_CHARS}) NULL,
    consumer_host VARCHAR(255) NOT NULL,
    latency_ms DOUBLE NULL,
    attempts INT UNSIGNED NOT NULL DEFAULT 1,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_predictions_item (uri_sha256, model_name, model_version),
    KEY ix_predictions_job (job, status, predicted_class),
    KEY ix_predictions_job_updated (job, updated_at),
    KEY ix_predictions_model_status (model_name, model_version, status)
) {TABLE_OPTIONS}"""

CREATE_JOBS = f"""
CREATE TABLE IF NOT EXISTS jobs (
    job VARCHAR({MAX_JOB_CHARS}) NOT NULL,
    source VARCHAR({MAX_URI_CHARS}) NOT NULL,
    model_name VARCHAR({MAX_NAME_CHARS}) NOT NULL,
    model_version BIGINT NOT NULL,
    images BIGINT UNSIGNED NULL,
    ok BIGINT UNSIGNED NULL,
    errors BIGINT UNSIGNED NULL,
    started_at DATETIME(6) NOT NULL,
    finished_at DATETIME(6) NULL,
    seconds DOUBLE NULL,
    PRIMARY KEY (job)
) {TABLE_OPTIONS}"""


@dataclass(frozen=True)
class Migration:
    """One step of the schema: applied once, in version order, recorded in schema_migrations."""

    version: int
    name: str
    statements: tuple[str, ...]

    @property
    def label(self) -> str:
        """The name reported to users, e.g. 0001_initial."""
        return f"{self.version:04d}_{self.name}"


# Append only: a released migration is never edited, a change is a new version.
MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial", (CREATE_PREDICTIONS, CREATE_JOBS)),)
LATEST_VERSION = MIGRATIONS[-1].version

# What each role may do, table by table. The producer reads predictions (resume, job figures) and owns
# jobs; consumers write predictions (INSERT ... ON DUPLICATE KEY UPDATE needs SELECT too) and nothing else.
# Both may read schema_migrations, so `imgsieve db status` under their accounts reports the real schema version.
# admin runs `imgsieve db init`.
ROLE_PRIVILEGES: dict[str, tuple[tuple[str, str], ...]] = {
    "consumer": (("predictions", "SELECT, INSERT, UPDATE"), (MIGRATIONS_TABLE, "SELECT")),
    "producer": (("predictions", "SELECT"), ("jobs", "SELECT, INSERT, UPDATE"), (MIGRATIONS_TABLE, "SELECT")),
    "admin": (("*", "ALL PRIVILEGES"),),
}


def pending_migrations(applied: set[int]) -> list[Migration]:
    """The migrations not yet in `applied`, in the order they must run."""
    return [m for m in MIGRATIONS if m.version not in applied]


def quote_identifier(name: str) -> str:
    """Quote a database or table name for SQL with backticks."""
    if not name or "\x00" in name:
        raise UserError(f"bad SQL identifier {name!r}: it must be non-empty and contain no NUL")
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str) -> str:
    """Quote a user or host name as an SQL string literal."""
    if "\x00" in value:
        raise UserError(f"bad account name {value!r}: it must contain no NUL")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def grants_for(role: str, user: str, host: str, database: str) -> list[str]:
    """GRANT statements giving user@host the privileges of role on database (tables must exist first)."""
    if role not in ROLE_PRIVILEGES:
        raise UserError(f"unknown database role {role!r}; choose one of {', '.join(sorted(ROLE_PRIVILEGES))}")
    if not user:
        raise UserError("a GRANT needs a user name")
    account = f"{quote_string(user)}@{quote_string(host)}"
    db = quote_identifier(database)
    statements = []
    for table, privileges in ROLE_PRIVILEGES[role]:
        if table == "*":
            # At database level `_` and `%` are wildcards: escape them so only this database matches.
            target = quote_identifier(database.replace("_", "\\_").replace("%", "\\%")) + ".*"
        else:
            target = f"{db}.{quote_identifier(table)}"
        statements.append(f"GRANT {privileges} ON {target} TO {account}")
    return statements
