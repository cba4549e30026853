"""The TF Serving config messages the Kubernetes tier writes, to parse its files as TF Serving does.

TF Serving reads --batching_parameters_file, --monitoring_config_file and --model_config_file as protobuf
text format. The messages are declared here with the names, numbers and types of TF Serving's .proto files
(servables/tensorflow/session_bundle_config.proto, config/monitoring_config.proto,
config/model_server_config.proto, sources/storage_path/file_system_storage_path_source.proto), so that
google.protobuf.text_format rejects a misspelt field or a wrong type as the server's parser would. The model
config is declared as far as this project writes it (ModelConfig's name, base_path, model_platform and
model_version_policy); the package that ships these messages would pull in a second TensorFlow.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

PACKAGE = "tensorflow.serving"
Field = descriptor_pb2.FieldDescriptorProto
INT64 = (Field.TYPE_INT64, "")
UINT32 = (Field.TYPE_UINT32, "")
BOOL = (Field.TYPE_BOOL, "")
STRING = (Field.TYPE_STRING, "")


def _message_type(name: str) -> tuple[int, str]:
    """A field type that is another message, by its full name."""
    return Field.TYPE_MESSAGE, "." + name


# message name -> [(field, number, (type, type name), repeated)]
MESSAGES: dict[str, list[tuple[str, int, tuple[int, str], bool]]] = {
    "BatchingParameters": [
        ("max_batch_size", 1, _message_type("google.protobuf.Int64Value"), False),
        ("batch_timeout_micros", 2, _message_type("google.protobuf.Int64Value"), False),
        ("max_enqueued_batches", 3, _message_type("google.protobuf.Int64Value"), False),
        ("num_batch_threads", 4, _message_type("google.protobuf.Int64Value"), False),
        ("thread_pool_name", 5, _message_type("google.protobuf.StringValue"), False),
        ("allowed_batch_sizes", 6, INT64, True),
        ("pad_variable_length_inputs", 7, BOOL, False),
    ],
    "PrometheusConfig": [("enable", 1, BOOL, False), ("path", 2, STRING, False)],
    "MonitoringConfig": [("prometheus_config", 1, _message_type(f"{PACKAGE}.PrometheusConfig"), False)],
    "LatestVersions": [("num_versions", 1, UINT32, False)],
    "AllVersions": [],
    "SpecificVersions": [("versions", 1, INT64, True)],
    "ServableVersionPolicy": [
        ("latest", 100, _message_type(f"{PACKAGE}.LatestVersions"), False),
        ("all", 101, _message_type(f"{PACKAGE}.AllVersions"), False),
        ("specific", 102, _message_type(f"{PACKAGE}.SpecificVersions"), False),
    ],
    "ModelConfig": [
        ("name", 1, STRING, False),
        ("base_path", 2, STRING, False),
        ("model_platform", 4, STRING, False),
        ("model_version_policy", 7, _message_type(f"{PACKAGE}.ServableVersionPolicy"), False),
    ],
    "ModelConfigList": [("config", 1, _message_type(f"{PACKAGE}.ModelConfig"), True)],
    "ModelServerConfig": [("model_config_list", 1, _message_type(f"{PACKAGE}.ModelConfigList"), False)],
}


def _build_pool() -> Any:
    """A descriptor pool holding the messages of MESSAGES."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="imgsieve_tf_serving_configs.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    for message, fields in MESSAGES.items():
        declared = proto.message_type.add(name=message)
        for name, number, (kind, type_name), repeated in fields:
            label = Field.LABEL_REPEATED if repeated else Field.LABEL_OPTIONAL
            field = declared.field.add(name=name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
    pool.Add(proto)
    return pool


_POOL = _build_pool()


def _parse(message: str, text: str) -> Any:
    """Parse text as the named message of the pool."""
    cls = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.{message}"))
    return text_format.Parse(text, cls())


def parse_batching(text: str) -> Any:
    """Parse a --batching_parameters_file."""
    return _parse("BatchingParameters", text)


def parse_monitoring(text: str) -> Any:
    """Parse a --monitoring_config_file."""
    return _parse("MonitoringConfig", text)


def parse_model_config(text: str) -> Any:
    """Parse a --model_config_file."""
    return _parse("ModelServerConfig", text)
