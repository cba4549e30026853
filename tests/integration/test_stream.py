"""The stream end to end: real `imgsieve produce` and `imgsieve consume` processes over TCP on 127.0.0.1,
a real `imgsieve serve` with a tiny exported model, a private MariaDB, and moto for S3.

Each test checks the delivery guarantees by counting rows in the store: exactly one per image, whatever
was killed, stopped or restarted on the way.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imgsieve.config import load_config
from imgsieve.store.connection import PASSWORD_ENV, open_connection, parse_db_url
from imgsieve.store.db import Store
from imgsieve.stream import curve
from imgsieve.stream.producer import Producer
from imgsieve.stream.source import S3Source, SourceRef
from tests.conftest import free_port

pytestmark = pytest.mark.integration

MODEL = "tiny"
CLASSES = ["drugs", "other"]
IMAGE_SIZE = 32
START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 240.0
LOG_TAIL = 3000
CONSUMER_HELLO_RETRY_S = 6.0  # a consumer not welcomed says HELLO again on a fresh socket every 5 s
ROW_COLUMNS = ("source_uri", "status", "error_reason", "attempts", "job", "consumer_host")


def export_tiny(base: Path) -> None:
    """Export a tiny two-class Keras model (32 px input) as version 1 under base."""
    import keras

    from imgsieve.model.export import export_model

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 128)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(pooled))
    export_model(model, CLASSES, base, image_size=IMAGE_SIZE)


def jpeg(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    """A small JPEG of random colour blocks."""
    blocks = np.random.default_rng(seed).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST).save(out, format="JPEG")
    return out.getvalue()


def write_images(folder: Path, count: int, start: int = 0) -> list[Path]:
    """Write count small JPEGs into folder; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"img{i:05d}.jpg"
        path.write_bytes(jpeg(i))
        paths.append(path)
    return paths


class ModelServer:
    """`imgsieve serve` on a fixed port, so that it can be stopped and started again at the same URL."""

    def __init__(self, base: Path, log_dir: Path):
        self.base, self.port = base, free_port()
        self.log_path = log_dir / f"serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def model_url(self) -> str:
        """The model's REST URL."""
        return f"http://127.0.0.1:{self.port}/v1/models/{MODEL}"

    def start(self) -> None:
        """Start the server and wait until a version is AVAILABLE."""
        argv = [sys.executable, "-m", "imgsieve", "serve", "--model-base-path", str(self.base)]
        argv += [
            "--model-name",
            MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-batch-size",
            "32",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(self.model_url, timeout=2) as response:
                    states = [s["state"] for s in json.load(response)["model_version_status"]]
                if "AVAILABLE" in states:
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"imgsieve serve did not start:\n{self.log_path.read_text()[-LOG_TAIL:]}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
        self.process = None


@pytest.fixture(scope="module")
def model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Base path holding version 1 of the tiny model."""
    base = tmp_path_factory.mktemp("models") / MODEL
    export_tiny(base)
    return base


@pytest.fixture(scope="module")
def model_server(model_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """A model server shared by the tests of this module (a test that stops it starts it again)."""
    server = ModelServer(model_base, tmp_path_factory.mktemp("serve-logs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store_url(db_url: str) -> str:
    """A fresh database with the schema created; its password is in $IMGSIEVE_DB_PASSWORD."""
    with Store.connect(db_url) as store:
        store.init_schema()
    return db_url


class Stream:
    """Starts consumers and producers for one test, logs them to files, and stops what is left."""

    def __init__(self, tmp: Path, db_url: str, model_url: str):
        self.tmp, self.db_url, self.model_url = tmp, db_url, model_url
        self.port = free_port()
        self.consumers: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def consumer(self, *extra: str, host: str | None = None) -> subprocess.Popen[bytes]:
        """Start one `imgsieve consume` process; host names it in the rows it writes."""
        argv = [sys.executable, "-m", "imgsieve", "consume", "--producer", f"tcp://127.0.0.1:{self.port}"]
        argv += ["--model-url", self.model_url, "--db", self.db_url, "--batch-size", "16", *extra]
        log = self.tmp / f"consumer-{len(self.consumers)}.log"
        self.logs.append(log)
        environment = {**os.environ, **({"IMGSIEVE_CONSUMER_HOST": host} if host else {})}
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=environment)
        self.consumers.append(proc)
        return proc

    def producer(self, source: str, job: str, *extra: str) -> subprocess.Popen[str]:
        """Start `imgsieve produce` on source; its stdout is captured, its stderr logged."""
        argv = [sys.executable, "-m", "imgsieve", "produce", source, "--job", job]
        argv += ["--bind", f"tcp://127.0.0.1:{self.port}", "--db", self.db_url, "--peer-timeout", "3", *extra]
        log = self.tmp / f"producer-{job}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("w") as err:
            return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)

    def produce(self, source: str, job: str, *extra: str) -> str:
        """Run a producer to the end and return its stdout (the summary)."""
        return self.wait(self.producer(source, job, *extra))

    def wait(self, proc: subprocess.Popen[str]) -> str:
        """Wait for a producer to finish, check it succeeded, and return its stdout (the summary)."""
        try:
            out, _ = proc.communicate(timeout=JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"producer did not finish:\n{self.tail()}") from None
        assert proc.returncode == 0, f"producer failed ({proc.returncode}):\n{self.tail()}"
        return out

    def tail(self) -> str:
        """The end of every log, for failure messages."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-LOG_TAIL:]}" for log in self.logs
        )

    def stop_consumers(self) -> None:
        """SIGTERM every consumer still running and check that each exits 0."""
        for proc in self.consumers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.consumers:
            code = proc.wait(timeout=60)
            assert code in (0, -signal.SIGKILL), f"consumer exited {code}:\n{self.tail()}"


