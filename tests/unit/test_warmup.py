"""TF Serving's warm-up file: the PredictionLog wire format, the TFRecord file, the exporter writing it
and the stand-in replaying it before a version is AVAILABLE."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from imgsieve.model import warmup
from imgsieve.serve.registry import ModelRegistry
from imgsieve.serve.servable import Servable
from imgsieve.serve.status import ServingError
from tests.integration.serving import export_tiny_model

MODEL = "tiny"
SIGNATURE = "serving_default"
INPUT = "image_bytes"
LEN = 2  # wire type of strings, bytes and messages


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint encoding."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """One length-delimited field: tag (number << 3 | 2), length, payload."""
    return varint(number << 3 | LEN) + varint(len(payload)) + payload


def images(*data: bytes) -> np.ndarray:
    """A DT_STRING batch of encoded images."""
    batch = np.empty(len(data), dtype=object)
    batch[:] = list(data)
    return batch


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 of a tiny classifier under a base path named after the model, as the exporter writes it."""
    return export_tiny_model(tmp_path_factory.mktemp("warmup") / MODEL, ["a", "b"])


@pytest.fixture
def version(tmp_path: Path, exported: Path) -> Path:
    """A copy of the exported version, free to edit."""
    return Path(shutil.copytree(exported, tmp_path / MODEL / "1"))


def test_prediction_log_has_tf_servings_field_numbers() -> None:
    tensor = tf.make_tensor_proto(images(b"x")).SerializeToString()
    spec = length_delimited(1, b"m") + length_delimited(3, SIGNATURE.encode())
    entry = length_delimited(1, INPUT.encode()) + length_delimited(2, tensor)
    request = length_delimited(1, spec) + length_delimited(2, entry)
    expected = length_delimited(6, length_delimited(1, request))
    serialized = warmup.predict_log("m", SIGNATURE, {INPUT: images(b"x")}).SerializeToString()
    assert serialized[0] == 0x32  # PredictionLog.predict_log = 6, length-delimited
    assert serialized == expected


def test_records_round_trip_through_a_tfrecord_file(tmp_path: Path) -> None:
    path = warmup.warmup_path(tmp_path)
    assert path == tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    assert warmup.write_warmup(path, warmup.image_logs(MODEL, SIGNATURE, INPUT)) == 2
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    logs = [warmup.PredictionLog.FromString(record) for record in records]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log"]
    requests = [log.predict_log.request for log in logs]
    assert {(r.model_spec.name, r.model_spec.signature_name) for r in requests} == {(MODEL, SIGNATURE)}
    batches = [tf.make_ndarray(r.inputs[INPUT]) for r in requests]
    assert [len(batch) for batch in batches] == list(warmup.BATCH_SIZES)
    jpeg = warmup.warmup_image()
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert all(item == jpeg for batch in batches for item in batch)
    assert tf.io.decode_jpeg(batches[1][7]).shape == (warmup.IMAGE_SIDE, warmup.IMAGE_SIDE, 3)
    read = warmup.read_warmup(path)
    assert [(r.signature_name, list(r.inputs), r.inputs[INPUT].tolist()) for r in read] == [
        (SIGNATURE, [INPUT], [jpeg] * size) for size in warmup.BATCH_SIZES
    ]


def test_more_records_than_tf_serving_reads_are_refused(tmp_path: Path) -> None:
    log = warmup.predict_log(MODEL, SIGNATURE, {INPUT: images(b"x")})
    path = tmp_path / "requests"
    with pytest.raises(ValueError, match="TF Serving reads at most 1000"):
        warmup.write_warmup(path, [log] * (warmup.MAX_RECORDS + 1))
    assert not path.exists()
    assert warmup.write_warmup(path, [log] * warmup.MAX_RECORDS) == warmup.MAX_RECORDS
    assert len(warmup.read_warmup(path)) == warmup.MAX_RECORDS
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _ in range(warmup.MAX_RECORDS + 1):
            writer.write(log.SerializeToString())
    with pytest.raises(ValueError, match="more than 1000 warm-up records"):
        warmup.read_warmup(path)


