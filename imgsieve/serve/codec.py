"""JSON -> tensors for the :predict API, as TensorFlow Serving's json_tensor.cc reads requests.

Requests come in row format ({"instances": [...]}, one item per example) or columnar format
({"inputs": ...}, whole tensors); binary DT_STRING values are {"b64": "..."} objects. Error messages
keep TF Serving's wording, so clients see the same text from this server as from the official one.
Tensors are numpy arrays; DT_STRING ones hold bytes objects. Answers are written by `responses`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from imgsieve.serve.status import UNIMPLEMENTED, ServingError, invalid_argument

ROW = "row"
COLUMNAR = "columnar"
SIGNATURE_KEY = "signature_name"
INSTANCES_KEY = "instances"
INPUTS_KEY = "inputs"
BASE64_KEY = "b64"
MAX_ERROR_VALUE_CHARS = 200  # TF Serving echoes whole values; a megabyte of base64 helps no one

NUMPY_DTYPES: dict[str, Any] = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_INT8": np.int8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64,
    "DT_BOOL": np.bool_,
    "DT_STRING": object,
}
# Largest integer each float type holds exactly (IsLosslessDecimal in json_tensor.cc).
_LOSSLESS_INT = {"DT_FLOAT": 2**24 - 1, "DT_DOUBLE": 2**53 - 1}
# Python's json messages -> rapidjson's, which TF Serving reports.
_PARSE_MESSAGES = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Extra data": "The document root must not be followed by other values.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
}

Tensors = dict[str, np.ndarray]


def parse_json(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object (NaN and Infinity allowed, as in TF Serving)."""
    if not body.strip():
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise invalid_argument(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
        ) from None
    except json.JSONDecodeError as exc:
        message = _PARSE_MESSAGES.get(exc.msg, exc.msg + ".")
        raise invalid_argument(f"JSON Parse error: {message} at offset: {exc.pos}") from None
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    return doc


def signature_name(doc: Mapping[str, Any]) -> str:
    """Return the request's optional "signature_name" ("" when absent)."""
    name = doc.get(SIGNATURE_KEY, "")
    if not isinstance(name, str):
        raise format_error(doc, "not formatted correctly. 'signature_name' key must be a string value.")
    return name


