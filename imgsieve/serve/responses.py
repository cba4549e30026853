"""Tensors -> JSON for :predict answers, as TensorFlow Serving's json_tensor.cc writes them.

A row-format request is answered {"predictions": [...]}: one entry per example, an object keyed by
output name when the signature has several outputs. A columnar request is answered {"outputs": ...}:
whole tensors, an object of them when there are several. DT_STRING outputs are UTF-8 text, except
those named *_bytes, which are {"b64": ...}; floats are printed as TF Serving prints them.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from imgsieve.serve.codec import BASE64_KEY, COLUMNAR
from imgsieve.serve.status import invalid_argument

BYTES_SUFFIX = "_bytes"


def encode_outputs(outputs: Mapping[str, np.ndarray], fmt: str) -> dict[str, Any]:
    """Return the response object for output tensors: {"predictions": ...} or {"outputs": ...}."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    values = {name: _to_json(name, outputs[name]) for name in names}
    if fmt == COLUMNAR:
        return {"outputs": values[names[0]] if len(names) == 1 else values}
    batch = 0
    for name in names:
        shape = outputs[name].shape
        if not shape:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if shape[0] < 1:
            raise invalid_argument(f"Tensor name: {name} has invalid batch size: {shape[0]}")
        if batch and shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {shape[0]} expecting: {batch}"
            )
        batch = shape[0]
    if len(names) == 1:
        return {"predictions": values[names[0]]}
    return {"predictions": [{name: values[name][i] for name in names} for i in range(batch)]}


def _to_json(name: str, tensor: np.ndarray) -> Any:
    """Convert one output tensor to nested JSON values as TF Serving writes them."""
    convert: Callable[[Any], Any]
    if tensor.dtype.kind in "OS":
        convert = _base64_object if name.endswith(BYTES_SUFFIX) else _utf8
    elif tensor.dtype.kind == "f":
        double = tensor.dtype == np.float64
        convert = lambda value: _decimal(value, double)  # noqa: E731
    else:
        convert = lambda value: value  # noqa: E731
    return _map_nested(tensor.tolist(), convert)


def _map_nested(value: Any, convert: Callable[[Any], Any]) -> Any:
    """Apply convert to every leaf of a nested list."""
    if isinstance(value, list):
        return [_map_nested(item, convert) for item in value]
    return convert(value)


def _decimal(value: float, double: bool) -> float:
    """The float TF Serving prints: 6 significant digits unless that fails to round-trip (WriteDecimal)."""
    if not math.isfinite(value):
        return value
    text = f"{value:g}"
    roundtrips = float(text) == value if double else np.float32(text) == np.float32(value)
    return float(text if roundtrips else f"{value:.{17 if double else 9}g}")


def _utf8(value: bytes | str) -> str:
    """A DT_STRING output value as text."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _base64_object(value: bytes | str) -> dict[str, str]:
    """A binary DT_STRING output value as {"b64": ...}."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return {BASE64_KEY: base64.b64encode(data).decode("ascii")}
