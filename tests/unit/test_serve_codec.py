"""Reading :predict requests as TF Serving does: JSON errors, row and columnar formats, base64, dtypes."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import pytest

from imgsieve.serve import codec
from imgsieve.serve.status import ServingError

IMAGE = {"image_bytes": "DT_STRING"}


def b64(data: bytes) -> dict[str, str]:
    """A binary value in the API's form."""
    return {"b64": base64.b64encode(data).decode("ascii")}


def error_of(call: Any, *args: Any) -> ServingError:
    """The ServingError a call raises."""
    with pytest.raises(ServingError) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"  \n", "JSON Parse error: The document is empty"),
        (b"{bad", "JSON Parse error: Missing a name for object member. at offset: 1"),
        (b'{"a": }', "JSON Parse error: Invalid value. at offset: 6"),
        (
            b'{"a": 1} x',
            "JSON Parse error: The document root must not be followed by other values. at offset: 9",
        ),
        (b"[1, 2]", "JSON Value: [1, 2] Is not object"),
        (b"\xff", "JSON Parse error: Invalid encoding in string. at offset: 0"),
    ],
)
def test_parse_json_errors(body: bytes, message: str) -> None:
    error = error_of(codec.parse_json, body)
    assert (error.code, error.message, error.http_status) == ("INVALID_ARGUMENT", message, 400)


def test_parse_json_accepts_nan_and_infinity() -> None:
    doc = codec.parse_json(b'{"inputs": [NaN, Infinity, -Infinity]}')
    assert math.isnan(doc["inputs"][0]) and doc["inputs"][1:] == [math.inf, -math.inf]


def test_signature_name() -> None:
    assert codec.signature_name({}) == ""
    assert codec.signature_name({"signature_name": "serving_default"}) == "serving_default"
    error = error_of(codec.signature_name, {"signature_name": 100})
    assert error.message == 'JSON Value: {"signature_name": 100} not formatted correctly. ' + (
        "'signature_name' key must be a string value."
    )


@pytest.mark.parametrize(
    ("doc", "fmt"),
    [
        ({"instances": [b64(b"one"), b64(b"two")]}, codec.ROW),
        ({"instances": [{"image_bytes": b64(b"one")}, {"image_bytes": b64(b"two")}]}, codec.ROW),
        ({"instances": ["one", "two"]}, codec.ROW),
        ({"inputs": {"image_bytes": [b64(b"one"), b64(b"two")]}}, codec.COLUMNAR),
        ({"inputs": [b64(b"one"), {"b64": "dHdv"}]}, codec.COLUMNAR),
    ],
)
def test_decode_string_inputs(doc: dict[str, Any], fmt: str) -> None:
    got_fmt, tensors = codec.decode_inputs(doc, IMAGE)
    assert got_fmt == fmt
    assert list(tensors) == ["image_bytes"]
    assert tensors["image_bytes"].shape == (2,)
    assert tensors["image_bytes"].tolist() == [b"one", b"two"]


def test_decode_base64_without_padding() -> None:
    _, tensors = codec.decode_inputs({"instances": [{"b64": "b25l"}, {"b64": "dHdvMg"}]}, IMAGE)
    assert tensors["image_bytes"].tolist() == [b"one", b"two2"]


def test_decode_numeric_and_several_inputs() -> None:
    dtypes = {"x": "DT_FLOAT", "n": "DT_INT64", "ok": "DT_BOOL"}
    row = {"instances": [{"x": [1, 2.5], "n": 3, "ok": True}, {"x": [3, 4], "n": -1, "ok": False}]}
    _, tensors = codec.decode_inputs(row, dtypes)
    assert tensors["x"].dtype == np.float32 and tensors["x"].tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert tensors["n"].tolist() == [3, -1] and tensors["ok"].tolist() == [True, False]
    _, columnar = codec.decode_inputs({"inputs": {"x": [[1, 2]], "n": [7, 8, 9], "ok": [True]}}, dtypes)
    assert columnar["x"].shape == (1, 2) and columnar["n"].shape == (3,)


@pytest.mark.parametrize(
    ("doc", "dtypes", "message"),
    [
        ({}, IMAGE, "Missing 'inputs' or 'instances' key"),
        (
            {"instances": {}},
            IMAGE,
            """JSON Value: {"instances": {}} Excepting 'instances' to be an list/array""",
        ),
        ({"instances": []}, IMAGE, """JSON Value: {"instances": []} No values in 'instances' array"""),
        (
            {"instances": [b64(b"x")], "inputs": []},
            IMAGE,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",
        ),
        (
            {"instances": [{"image": b64(b"x")}]},
            IMAGE,
            "Failed to process element: 0 key: image of 'instances' list. Error: INVALID_ARGUMENT: "
            "JSON object: does not have named input: image",
        ),
        ({"inputs": {"image": [b64(b"x")]}}, IMAGE, "Missing named input: image_bytes in 'inputs' object."),
        ({"instances": [{"b64": "%%%"}]}, IMAGE, "Unable to base64 decode"),
        (
            {"inputs": [{"b64": 5}]},
            IMAGE,
            """JSON Value: {"b64": 5} not formatted correctly for base64 data""",
        ),
        (
            {"instances": [b64(b"x"), {"image_bytes": b64(b"y")}]},
            IMAGE,
            "Expecting value/list but got object at item 1",
        ),
        ({"instances": [[1, 2], [1, 2, 3]]}, {"x": "DT_FLOAT"}, "Expecting tensor size: 2 but got: 3"),
        ({"instances": [[[1, 2]], [[1], [2]]]}, {"x": "DT_FLOAT"}, "Expecting shape [1,2] but got: [2,1]"),
        ({"inputs": [[1, 2], [3]]}, {"x": "DT_FLOAT"}, "Encountered list at unexpected size: 1 at level: 1"),
        ({"inputs": [1, [2]]}, {"x": "DT_FLOAT"}, "Encountered list at unexpected level: 1 expected < 1"),
        (
            {"inputs": ["a"]},
            {"x": "DT_FLOAT"},
            'JSON Value: "a" Type: String is not of expected type: DT_FLOAT',
        ),
        (
            {"inputs": [1.5]},
            {"n": "DT_INT32"},
            "JSON Value: 1.5 Type: Number is not of expected type: DT_INT32",
        ),
        (
            {"inputs": [300]},
            {"n": "DT_UINT8"},
            "JSON Value: 300 Type: Number is not of expected type: DT_UINT8",
        ),
        (
            {"inputs": [16777217]},
            {"x": "DT_FLOAT"},
            "Cannot convert JSON value: 16777217 to float without loss",
        ),
        (
            {"instances": [1]},
            {"a": "DT_FLOAT", "b": "DT_FLOAT"},
            "instances is a plain list, but expecting list",
        ),
        ({"instances": [{"a": 1}]}, {"a": "DT_FLOAT", "b": "DT_FLOAT"}, "must only have keys: a,b"),
    ],
)
def test_decode_errors(doc: dict[str, Any], dtypes: dict[str, str], message: str) -> None:
    error = error_of(codec.decode_inputs, doc, dtypes)
    assert error.code == "INVALID_ARGUMENT"
    assert message in error.message
