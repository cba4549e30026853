"""One loaded version of a SavedModel: its signatures as TF Serving describes them, and calls to them.

The signature metadata is read from saved_model.pb itself (the SignatureDef protos of the "serve"
meta graph, printed as TF Serving's REST layer prints protos), so tensor names, dtypes and shapes are
exactly what the official server reports for the same directory. TensorFlow is imported here, only
when a model is loaded, so the rest of the command line starts fast.

Like TF Serving's model warm-up, a version is called before it is reported AVAILABLE, because the
first calls of a loaded graph are slow (kernel selection, oneDNN caches): with the requests of its
assets.extra/tf_serving_warmup_requests when it has that file, else with small images at the
exporter's warm-up batch sizes if its default signature takes encoded images.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from imgsieve.serve.status import DATA_LOSS, NOT_FOUND, ServingError, from_exception, invalid_argument

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
SAVED_MODEL_FILE = "saved_model.pb"

log = logging.getLogger(__name__)


class Servable:
    """A SavedModel version loaded and ready to run; safe to call from several threads."""

    def __init__(
        self, name: str, version: int, path: Path, signature_defs: dict[str, Any], loaded: Any
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = signature_defs
        self.load_seconds = 0.0
        self.warmup_requests = 0
        self._loaded = loaded
        self._functions = dict(loaded.signatures)

    @classmethod
    def load(cls, name: str, version: int, path: Path) -> Servable:
        """Load the SavedModel in path; raise ServingError with TF's code if it cannot be loaded."""
        start = time.monotonic()
        model_file = path / SAVED_MODEL_FILE
        if not model_file.is_file():
            raise ServingError(
                NOT_FOUND,
                f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}",
            )
        try:
            import tensorflow as tf
            from google.protobuf import json_format  # type: ignore[import-untyped]
            from tensorflow.core.protobuf import saved_model_pb2

            proto = saved_model_pb2.SavedModel()
            try:
                proto.ParseFromString(model_file.read_bytes())
            except Exception:  # protobuf's DecodeError, or a file that vanished under us
                raise ServingError(DATA_LOSS, f"Can't parse {model_file} as binary proto") from None
            graphs = [graph for graph in proto.meta_graphs if SERVE_TAG in graph.meta_info_def.tags]
            if not graphs:
                raise tf.errors.NotFoundError(
                    None, None, f"Could not find meta graph def matching supplied tags: {{ {SERVE_TAG} }}"
                )
            signature_defs = {
                key: json_format.MessageToDict(
                    graphs[0].signature_def[key],
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                )
                for key in sorted(graphs[0].signature_def)
            }
            loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        except Exception as exc:
            raise from_exception(exc) from exc
        servable = cls(name, version, path, signature_defs, loaded)
        servable.warm_up()
        servable.load_seconds = time.monotonic() - start
        return servable

    def warm_up(self) -> None:
        """Replay the version's warm-up file, or without one call an encoded-image signature on small images."""
        from imgsieve.model import warmup

        path = warmup.warmup_path(self.path)
        if path.is_file():
            self._replay(path)
            return
        dtypes = self.input_dtypes(DEFAULT_SIGNATURE) if DEFAULT_SIGNATURE in self.signature_defs else {}
        if len(dtypes) != 1 or next(iter(dtypes.values())) != "DT_STRING":
            return
        (input_name,) = dtypes
        if not input_name.endswith("_bytes"):
            return
        image = warmup.warmup_image()
        for size in warmup.BATCH_SIZES:
            self.run(DEFAULT_SIGNATURE, {input_name: np.array([image] * size, dtype=object)})
            self.warmup_requests += 1
        log.info(
            "model %s version %d: ran %d synthetic warm-up requests",
            self.name,
            self.version,
            self.warmup_requests,
        )

    def _replay(self, path: Path) -> None:
        """Run every request of a warm-up file once, as TF Serving does; the first failure fails the load."""
        from imgsieve.model import warmup

        try:
            requests = warmup.read_warmup(path)
        except ValueError as exc:
            raise invalid_argument(str(exc)) from None
        except Exception as exc:  # tf.errors.DataLossError for a file that is not TFRecords
            error = from_exception(exc)
            raise ServingError(error.code, f"{error.message}: cannot read warm-up file {path}") from exc
        for number, request in enumerate(requests, start=1):
            try:
                self.run(request.signature_name, request.inputs)
            except ServingError as exc:
                raise ServingError(exc.code, f"warm-up request {number} of {path}: {exc.message}") from exc
            self.warmup_requests += 1
        log.info(
            "model %s version %d: replayed %d warm-up requests from %s",
            self.name,
            self.version,
            self.warmup_requests,
            path,
        )

    def signature(self, signature_name: str) -> dict[str, Any]:
        """The SignatureDef (as JSON) for a request's signature_name ("" means serving_default)."""
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signature_defs:
            raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
        return self.signature_defs[key]

    def input_dtypes(self, signature_name: str) -> dict[str, str]:
        """Input name -> dtype name (e.g. image_bytes -> DT_STRING) of a signature."""
        inputs = self.signature(signature_name).get("inputs", {})
        return {name: info["dtype"] for name, info in inputs.items()}

    def metadata(self) -> dict[str, Any]:
        """The GetModelMetadata response: model spec and every signature of the serve graph."""
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": self.signature_defs}},
        }

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call a signature on a batch of inputs; raise ServingError with TF's code on failure."""
        import tensorflow as tf

        key = signature_name or DEFAULT_SIGNATURE
        function = self._functions.get(key)
        if function is None:
            raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
        dtypes = self.input_dtypes(signature_name)
        try:
            tensors = {
                name: tf.constant(value, dtype=tf.dtypes.as_dtype(_proto_dtype(dtypes[name])))
                for name, value in inputs.items()
            }
            outputs = function(**tensors)
        except Exception as exc:
            raise from_exception(exc) from exc
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def __repr__(self) -> str:
        return f"Servable({self.name!r}, version={self.version})"


def _proto_dtype(name: str) -> int:
    """The DataType enum number of a dtype name such as DT_FLOAT."""
    from tensorflow.core.framework import types_pb2

    return int(types_pb2.DataType.Value(name))
