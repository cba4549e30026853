"""TF Serving's SavedModel warm-up file: sample predict requests replayed before a version serves.

TF Serving (`--enable_model_warmup`, on by default) reads `assets.extra/tf_serving_warmup_requests` of
each version it loads: a TFRecord file of serialized `tensorflow.serving.PredictionLog` messages, at
most 1000, each replayed `--num_request_iterations_for_warmup` times (default 1) before the version is
AVAILABLE; a record that fails fails the load. The first calls of a loaded graph are slow (kernel
selection, oneDNN caches), so the exporter ships requests at the batch sizes clients send.

The messages are declared here with the names and numbers of TF Serving's apis/prediction_log.proto,
predict.proto and model.proto, as far as a predict warm-up needs them. They go into the descriptor pool
of TensorFlow's own protos, so a request's inputs are the `tensorflow.TensorProto` that
tf.make_tensor_proto builds; the package that ships these messages would pull in a second TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message,
    message_factory,
)
from tensorflow.core.framework import tensor_pb2

EXTRA_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
# WarmupConsts::kMaxNumRecords in servables/tensorflow/saved_model_warmup_util.h: more fails the load.
MAX_RECORDS = 1000
# One image and a typical consumer batch, the sizes whose graphs clients hit first.
BATCH_SIZES = (1, 8)
IMAGE_SIDE = 32
IMAGE_GRAY = 128
PACKAGE = "tensorflow.serving"
PROTO_FILE = "imgsieve/model/tf_serving_prediction_log.proto"
LOG_TYPE = "predict_log"

Field = descriptor_pb2.FieldDescriptorProto


@dataclass
class WarmupRequest:
    """One replayable request of a warm-up file: the signature it calls and its input tensors."""

    signature_name: str
    inputs: dict[str, np.ndarray]


def _field(owner: Any, name: str, number: int, kind: int | str, repeated: bool = False) -> Any:
    """Declare a field on a DescriptorProto; kind is a scalar type or a message's full name."""
    label = Field.LABEL_REPEATED if repeated else Field.LABEL_OPTIONAL
    field = owner.field.add(name=name, number=number, label=label)
    if isinstance(kind, str):
        field.type, field.type_name = Field.TYPE_MESSAGE, "." + kind
    else:
        field.type = kind
    return field


def _declare(pool: Any) -> None:
    """Add ModelSpec, PredictRequest, PredictLog and PredictionLog to pool."""
    proto = descriptor_pb2.FileDescriptorProto(
        name=PROTO_FILE,
        package=PACKAGE,
        syntax="proto3",
        dependency=[tensor_pb2.DESCRIPTOR.name],
    )
    spec = proto.message_type.add(name="ModelSpec")
    _field(spec, "name", 1, Field.TYPE_STRING)
    _field(spec, "signature_name", 3, Field.TYPE_STRING)
    request = proto.message_type.add(name="PredictRequest")
    _field(request, "model_spec", 1, f"{PACKAGE}.ModelSpec")
    # map<string, TensorProto> inputs = 2, spelt out as protoc does: a repeated nested map entry.
    entry = request.nested_type.add(name="InputsEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, Field.TYPE_STRING)
    _field(entry, "value", 2, "tensorflow.TensorProto")
    _field(request, "inputs", 2, f"{PACKAGE}.PredictRequest.InputsEntry", repeated=True)
    _field(request, "output_filter", 3, Field.TYPE_STRING, repeated=True)
    _field(proto.message_type.add(name="PredictLog"), "request", 1, f"{PACKAGE}.PredictRequest")
    prediction_log = proto.message_type.add(name="PredictionLog")
    prediction_log.oneof_decl.add(name="log_type")
    _field(prediction_log, LOG_TYPE, 6, f"{PACKAGE}.PredictLog").oneof_index = 0
    pool.Add(proto)


def _prediction_log_class() -> Any:
    """The PredictionLog class, declaring the messages unless TF Serving's own are already loaded."""
    pool = descriptor_pool.Default()
    name = f"{PACKAGE}.PredictionLog"
    try:
        descriptor = pool.FindMessageTypeByName(name)
    except KeyError:
        _declare(pool)
        descriptor = pool.FindMessageTypeByName(name)
    return message_factory.GetMessageClass(descriptor)


# Declared at import, under the import lock: the stand-in loads versions from a background thread.
PredictionLog = _prediction_log_class()


def warmup_path(version_dir: Path) -> Path:
    """Where TF Serving looks for the warm-up file of a SavedModel version."""
    return version_dir / EXTRA_DIR / WARMUP_FILE


def warmup_image() -> bytes:
    """A small mid-gray JPEG: it takes the same decode, resize and model path as a photo."""
    return bytes(
        tf.io.encode_jpeg(tf.fill([IMAGE_SIDE, IMAGE_SIDE, 3], tf.constant(IMAGE_GRAY, tf.uint8))).numpy()
    )


def predict_log(model_name: str, signature_name: str, inputs: dict[str, np.ndarray]) -> Any:
    """A PredictionLog holding a PredictRequest for inputs (name -> array)."""
    log = PredictionLog()
    request = log.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return log


def image_logs(
    model_name: str, signature_name: str, input_name: str, batch_sizes: Sequence[int] = BATCH_SIZES
) -> list[Any]:
    """PredictionLogs sending warmup_image() to a signature's image input, one per batch size."""
    image = warmup_image()
    return [
        predict_log(model_name, signature_name, {input_name: np.array([image] * size, dtype=object)})
        for size in batch_sizes
    ]


def write_warmup(path: Path, logs: Iterable[Any]) -> int:
    """Write PredictionLogs to path as TFRecords and return how many; refuses more than TF Serving reads."""
    records = [log.SerializeToString() for log in logs]
    if len(records) > MAX_RECORDS:
        raise ValueError(
            f"{len(records)} warm-up requests for {path}: TF Serving reads at most {MAX_RECORDS}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return len(records)


def parse_record(record: bytes, where: str) -> WarmupRequest:
    """Parse one serialized PredictionLog into the request it replays; where names it in errors."""
    log = PredictionLog()
    try:
        log.ParseFromString(record)
    except message.DecodeError:
        raise ValueError(f"cannot parse {where} as a tensorflow.serving.PredictionLog") from None
    if log.WhichOneof("log_type") != LOG_TYPE:
        raise ValueError(f"{where} holds no {LOG_TYPE}: only predict requests are replayed")
    request = log.predict_log.request
    inputs = {name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()}
    return WarmupRequest(request.model_spec.signature_name, inputs)


def read_warmup(path: Path) -> list[WarmupRequest]:
    """The requests of a warm-up file, in file order; tf.errors.DataLossError if it is not TFRecords."""
    requests = []
    for number, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator(), start=1):
        if number > MAX_RECORDS:
            raise ValueError(
                f"{path} holds more than {MAX_RECORDS} warm-up records, the most TF Serving reads"
            )
        requests.append(parse_record(record, f"record {number} of {path}"))
    return requests