@pytest.fixture
def stream(tmp_path: Path, store_url: str, model_server: ModelServer) -> Iterator[Stream]:
    """A Stream against the shared model server and a fresh database."""
    stream = Stream(tmp_path, store_url, model_server.model_url)
    try:
        yield stream
    finally:
        for proc in stream.consumers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def all_rows(db_url: str) -> list[dict[str, Any]]:
    """Every prediction row in the store, whatever its job."""
    conn = open_connection(parse_db_url(db_url), os.environ[PASSWORD_ENV], connect_timeout=10, io_timeout=60)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM predictions")
            return [dict(zip(ROW_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    finally:
        conn.close()


def wait_for_rows(db_url: str, at_least: int, timeout: float = 120.0) -> None:
    """Wait until the store holds at least that many rows."""
    deadline = time.monotonic() + timeout
    while len(all_rows(db_url)) < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} rows after {timeout} s"
        time.sleep(0.2)


def assert_one_row_each(db_url: str, uris: list[str]) -> list[dict[str, Any]]:
    """Assert the store holds exactly one row per URI, and no other; return the rows."""
    found = all_rows(db_url)
    got = sorted(r["source_uri"] for r in found)
    assert len(got) == len(set(got)), "duplicate rows"
    assert got == sorted(uris)
    return found


def big_jpeg(seed: int) -> bytes:
    """A 960x720 JPEG: enough pixels that vetting and classifying it takes a few milliseconds."""
    return jpeg(seed, (960, 720))


def write_big_images(folder: Path, count: int) -> list[str]:
    """Write count big JPEGs into folder; return their paths as the rows name them."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"big{i:05d}.jpg").write_bytes(big_jpeg(i))
    return [str(folder / f"big{i:05d}.jpg") for i in range(count)]


def test_thousand_images_through_three_consumers(stream: Stream, tmp_path: Path) -> None:
    """1,000 images through three consumer processes: exactly 1,000 rows, every one classified."""
    paths = write_images(tmp_path / "images", 1000)
    for _ in range(3):
        stream.consumer()
    out = stream.produce(str(tmp_path / "images"), "thousand")
    found = assert_one_row_each(stream.db_url, [str(p) for p in paths])
    assert all(r["status"] == "ok" for r in found), [r for r in found if r["status"] != "ok"][:3]
    assert "classified:  1000 (" in out, out
    assert "images:      1000 rows" in out, out
    stream.stop_consumers()


@pytest.mark.slow
def test_consumer_killed_mid_job_leaves_one_row_per_image(stream: Stream, tmp_path: Path) -> None:
    """SIGKILL a consumer holding images: they go to the other consumer, and every image has one row."""
    uris = write_big_images(tmp_path / "images", 300)
    victim = stream.consumer()
    proc = stream.producer(str(tmp_path / "images"), "kill")
    wait_for_rows(stream.db_url, 20)
    victim.kill()  # it holds up to a window of images it will never acknowledge
    stream.consumer()
    out = stream.wait(proc)
    found = assert_one_row_each(stream.db_url, uris)
    assert all(r["status"] == "ok" for r in found)
    assert any(r["attempts"] == 2 for r in found), "no image was re-sent after the kill"
    assert " 0 re-sent" not in out, out
    stream.stop_consumers()


@pytest.mark.slow
def test_model_server_stopped_for_20_s_loses_nothing(
    stream: Stream, tmp_path: Path, model_server: ModelServer
) -> None:
    """Stop the model server mid-job for 20 s: consumers wait it out; no error row, no duplicate."""
    uris = write_big_images(tmp_path / "images", 300)
    stream.consumer()
    stream.consumer()
    proc = stream.producer(str(tmp_path / "images"), "outage")
    wait_for_rows(stream.db_url, 20)
    model_server.stop()
    time.sleep(20)  # the outage itself, not a wait for a peer
    model_server.start()
    stream.wait(proc)
    found = assert_one_row_each(stream.db_url, uris)
    assert [r for r in found if r["status"] != "ok"] == []
    stream.stop_consumers()


@pytest.mark.slow
def test_producer_killed_and_rerun_resumes_without_duplicates(stream: Stream, tmp_path: Path) -> None:
    """SIGKILL the producer mid-job, run the job again: it skips what was done and finishes the rest."""
    uris = write_big_images(tmp_path / "images", 300)
    stream.consumer()
    stream.consumer()
    first = stream.producer(str(tmp_path / "images"), "resume")
    wait_for_rows(stream.db_url, 40)
    first.kill()
    first.wait()
    done_before = len(all_rows(stream.db_url))
    out = stream.produce(str(tmp_path / "images"), "resume")
    found = assert_one_row_each(stream.db_url, uris)
    assert all(r["status"] == "ok" for r in found)
    skipped = int(out.split(" already done")[0].rsplit(" ", 1)[1])
    assert skipped >= done_before, out
    stream.stop_consumers()


def make_bad_inputs(folder: Path) -> dict[str, str]:
    """Write one file per kind of bad input; return {file name: words its error row must contain}."""
    whole = big_jpeg(1)
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    big = io.BytesIO()
    Image.fromarray(noise).save(big, format="JPEG", quality=95)  # about 600 KB of incompressible noise
    webp, bomb = io.BytesIO(), io.BytesIO()
    Image.fromarray(noise[:40, :40]).save(webp, format="WEBP")
    Image.new("L", (10_000, 5_000)).save(bomb, format="PNG")  # 50 MP in a few KB
    files = {
        "zero.jpg": (b"", "empty"),
        "truncated.jpg": (whole[: len(whole) * 2 // 3], "truncated JPEG"),
        "page.jpg": (b"<!DOCTYPE html><html><body>403 Forbidden</body></html>", "HTML"),
        "photo.jpg": (webp.getvalue(), "unsupported format WEBP"),
        "bomb.png": (bomb.getvalue(), "decompression bomb"),
        "huge.jpg": (big.getvalue(), "over the 200,000-byte limit"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: words for name, (_, words) in files.items()}


def test_bad_inputs_become_error_rows_while_the_rest_classify(stream: Stream, tmp_path: Path) -> None:
    """Zero-byte, truncated, HTML, unsupported, bomb and oversized files: one error row each, with its reason."""
    folder = tmp_path / "images"
    good = write_images(folder, 20)
    bad = make_bad_inputs(folder)
    stream.consumer()
    out = stream.produce(str(folder), "bad", "--max-bytes", "200000")
    found = assert_one_row_each(stream.db_url, [str(p) for p in good] + [str(folder / n) for n in bad])
    by_name = {Path(r["source_uri"]).name: r for r in found}
    for name, words in bad.items():
        assert by_name[name]["status"] == "error", by_name[name]
        assert words in by_name[name]["error_reason"], (name, by_name[name]["error_reason"])
    assert all(by_name[p.name]["status"] == "ok" for p in good)
    assert f"errors:      {len(bad)}" in out, out
    stream.stop_consumers()


def test_consumers_started_first_serve_two_jobs_in_turn(stream: Stream, tmp_path: Path) -> None:
    """Consumers started before any producer join it when it comes, then serve the next job too."""
    first = write_images(tmp_path / "first", 60)
    second = write_images(tmp_path / "second", 60, start=100)
    consumers = [stream.consumer(), stream.consumer()]
    deadline = time.monotonic() + START_TIMEOUT_S
    while not all("said HELLO" in log.read_text() for log in stream.logs):
        assert time.monotonic() < deadline, stream.tail()
        time.sleep(0.1)
    stream.produce(str(tmp_path / "first"), "first")
    stream.produce(str(tmp_path / "second"), "second")
    assert all(proc.poll() is None for proc in consumers), "a consumer exited after its first job"
    assert_one_row_each(stream.db_url, [str(p) for p in first + second])
    assert {r["job"] for r in all_rows(stream.db_url)} == {"first", "second"}
    stream.stop_consumers()


class DeletingSource:
    """An S3 source that deletes one object right after listing each page: the GET of it must fail."""

    def __init__(self, inner: S3Source, victim: str):
        self.inner, self.victim = inner, victim
        self.location = inner.location

    def pages(self) -> Iterator[list[SourceRef]]:
        """List a page, delete the victim, hand the page on."""
        for page in self.inner.pages():
            self.inner.client.delete_object(Bucket=self.inner.bucket, Key=self.victim)
            yield page

    def read(self, ref: SourceRef, max_bytes: int) -> bytes:
        """Read as the real source does."""
        return self.inner.read(ref, max_bytes)


def iam_user_denied(client: Any, iam: Any, bucket: str, key: str) -> dict[str, str]:
    """Create an IAM user that may do anything on S3 but GET bucket/key; return its access keys."""
    iam.create_user(UserName="producer")
    statements = [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/{key}"},
    ]
    iam.put_user_policy(
        UserName="producer",
        PolicyName="all-but-one",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    keys = iam.create_access_key(UserName="producer")["AccessKey"]
    return {"aws_access_key_id": keys["AccessKeyId"], "aws_secret_access_key": keys["SecretAccessKey"]}


@contextlib.contextmanager
def moto_auth(endpoint: str) -> Iterator[None]:
    """Make moto check credentials and IAM policies inside the block (moto's own reset-auth switch)."""

    def switch(count: str) -> None:
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form type would hide the body from moto
        )
        urllib.request.urlopen(request, timeout=10).close()

    switch("0")
    try:
        yield
    finally:
        switch("inf")


def test_s3_failures_become_error_rows(stream: Stream, s3_endpoint: str) -> None:
    """An object deleted after listing, one denied to the producer and an archived one: error rows, the rest ok."""
    import boto3

    bucket = "stream-bad"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    good = [f"in/img{i:03d}.jpg" for i in range(20)]
    for i, key in enumerate(good):
        client.put_object(Bucket=bucket, Key=key, Body=jpeg(i))
    client.put_object(Bucket=bucket, Key="in/gone.jpg", Body=jpeg(90))
    client.put_object(Bucket=bucket, Key="in/denied.jpg", Body=jpeg(91))
    client.put_object(Bucket=bucket, Key="in/cold.jpg", Body=jpeg(92), StorageClass="GLACIER")
    keys = iam_user_denied(client, boto3.client("iam"), bucket, "in/denied.jpg")
    stream.consumer()
    config = load_config(
        None, {}, {"producer": {"bind": f"tcp://127.0.0.1:{stream.port}", "peer_timeout": 3}}
    )
    source = DeletingSource(
        S3Source(f"s3://{bucket}/in/", config.producer.include, boto3.client("s3", **keys)), "in/gone.jpg"
    )
    with moto_auth(s3_endpoint):
        result = Producer(config.producer, "s3bad", source, lambda: Store.connect(stream.db_url)).run()
    assert result.listed == 23
    found = assert_one_row_each(
        stream.db_url, [f"s3://{bucket}/{k}" for k in [*good, "in/gone.jpg", "in/denied.jpg", "in/cold.jpg"]]
    )
    by_key = {r["source_uri"].rsplit("/", 1)[1]: r for r in found}
    assert "object not found (deleted after it was listed?)" in by_key["gone.jpg"]["error_reason"]
    assert "access denied" in by_key["denied.jpg"]["error_reason"]
    assert "archived" in by_key["cold.jpg"]["error_reason"]
    assert all(by_key[k.rsplit("/", 1)[1]]["status"] == "ok" for k in good)
    stream.stop_consumers()


def test_s3_prefix_through_the_command(stream: Stream, s3_endpoint: str) -> None:
    """`imgsieve produce s3://...` lists and fetches a prefix (not its neighbours) through boto3."""
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="stream-ok")
    for i in range(30):
        client.put_object(Bucket="stream-ok", Key=f"photos/{i:03d}.JPG", Body=jpeg(i))
    client.put_object(Bucket="stream-ok", Key="photos/notes.txt", Body=b"not an image")
    client.put_object(Bucket="stream-ok", Key="photosets/x.jpg", Body=jpeg(99))
    stream.consumer()
    stream.produce("s3://stream-ok/photos", "s3ok")
    assert_one_row_each(stream.db_url, [f"s3://stream-ok/photos/{i:03d}.JPG" for i in range(30)])
    stream.stop_consumers()


def test_curve_serves_only_consumers_whose_key_the_producer_lists(stream: Stream, tmp_path: Path) -> None:
    """With CURVE on, a consumer with an unlisted key and one without CURVE get nothing while they wait, the
    producer names the refused key, and the listed consumer, once started, classifies the whole job."""
    keys, authorized = tmp_path / "keys", tmp_path / "authorized"
    for name in ("producer", "listed", "unlisted"):
        curve.generate(keys, name)
    authorized.mkdir()
    shutil.copy(keys / "listed.key", authorized / "listed.key")
    paths = write_images(tmp_path / "images", 200)
    producer_key = ["--curve-producer-key", str(keys / "producer.key")]
    secure = [
        "--curve-secret-key",
        str(keys / "producer.key_secret"),
        "--curve-authorized-keys",
        str(authorized),
    ]
    proc = stream.producer(str(tmp_path / "images"), "curve", *secure)
    stream.consumer("--curve-secret-key", str(keys / "unlisted.key_secret"), *producer_key, host="unlisted")
    stream.consumer(host="plaintext")
    producer_log = stream.logs[0]
    unlisted = curve.public_key(keys / "unlisted.key").decode()
    deadline = time.monotonic() + START_TIMEOUT_S
    while f"refused a consumer whose CURVE public key {unlisted}" not in producer_log.read_text():
        assert time.monotonic() < deadline, f"the unlisted key was never refused:\n{stream.tail()}"
        time.sleep(0.2)
    time.sleep(CONSUMER_HELLO_RETRY_S)  # both keep saying HELLO meanwhile
    assert all_rows(stream.db_url) == [], "a consumer without a listed key got work"
    stream.consumer("--curve-secret-key", str(keys / "listed.key_secret"), *producer_key, host="listed")
    stream.wait(proc)
    found = assert_one_row_each(stream.db_url, [str(p) for p in paths])
    assert {r["consumer_host"] for r in found} == {"listed"}
    assert all(r["status"] == "ok" for r in found)
    stream.stop_consumers()
