"""What a consumer writes: one PredictionRow per image, checked and turned into the parameters of one
multi-row upsert keyed by (SHA-256 of the URI, model name, model version)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from imgsieve.store import schema

Status = Literal["ok", "error"]

ROW_COLUMNS = (
    "source_uri", "uri_sha256", "job", "model_name", "model_version", "status", "predicted_class",
    "score", "scores", "error_reason", "consumer_host", "latency_ms", "attempts",
)  # fmt: skip
# A stored `ok` is never replaced by an `error`. Assignments in ON DUPLICATE KEY UPDATE see the values
# set before them in the same statement, so `status` comes last: every IF() then reads the stored status.
# VALUES() rather than the newer row alias: MariaDB 10.11 knows only VALUES().
_KEEP_OK = "status = 'ok' AND VALUES(status) = 'error'"
_UPDATED = [c for c in ROW_COLUMNS if c not in ("uri_sha256", "model_name", "model_version", "status")]
UPSERT_PREDICTIONS = (
    f"INSERT INTO predictions ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join(['%s'] * len(ROW_COLUMNS))})"
    " ON DUPLICATE KEY UPDATE "
    + ", ".join(f"{c} = IF({_KEEP_OK}, {c}, VALUES({c}))" for c in [*_UPDATED, "status"])
)


@dataclass
class PredictionRow:
    """One classified (or failed) image, as a consumer reports it."""

    source_uri: str
    job: str
    model_name: str
    model_version: int
    status: Status
    predicted_class: str | None
    score: float | None
    scores: dict[str, float] | None
    error: str | None
    consumer_host: str
    latency_ms: float | None
    attempts: int = 1


def uri_hash(uri: str) -> bytes:
    """The 32-byte SHA-256 of a URI's UTF-8 bytes: the key predictions are found by."""
    return hashlib.sha256(uri.encode("utf-8")).digest()


def row_params(row: PredictionRow) -> tuple[Any, ...]:
    """The INSERT parameters for row, in ROW_COLUMNS order; a row the schema cannot hold is a ValueError."""
    problem = None
    if row.status not in ("ok", "error"):
        problem = f"status must be 'ok' or 'error', not {row.status!r}"
    elif row.status == "ok" and not row.predicted_class:
        problem = "an ok row needs predicted_class"
    elif row.status == "error" and not row.error:
        problem = "an error row needs a reason in error"
    elif len(row.source_uri) > schema.MAX_URI_CHARS:
        problem = f"source_uri is {len(row.source_uri)} characters, the limit is {schema.MAX_URI_CHARS}"
    elif len(row.job) > schema.MAX_JOB_CHARS or not row.job:
        problem = f"job must be 1-{schema.MAX_JOB_CHARS} characters"
    elif any(len(n or "") > schema.MAX_NAME_CHARS for n in (row.model_name, row.predicted_class)):
        problem = f"model_name and predicted_class are limited to {schema.MAX_NAME_CHARS} characters"
    elif any(v is not None and not math.isfinite(v) for v in (row.score, row.latency_ms)):
        problem = "score and latency_ms must be finite numbers"
    if problem:
        raise ValueError(f"cannot store the prediction for {row.source_uri[:200]!r}: {problem}")
    try:
        scores = None if row.scores is None else json.dumps(row.scores, allow_nan=False)
    except ValueError:
        raise ValueError(
            f"cannot store the scores for {row.source_uri[:200]!r}: not finite numbers"
        ) from None
    error = row.error[: schema.MAX_ERROR_CHARS] if row.error else None
    return (
        row.source_uri, uri_hash(row.source_uri), row.job, row.model_name, row.model_version, row.status,
        row.predicted_class, row.score, scores, error, row.consumer_host, row.latency_ms, row.attempts,
    )  # fmt: skip