def test_records_that_are_not_predict_logs_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "requests"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(b"\xff\xff")
    with pytest.raises(ValueError, match=f"cannot parse record 1 of {path}"):
        warmup.read_warmup(path)
    empty_request = warmup.predict_log(MODEL, SIGNATURE, {})
    warmup.write_warmup(path, [empty_request])
    assert [r.inputs for r in warmup.read_warmup(path)] == [{}]
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(empty_request.SerializeToString())
        writer.write(length_delimited(1, b""))  # only log_metadata: a PredictionLog without a request
    with pytest.raises(ValueError, match=f"record 2 of {path} holds no predict_log"):
        warmup.read_warmup(path)


def test_export_ships_the_warmup_requests(exported: Path) -> None:
    [one, eight] = warmup.read_warmup(exported / "assets.extra" / "tf_serving_warmup_requests")
    assert (one.signature_name, eight.signature_name) == (SIGNATURE, SIGNATURE)
    assert (len(one.inputs[INPUT]), len(eight.inputs[INPUT])) == (1, 8)
    records = tf.data.TFRecordDataset(str(warmup.warmup_path(exported))).as_numpy_iterator()
    names = {warmup.PredictionLog.FromString(r).predict_log.request.model_spec.name for r in records}
    assert names == {MODEL}


def test_stand_in_replays_the_warmup_file(exported: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="imgsieve.serve.servable"):
        servable = Servable.load(MODEL, 1, exported)
    assert servable.warmup_requests == 2
    assert f"replayed 2 warm-up requests from {warmup.warmup_path(exported)}" in caplog.text


def test_stand_in_replays_whatever_the_file_holds(version: Path) -> None:
    logs = [warmup.predict_log(MODEL, "", {INPUT: images(warmup.warmup_image())}) for _ in range(3)]
    warmup.write_warmup(warmup.warmup_path(version), logs)
    assert Servable.load(MODEL, 1, version).warmup_requests == 3


def test_without_the_file_the_stand_in_warms_up_on_its_own(
    version: Path, caplog: pytest.LogCaptureFixture
) -> None:
    warmup.warmup_path(version).unlink()
    with caplog.at_level(logging.INFO, logger="imgsieve.serve.servable"):
        assert Servable.load(MODEL, 1, version).warmup_requests == len(warmup.BATCH_SIZES)
    assert "ran 2 synthetic warm-up requests" in caplog.text


def test_a_failing_warmup_request_fails_the_load(version: Path) -> None:
    good = warmup.predict_log(MODEL, SIGNATURE, {INPUT: images(warmup.warmup_image())})
    bad = warmup.predict_log(MODEL, SIGNATURE, {INPUT: images(b"not an image")})
    warmup.write_warmup(warmup.warmup_path(version), [good, bad])
    registry = ModelRegistry(MODEL, version.parent, 1.0)
    registry.poll_once()
    assert registry.latest_version() is None
    [status] = registry.status(MODEL, 1)
    assert status["state"] == "END"
    assert status["status"]["error_code"] == "INVALID_ARGUMENT"
    message = status["status"]["error_message"]
    assert message.startswith(
        f"warm-up request 2 of {warmup.warmup_path(version)}: Unknown image file format"
    )


def test_a_warmup_file_that_is_not_tfrecords_fails_the_load(version: Path) -> None:
    warmup.warmup_path(version).write_bytes(b"not a TFRecord file, but long enough to be read as one")
    with pytest.raises(ServingError) as caught:
        Servable.load(MODEL, 1, version)
    assert caught.value.code == "DATA_LOSS"
    assert caught.value.message.endswith(f"cannot read warm-up file {warmup.warmup_path(version)}")
