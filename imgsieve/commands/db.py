"""Create or migrate the result store's schema (`db init`), show its state (`db status`) and a job's
figures (`db job NAME`). The password comes from $IMGSIEVE_DB_PASSWORD or --password-file, never a flag."""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path

from imgsieve.errors import UserError
from imgsieve.store import JobSummary, Store, StoreStatus
from imgsieve.store.connection import PASSWORD_ENV, tls_options

DB_URL_ENV = "IMGSIEVE_DB_URL"
SSL_CA_ENV = "IMGSIEVE_DB_SSL_CA"
DEFAULT_DB_URL = "mysql://imgsieve@127.0.0.1:3306/imgsieve"
LABEL_WIDTH = 11


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    """Register --db and --password-file (shared by every command that reaches the store)."""
    parser.add_argument(
        "--db",
        default=os.environ.get(DB_URL_ENV, DEFAULT_DB_URL),
        metavar="URL",
        help=f"the store as mysql://USER@HOST[:PORT]/DATABASE; ${DB_URL_ENV} sets the default",
    )
    parser.add_argument(
        "--password-file",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"file holding the database password; without it ${PASSWORD_ENV} is used",
    )
    parser.add_argument(
        "--ssl-ca",
        type=Path,
        default=os.environ.get(SSL_CA_ENV) or None,
        metavar="FILE",
        help=f"CA certificate that signed the server's: TLS that verifies the server; ${SSL_CA_ENV} sets the "
        "default; without it TLS is used if the server offers it, unverified",
    )


def read_password_file(path: Path | None) -> str | None:
    """The password stored in path (one line, trailing newline ignored), or None without a path."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise UserError(f"cannot read the password file {path}: {exc.strerror}; check the path") from None


def connect_from_args(args: argparse.Namespace) -> Store:
    """Connect to the store named by --db with the password from --password-file or the environment."""
    return Store.connect(
        args.db, password=read_password_file(args.password_file), ssl=tls_options(args.ssl_ca)
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the db actions and their flags."""
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    for name, help_text in (
        ("init", "create the schema or apply pending migrations, and print what was applied"),
        ("status", "print the schema version and the row count of each table"),
        ("job", "print a job's figures: rows, ok and errors, rows per class, most frequent errors"),
    ):
        action = actions.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        if name == "job":
            action.add_argument("name", metavar="NAME", help="the job's name, as given to `imgsieve produce`")
            action.add_argument(
                "--recent", type=int, default=0, metavar="N", help="also print the job's N most recent rows"
            )
        add_db_arguments(action)


def run(args: argparse.Namespace) -> int:
    """Run the chosen db action and print its result."""
    with connect_from_args(args) as store:
        if args.db_action == "init":
            applied = store.init_schema()
            if applied:
                print(f"applied {', '.join(applied)} to {store.target.where}")
            else:
                print(f"schema of {store.target.where} is up to date")
        elif args.db_action == "status":
            print(format_status(store.status()))
        else:
            print(format_summary(store.job_summary(args.name)))
            for row in store.recent_rows(args.name, args.recent) if args.recent > 0 else []:
                outcome = (
                    f"{row['predicted_class']} {row['score']:.3f}" if row["status"] == "ok" else row["error"]
                )
                print(f"{_when(row['updated_at'])}  {row['status']:5}  {row['source_uri']}  {outcome}")
    return 0


def format_status(status: StoreStatus) -> str:
    """Lines describing the server, the schema version and the table counts."""
    pending = ", ".join(status.pending)
    state = f"pending {pending}: run `imgsieve db init`" if pending else "up to date"
    lines = [
        _line("database", f"{status.where} ({status.server_version})"),
        _line("schema", f"version {status.schema_version} of {status.latest_version}, {state}"),
    ]
    lines += [_line(table, f"{count} rows") for table, count in status.counts.items()]
    return "\n".join(lines)


def format_summary(summary: JobSummary) -> str:
    """Lines describing a job: where it read from, with which model, what came out."""
    lines = [_line("job", summary.job)]
    if summary.source is not None:
        lines.append(_line("source", summary.source))
        lines.append(_line("model", f"{summary.model_name} version {summary.model_version}"))
        lines.append(_line("started", _when(summary.started_at)))
        if summary.finished_at is None:
            lines.append(_line("finished", "not yet"))
        else:
            timing = f"{summary.seconds:.1f} s, {summary.images} images sent"
            lines.append(_line("finished", f"{_when(summary.finished_at)} ({timing})"))
    lines.append(_line("rows", f"{summary.rows}: {summary.ok} ok, {summary.errors} errors"))
    if summary.classes:
        lines.append(
            _line("classes", ", ".join(f"{name} {count}" for name, count in summary.classes.items()))
        )
    for reason, count in summary.error_reasons:
        lines.append(_line("errors", f"{count} x {reason}"))
    return "\n".join(lines)


def _line(label: str, text: str) -> str:
    """One aligned 'label  text' line."""
    return f"{label:<{LABEL_WIDTH}} {text}"


def _when(moment: datetime | None) -> str:
    """A UTC timestamp to the second."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "unknown"
