"""The result store against a real private MariaDB: schema, upserts, resume look-ups, jobs, reconnects,
role grants and the `imgsieve db` commands."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from imgsieve.cli import main
from imgsieve.errors import UserError
from imgsieve.store import PredictionRow, Store, StoreUnavailableError, grants_for
from imgsieve.store.connection import PASSWORD_ENV, parse_db_url
from imgsieve.store.rows import uri_hash
from imgsieve.store.schema import LATEST_VERSION
from tests.conftest import free_port
from tests.integration.mariadb import MariaDB

pytestmark = pytest.mark.integration

THROUGHPUT_BATCHES = 200
THROUGHPUT_FLOOR_ROWS_S = 1000  # measured about 5,600 rows/s on the 2-core CI machine


def row(uri: str, status: str = "ok", label: str = "cat", **changes: Any) -> PredictionRow:
    """A prediction for uri by resnet50 version 1 in job `nightly`."""
    ok = status == "ok"
    fields: dict[str, Any] = {
        "source_uri": uri,
        "job": "nightly",
        "model_name": "resnet50",
        "model_version": 1,
        "status": status,
        "predicted_class": label if ok else None,
        "score": 0.8 if ok else None,
        "scores": {label: 0.8, "other": 0.2} if ok else None,
        "error": None if ok else "cannot read image: not a JPEG",
        "consumer_host": "worker-1",
        "latency_ms": 40.0 if ok else None,
    }
    fields.update(changes)
    return PredictionRow(**fields)


def query(mariadb: MariaDB, database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run sql as the admin and return all rows."""
    conn = mariadb.admin_connect(database)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    finally:
        conn.close()