def decode_inputs(doc: Mapping[str, Any], input_dtypes: Mapping[str, str]) -> tuple[str, Tensors]:
    """Return the request's format (ROW or COLUMNAR) and its input tensors, keyed by input name."""
    if INSTANCES_KEY in doc:
        if INPUTS_KEY in doc:
            raise format_error(
                doc, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
            )
        instances = doc[INSTANCES_KEY]
        if not isinstance(instances, list):
            raise format_error(doc, "Excepting 'instances' to be an list/array")
        if not instances:
            raise format_error(doc, "No values in 'instances' array")
        return ROW, _from_instances(instances, input_dtypes)
    if INPUTS_KEY in doc:
        return COLUMNAR, _from_inputs(doc[INPUTS_KEY], input_dtypes)
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _from_instances(instances: list[Any], input_dtypes: Mapping[str, str]) -> Tensors:
    """Stack the row-format items into one tensor per input, batch dimension first."""
    if not isinstance(instances[0], dict) and len(input_dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    names = sorted(input_dtypes)
    objects = _is_element_object(instances[0])
    shapes: dict[str, tuple[int, ...]] = {}
    values: dict[str, list[Any]] = {}
    for count, item in enumerate(instances):
        if objects != _is_element_object(item):
            kinds = ("object", "list") if objects else ("value/list", "object")
            raise invalid_argument(f"Expecting {kinds[0]} but got {kinds[1]} at item {count} of input list")
        pairs = list(item.items()) if objects else [(names[0], item)]
        for name, value in pairs:
            try:
                _add_instance_item(value, name, input_dtypes, shapes, values)
            except ServingError as exc:
                where = f"{count} key: {name}" if objects else f"{count}"
                raise invalid_argument(
                    f"Failed to process element: {where} of 'instances' list. Error: {exc.code}: {exc.message}"
                ) from None
        if objects and set(item) != set(names):
            raise invalid_argument(
                f"Failed to process element: {count} of 'instances' list. JSON object: {_json_text(item)} "
                f"must only have keys: {','.join(names)}"
            )
    return {
        name: _array(values[name], input_dtypes[name], (len(instances), *shapes[name])) for name in values
    }


def _add_instance_item(
    value: Any,
    name: str,
    input_dtypes: Mapping[str, str],
    shapes: dict[str, tuple[int, ...]],
    values: dict[str, list[Any]],
) -> None:
    """Append one instance's value for input `name`, checking it has the first instance's shape."""
    if name not in input_dtypes:
        raise invalid_argument(f"JSON object: does not have named input: {name}")
    shape = _dense_shape(value)
    flat: list[Any] = []
    _fill(value, 0, shape, input_dtypes[name], flat)
    if name not in shapes:
        shapes[name], values[name] = shape, flat
        return
    if math.prod(shapes[name]) != len(flat):
        raise invalid_argument(f"Expecting tensor size: {math.prod(shapes[name])} but got: {len(flat)}")
    if shapes[name] != shape:
        raise invalid_argument(f"Expecting shape {_shape_text(shapes[name])} but got: {_shape_text(shape)}")
    values[name].extend(flat)


def _from_inputs(value: Any, input_dtypes: Mapping[str, str]) -> Tensors:
    """Read the columnar "inputs" value: one tensor, or an object of named tensors."""
    if not isinstance(value, dict) or _is_base64_object(value):
        if len(input_dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        named = {next(iter(input_dtypes)): value}
    else:
        named = {}
        for name in sorted(input_dtypes):
            if name not in value:
                raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
            named[name] = value[name]
    tensors = {}
    for name, item in named.items():
        shape = _dense_shape(item)
        flat: list[Any] = []
        _fill(item, 0, shape, input_dtypes[name], flat)
        tensors[name] = _array(flat, input_dtypes[name], shape)
    return tensors


def _dense_shape(value: Any) -> tuple[int, ...]:
    """The shape implied by a nested list, read along its first elements."""
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(dims)


def _fill(value: Any, level: int, shape: tuple[int, ...], dtype: str, out: list[Any]) -> None:
    """Append the leaves of a nested list to out, checking the list is dense with the given shape."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {_json_text(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if dtype != "DT_STRING":
                raise _type_error(value, dtype)
            out.append(_decode_base64(value))
        else:
            out.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _scalar(value: Any, dtype: str) -> Any:
    """Check one JSON scalar against dtype and return it as the Python value numpy takes."""
    if dtype not in NUMPY_DTYPES:
        raise ServingError(UNIMPLEMENTED, f"Conversion of JSON Value: {_json_text(value)} to type: {dtype}")
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if dtype == "DT_STRING":
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype == "DT_BOOL":
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype in _LOSSLESS_INT:
        if not is_number:
            raise _type_error(value, dtype)
        limit = float(np.finfo(NUMPY_DTYPES[dtype]).max)
        lossy = abs(value) > _LOSSLESS_INT[dtype] if isinstance(value, int) else abs(value) > limit
        if lossy and math.isfinite(value):
            kind = "float" if dtype == "DT_FLOAT" else "double"
            raise invalid_argument(
                f"Cannot convert JSON value: {_json_text(value)} to {kind} without loss of precision."
            )
        return value
    info = np.iinfo(NUMPY_DTYPES[dtype])
    if not isinstance(value, int) or isinstance(value, bool) or not info.min <= value <= info.max:
        raise _type_error(value, dtype)
    return value


def _decode_base64(value: dict[str, Any]) -> bytes:
    """Decode a {"b64": "..."} object to bytes."""
    if not _is_base64_object(value):
        raise invalid_argument(f"JSON Value: {_json_text(value)} not formatted correctly for base64 data")
    text = value[BASE64_KEY].strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _array(flat: list[Any], dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Build a numpy tensor of the TF dtype from flat leaves."""
    if dtype == "DT_STRING":
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    return np.array(flat, dtype=NUMPY_DTYPES[dtype]).reshape(shape)


def _is_base64_object(value: Any) -> bool:
    """True for exactly {"b64": <string>}."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(BASE64_KEY), str)


def _is_element_object(value: Any) -> bool:
    """True for a row-format object of named inputs (an object that is not a base64 value)."""
    return isinstance(value, dict) and not _is_base64_object(value)


def _json_text(value: Any) -> str:
    """A JSON value as text for an error message, shortened when long."""
    text = json.dumps(value, default=str)
    return text if len(text) <= MAX_ERROR_VALUE_CHARS else text[:MAX_ERROR_VALUE_CHARS] + "..."


def _json_type(value: Any) -> str:
    """The JSON type name rapidjson reports for a value."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    return "String" if isinstance(value, str) else "Number"


def _type_error(value: Any, dtype: str) -> ServingError:
    """The error for a JSON value of the wrong type for its tensor."""
    return invalid_argument(
        f"JSON Value: {_json_text(value)} Type: {_json_type(value)} is not of expected type: {dtype}"
    )


def format_error(value: Any, detail: str) -> ServingError:
    """The error for a request object that is not laid out as the API wants."""
    return invalid_argument(f"JSON Value: {_json_text(value)} {detail}")


def _shape_text(shape: tuple[int, ...]) -> str:
    """A shape as TF Serving prints it: [2,3]."""
    return "[" + ",".join(str(dim) for dim in shape) + "]"
