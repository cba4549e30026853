"""Helpers for scripts/demo.sh: the demo's private services and its closing report.

    demo_services.py services RUN_DIR IMAGES   start a private MariaDB (schema created) and moto S3 with
                                               IMAGES uploaded to s3://demo/stream/, write RUN_DIR/env
                                               (variables for the shell), then wait for SIGTERM and
                                               stop both cleanly
    demo_services.py report JOB TRUTH_CSV      print a few rows of JOB and its accuracy against TRUTH_CSV

MariaDB runs from tests/integration/mariadb.py (the test suite's private-server helper), so the demo
and the tests start it the same way.
"""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imgsieve.store.db import Store  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.integration.mariadb import start_private_server  # noqa: E402

BUCKET, PREFIX = "demo", "stream/"
READY_TIMEOUT_S = 30.0
SHOWN_ROWS = 5


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto's S3 server on a free port and wait until it answers."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"moto did not start on {url}; see {log}") from None
            time.sleep(0.1)


def upload(images: Path) -> int:
    """Upload every image of the folder to s3://demo/stream/ (boto3 reads the endpoint from the env)."""
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    paths = sorted(images.glob("*.jpg"))
    for path in paths:
        client.upload_file(str(path), BUCKET, PREFIX + path.name)
    return len(paths)


def services(run_dir: Path, images: Path) -> None:
    """Start MariaDB and moto, publish their settings in run_dir/env, serve until SIGTERM."""
    run_dir = run_dir.resolve()  # mariadbd changes its working directory
    run_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    db = start_private_server(run_dir / "mariadb")
    moto, s3_url = start_moto(run_dir / "moto.log")
    try:
        db_url = db.new_database_url()
        with Store.connect(db_url, db.password) as store:
            store.init_schema()
        env = {
            "IMGSIEVE_DB_URL": db_url,
            "IMGSIEVE_DB_PASSWORD": db.password,
            "AWS_ENDPOINT_URL": s3_url,
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        os.environ.update(env)
        count = upload(images)
        print(f"demo: MariaDB on port {db.port}, moto S3 at {s3_url} with {count} images", file=sys.stderr)
        partial = run_dir / "env.partial"
        partial.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
        partial.rename(run_dir / "env")  # the shell waits for this name: it appears complete
        stop.wait()
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        db.stop()


def report(job: str, truth_csv: Path) -> None:
    """Print a few of the job's rows and its accuracy against the truth file."""
    with open(truth_csv, newline="") as handle:
        truth = {row["filename"]: row["class"] for row in csv.DictReader(handle)}
    with Store.connect(os.environ["IMGSIEVE_DB_URL"]) as store:
        rows = store.recent_rows(job, len(truth) + 1000)
    print(f"\nA few rows of job {job}:")
    for row in rows[:SHOWN_ROWS]:
        score = f"{row['score']:.3f}" if row["score"] is not None else "-"
        print(f"  {row['source_uri']}  {row['status']}  {row['predicted_class'] or row['error']}  {score}")
    judged = [
        (truth[name], row["predicted_class"])
        for row in rows
        if (name := row["source_uri"].rsplit("/", 1)[-1]) in truth
    ]
    right = sum(expected == got for expected, got in judged)
    if judged:
        print(f"Accuracy against {truth_csv}: {right}/{len(judged)} = {right / len(judged):.1%}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "services":
        services(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(sys.argv[2], Path(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