def counter(mariadb: MariaDB, name: str) -> int:
    """A server-wide status counter such as Com_commit."""
    ((_, value),) = query(mariadb, "mysql", "SHOW GLOBAL STATUS LIKE %s", name)
    return int(value)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A connected store with its schema created."""
    with Store.connect(db_url) as connected:
        connected.init_schema()
        yield connected


def test_init_schema_is_idempotent_and_redoes_a_cut_short_migration(db_url: str, mariadb: MariaDB) -> None:
    database = parse_db_url(db_url).database
    with Store.connect(db_url) as store:
        assert store.init_schema() == ["0001_initial"]
        assert store.init_schema() == []
        store.write_predictions([row("s3://b/1.jpg")])
        query(mariadb, database, "DELETE FROM schema_migrations")  # as if init died before recording it
        assert store.init_schema() == ["0001_initial"]
        status = store.status()
    assert (status.schema_version, status.pending) == (1, [])
    assert status.counts == {"predictions": 1, "jobs": 0}
    collations = query(
        mariadb,
        database,
        "SELECT table_collation FROM information_schema.tables WHERE table_schema = %s",
        database,
    )
    assert {c for (c,) in collations} == {"utf8mb4_bin"}  # though the database's default is latin1


def test_redelivered_items_stay_one_row(store: Store, mariadb: MariaDB) -> None:
    item = row("s3://b/cat.jpg")
    store.write_predictions([item])
    store.write_predictions([item])
    store.write_predictions([item, item])
    store.write_predictions([row("s3://b/cat.jpg", model_version=2)])  # another model version: its own row
    assert query(mariadb, store.target.database, "SELECT model_version FROM predictions ORDER BY 1") == [
        (1,),
        (2,),
    ]


def test_ok_row_is_never_overwritten_by_an_error(store: Store) -> None:
    store.write_predictions([row("s3://b/a.jpg", label="dog")])
    store.write_predictions([row("s3://b/a.jpg", status="error", consumer_host="worker-2", attempts=3)])
    (stored,) = store.recent_rows("nightly", 10)
    assert (stored["status"], stored["predicted_class"], stored["error"]) == ("ok", "dog", None)
    assert (stored["consumer_host"], stored["attempts"], stored["scores"]) == (
        "worker-1",
        1,
        {"dog": 0.8, "other": 0.2},
    )


def test_error_row_is_overwritten_by_ok(store: Store) -> None:
    store.write_predictions([row("s3://b/a.jpg", status="error")])
    store.write_predictions([row("s3://b/a.jpg", label="bird", consumer_host="worker-2", attempts=2)])
    (stored,) = store.recent_rows("nightly", 10)
    assert (stored["status"], stored["predicted_class"], stored["error"]) == ("ok", "bird", None)
    assert (stored["consumer_host"], stored["attempts"], stored["score"]) == ("worker-2", 2, 0.8)
    assert stored["updated_at"] > stored["created_at"]


def test_a_batch_is_one_insert_statement_and_one_commit(store: Store, mariadb: MariaDB) -> None:
    batch = [row(f"s3://b/{i}.jpg") for i in range(32)]
    inserts, commits = counter(mariadb, "Com_insert"), counter(mariadb, "Com_commit")
    store.write_predictions(batch)
    assert counter(mariadb, "Com_insert") - inserts == 1
    assert counter(mariadb, "Com_commit") - commits == 1
    assert query(mariadb, store.target.database, "SELECT COUNT(*) FROM predictions") == [(32,)]


def test_a_batch_failing_midway_is_rolled_back(store: Store, mariadb: MariaDB) -> None:
    # Long URIs push PyMySQL past its 1 MB statement size, so it sends two INSERTs in one transaction;
    # the bad row sorts last (highest key), so the first INSERT has succeeded when the second fails.
    batch = [row("s3://b/" + f"{i:04d}" * 1000) for i in range(300)]
    bad_uri = next(u for u in (f"s3://b/bad-{n}" for n in range(100_000)) if uri_hash(u)[0] == 0xFF)
    batch.append(row(bad_uri, model_version=2**70))
    inserts = counter(mariadb, "Com_insert")
    with pytest.raises(pymysql.err.DataError, match="Out of range"):
        store.write_predictions(batch)
    assert counter(mariadb, "Com_insert") - inserts == 2
    assert query(mariadb, store.target.database, "SELECT COUNT(*) FROM predictions") == [(0,)]
    store.write_predictions(batch[:3])  # the same store goes on working
    assert query(mariadb, store.target.database, "SELECT COUNT(*) FROM predictions") == [(3,)]


def test_existing_uris_finds_rows_of_this_model_version_among_2500(store: Store, mariadb: MariaDB) -> None:
    uris = [f"s3://bucket/page/{i:05d}.jpg" for i in range(2500)]
    ok = [row(u) for u in uris[:1500]]
    failed = [row(u, status="error") for u in uris[1500:2000]]
    other_version = [row(u, model_version=2) for u in uris[2000:]]
    for start in range(0, 2500, 500):
        store.write_predictions((ok + failed + other_version)[start : start + 500])
    selects = counter(mariadb, "Com_select")
    assert store.existing_uris("resnet50", 1, uris) == set(uris[:2000])
    assert counter(mariadb, "Com_select") - selects == 3  # one query per 1000 URIs
    assert store.existing_uris("resnet50", 2, uris) == set(uris[2000:])
    assert store.existing_uris("resnet50", 1, []) == set()


def test_long_unicode_uris_are_stored_whole_and_kept_apart(store: Store) -> None:
    prefix = "s3://bucket/" + "fotos/été/" * 300  # 3,012 characters, 3,612 bytes
    uris = [prefix + "🐱.jpg", prefix + "🐶.jpg", "s3://bucket/" + "k" * 4000]
    store.write_predictions([row(u) for u in uris])
    assert store.existing_uris("resnet50", 1, [*uris, prefix + "🐭.jpg"]) == set(uris)
    assert {r["source_uri"] for r in store.recent_rows("nightly", 10)} == set(uris)


def test_job_summary_counts_rows_classes_and_errors(store: Store, mariadb: MariaDB) -> None:
    store.start_job("nightly", "s3://bucket/page/", "resnet50", 1)
    rows = [row(f"s3://b/c{i}.jpg") for i in range(5)] + [
        row(f"s3://b/d{i}.jpg", label="dog") for i in range(3)
    ]
    rows += [row(f"s3://b/e{i}.jpg", status="error") for i in range(2)]
    rows += [row("s3://b/t.jpg", status="error", error="model server timed out")]
    rows += [row(f"s3://b/x{i}.jpg", job="other") for i in range(4)]
    store.write_predictions(rows)
    store.finish_job("nightly", images=12, seconds=2.5)
    summary = store.job_summary("nightly")
    assert (summary.source, summary.model_name, summary.model_version) == ("s3://bucket/page/", "resnet50", 1)
    assert (summary.rows, summary.ok, summary.errors, summary.images, summary.seconds) == (11, 8, 3, 12, 2.5)
    assert list(summary.classes.items()) == [("cat", 5), ("dog", 3)]
    assert summary.error_reasons == [("cannot read image: not a JPEG", 2), ("model server timed out", 1)]
    assert summary.started_at is not None and summary.finished_at is not None
    assert summary.started_at <= summary.finished_at
    assert query(mariadb, store.target.database, "SELECT ok, errors FROM jobs WHERE job = 'nightly'") == [
        (8, 3)
    ]

    store.start_job("nightly", "s3://bucket/page/", "resnet50", 1)  # a re-run
    rerun = store.job_summary("nightly")
    assert (rerun.started_at, rerun.finished_at, rerun.images) == (summary.started_at, None, None)
    with pytest.raises(UserError, match="no job 'missing'"):
        store.job_summary("missing")
    with pytest.raises(UserError, match="start_job"):
        store.finish_job("missing", images=0, seconds=0.0)


def test_store_reconnects_after_the_server_restarts(
    store: Store, mariadb: MariaDB, caplog: pytest.LogCaptureFixture
) -> None:
    store.write_predictions([row("s3://b/before.jpg")])
    mariadb.restart()
    with caplog.at_level(logging.WARNING, logger="imgsieve.store.db"):
        store.write_predictions([row("s3://b/after.jpg")])
    assert "retrying" in caplog.text
    assert store.existing_uris("resnet50", 1, ["s3://b/before.jpg", "s3://b/after.jpg"]) == {
        "s3://b/before.jpg",
        "s3://b/after.jpg",
    }


def test_store_waits_for_a_server_that_comes_back(store: Store, mariadb: MariaDB) -> None:
    mariadb.stop()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            store.write_predictions([row("s3://b/late.jpg")])
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(1.5)
    assert writer.is_alive()  # still retrying while the server is down
    mariadb.start()
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert failures == []
    assert store.existing_uris("resnet50", 1, ["s3://b/late.jpg"]) == {"s3://b/late.jpg"}


def test_store_gives_up_after_its_deadline(db_url: str, mariadb: MariaDB) -> None:
    with Store.connect(db_url, reconnect_deadline=1.0) as store:
        store.init_schema()
        mariadb.stop()
        try:
            began = time.monotonic()
            with pytest.raises(StoreUnavailableError, match=f"on MySQL at {store.target.where} after 1 s"):
                store.write_predictions([row("s3://b/never.jpg")])
            assert time.monotonic() - began < 5
        finally:
            mariadb.start()


def test_role_grants_restrict_consumers_and_producers(store: Store, mariadb: MariaDB) -> None:
    database = store.target.database
    store.write_predictions([row("s3://b/seen.jpg")])
    conn = mariadb.admin_connect()
    try:
        with conn.cursor() as cursor:
            for role in ("consumer", "producer"):
                cursor.execute(f"CREATE USER '{role}_{database}'@'127.0.0.1' IDENTIFIED BY 'pw-{role}'")
                for statement in grants_for(role, f"{role}_{database}", "127.0.0.1", database):
                    cursor.execute(statement)
        consumer_url = mariadb.url(database, user=f"consumer_{database}")
        producer_url = mariadb.url(database, user=f"producer_{database}")
        with Store.connect(consumer_url, password="pw-consumer") as consumer:
            consumer.write_predictions([row("s3://b/seen.jpg", label="dog"), row("s3://b/new.jpg")])
            with pytest.raises(UserError, match="lacks a grant"):
                consumer.start_job("nightly", "s3://b/", "resnet50", 1)
        raw = pymysql.connect(
            host=mariadb.host,
            port=mariadb.port,
            user=f"consumer_{database}",
            password="pw-consumer",
            database=database,
        )
        with raw, raw.cursor() as cursor:
            for forbidden in (
                "SELECT COUNT(*) FROM jobs",
                "DELETE FROM predictions",
                "DROP TABLE predictions",
            ):
                with pytest.raises(pymysql.err.OperationalError, match="command denied"):
                    cursor.execute(forbidden)
        with Store.connect(producer_url, password="pw-producer") as producer:
            producer.start_job("nightly", "s3://b/", "resnet50", 1)
            assert producer.existing_uris("resnet50", 1, ["s3://b/seen.jpg", "s3://b/x.jpg"]) == {
                "s3://b/seen.jpg"
            }
            producer.finish_job("nightly", images=2, seconds=1.0)
            assert producer.job_summary("nightly").classes == {"cat": 1, "dog": 1}
            with pytest.raises(UserError, match="lacks a grant"):
                producer.write_predictions([row("s3://b/forged.jpg")])
        for url, password in ((consumer_url, "pw-consumer"), (producer_url, "pw-producer")):
            with Store.connect(url, password=password) as limited:
                assert limited.status().schema_version == LATEST_VERSION
    finally:
        with conn.cursor() as cursor:
            for role in ("consumer", "producer"):
                cursor.execute(f"DROP USER IF EXISTS '{role}_{database}'@'127.0.0.1'")
        conn.close()


def test_db_commands_init_status_and_job(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    where = parse_db_url(db_url).where
    assert main(["db", "status", "--db", db_url]) == 0
    assert "version 0 of 1, pending 0001_initial: run `imgsieve db init`" in capsys.readouterr().out
    assert main(["db", "init", "--db", db_url]) == 0
    assert capsys.readouterr().out == f"applied 0001_initial to {where}\n"
    assert main(["db", "init", "--db", db_url]) == 0
    assert capsys.readouterr().out == f"schema of {where} is up to date\n"
    with Store.connect(db_url) as store:
        store.start_job("nightly", "s3://bucket/page/", "resnet50", 1)
        store.write_predictions([row("s3://b/1.jpg"), row("s3://b/2.jpg", status="error")])
    assert main(["db", "status", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "version 1 of 1, up to date" in out
    assert "predictions 2 rows" in out
    assert "jobs        1 rows" in out
    assert main(["db", "job", "nightly", "--db", db_url, "--recent", "2"]) == 0
    out = capsys.readouterr().out
    assert "rows        2: 1 ok, 1 errors" in out
    assert "classes     cat 1" in out
    assert "errors      1 x cannot read image: not a JPEG" in out
    assert "s3://b/2.jpg  cannot read image" in out


def test_db_command_reads_the_password_file(
    db_url: str, mariadb: MariaDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    password_file = tmp_path / "db-password"
    password_file.write_text(mariadb.password + "\n")
    assert main(["db", "init", "--db", db_url, "--password-file", str(password_file)]) == 0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad password", "refused user 'imgsieve': access denied; check the password"),
        ("unknown database", "database 'test_missing' does not exist"),
        ("nothing listening", "cannot reach MySQL at 127.0.0.1:"),
        ("no schema", "doesn't exist; create the schema first with `imgsieve db init"),
    ],
)
def test_db_command_failures_are_one_readable_line(
    *,
    case: str,
    message: str,
    db_url: str,
    mariadb: MariaDB,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, action = db_url, "status"
    if case == "bad password":
        monkeypatch.setenv(PASSWORD_ENV, "wrong")
    elif case == "unknown database":
        url = mariadb.url("test_missing")
    elif case == "nothing listening":
        url = f"mysql://imgsieve@127.0.0.1:{free_port()}/test_x"
    else:
        action = "job"
    argv = ["db", action, "nightly", "--db", url] if action == "job" else ["db", action, "--db", url]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imgsieve db: error: ")
    assert message in err
    assert parse_db_url(url).where in err
    assert "\n" not in err


def test_write_throughput_with_batches_of_32(store: Store, record_property: Any) -> None:
    batches = [
        [row(f"s3://bucket/images/2026/11/{b:05d}/{i:02d}.jpg") for i in range(32)]
        for b in range(THROUGHPUT_BATCHES)
    ]
    began = time.perf_counter()
    for batch in batches:
        store.write_predictions(batch)
    rows_per_s = THROUGHPUT_BATCHES * 32 / (time.perf_counter() - began)
    record_property("rows_per_s", round(rows_per_s))
    print(f"write_predictions, batches of 32: {rows_per_s:.0f} rows/s")
    assert rows_per_s > THROUGHPUT_FLOOR_ROWS_S
