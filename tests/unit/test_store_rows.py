"""Unit tests of imgsieve.store.rows: row checks, the URI key, and the shape of the upsert statement."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from pymysql.cursors import RE_INSERT_VALUES

from imgsieve.store.rows import ROW_COLUMNS, UPSERT_PREDICTIONS, PredictionRow, row_params, uri_hash
from imgsieve.store.schema import MAX_ERROR_CHARS, MAX_URI_CHARS


def ok_row(**changes: object) -> PredictionRow:
    """A valid ok row, with changes applied."""
    row = PredictionRow(
        source_uri="s3://bucket/photos/cat 1.jpg",
        job="nightly",
        model_name="resnet50",
        model_version=3,
        status="ok",
        predicted_class="cat",
        score=0.75,
        scores={"cat": 0.75, "dog": 0.25},
        error=None,
        consumer_host="worker-1",
        latency_ms=41.5,
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def test_row_params_follow_the_column_order() -> None:
    params = dict(zip(ROW_COLUMNS, row_params(ok_row()), strict=True))
    assert params["uri_sha256"] == hashlib.sha256(b"s3://bucket/photos/cat 1.jpg").digest()
    assert json.loads(params["scores"]) == {"cat": 0.75, "dog": 0.25}
    assert params["error_reason"] is None
    assert params["attempts"] == 1


def test_uri_hash_is_32_bytes_and_tells_long_uris_apart() -> None:
    prefix = "s3://b/" + "é" * 3000
    assert len(uri_hash(prefix + "a")) == 32
    assert uri_hash(prefix + "a") != uri_hash(prefix + "b")


def test_long_error_reasons_are_cut_to_the_column_size() -> None:
    row = ok_row(status="error", predicted_class=None, score=None, scores=None, error="x" * 5000)
    params = dict(zip(ROW_COLUMNS, row_params(row), strict=True))
    assert params["error_reason"] == "x" * MAX_ERROR_CHARS


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"status": "maybe"}, "status must be 'ok' or 'error'"),
        ({"predicted_class": None}, "an ok row needs predicted_class"),
        ({"status": "error", "error": None}, "an error row needs a reason"),
        ({"source_uri": "s3://b/" + "k" * MAX_URI_CHARS}, "the limit is 4096"),
        ({"job": ""}, "job must be 1-255 characters"),
        ({"score": float("nan")}, "must be finite"),
        ({"scores": {"cat": float("inf")}}, "not finite numbers"),
    ],
)
def test_rows_the_schema_cannot_hold_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        row_params(ok_row(**changes))


def test_pymysql_batches_the_upsert_into_one_statement() -> None:
    # executemany sends one multi-row INSERT only when its regex recognises the statement.
    match = RE_INSERT_VALUES.match(UPSERT_PREDICTIONS)
    assert match is not None
    assert match.group(3).strip().startswith("ON DUPLICATE KEY UPDATE")
    assert "%" not in match.group(3)  # PyMySQL formats the tail with `% ()`


def test_status_is_updated_last_so_every_condition_reads_the_stored_one() -> None:
    assignments = UPSERT_PREDICTIONS.split("ON DUPLICATE KEY UPDATE ", 1)[1].split("), ")
    assert assignments[-1].startswith("status = ")
    assert all("VALUES(status) = 'error'" in a for a in assignments)
