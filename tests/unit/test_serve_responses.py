"""Writing :predict answers as TF Serving does: row and columnar formats, floats, strings, bytes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from imgsieve.serve import responses
from imgsieve.serve.codec import COLUMNAR, ROW
from imgsieve.serve.status import ServingError


def error_message(outputs: dict[str, Any], fmt: str) -> str:
    """The message of the ServingError that encoding outputs raises."""
    with pytest.raises(ServingError) as caught:
        responses.encode_outputs(outputs, fmt)
    return caught.value.message


def test_encode_row_format_with_several_outputs() -> None:
    outputs = {
        "scores": np.array([[0.2, 0.8], [1 / 3, 2 / 3]], dtype=np.float32),
        "top_class": np.array([b"dog", "caf\u00e9".encode()], dtype=object),
    }
    assert responses.encode_outputs(outputs, ROW) == {
        "predictions": [
            {"scores": [0.2, 0.8], "top_class": "dog"},
            {"scores": [0.333333343, 0.666666687], "top_class": "caf\u00e9"},
        ]
    }


def test_encode_single_output_and_columnar_format() -> None:
    outputs = {"y": np.array([1.0, 2.5], dtype=np.float32)}
    assert responses.encode_outputs(outputs, ROW) == {"predictions": [1.0, 2.5]}
    assert responses.encode_outputs(outputs, COLUMNAR) == {"outputs": [1.0, 2.5]}
    outputs["n"] = np.array([3, 4], dtype=np.int64)
    assert responses.encode_outputs(outputs, COLUMNAR) == {"outputs": {"n": [3, 4], "y": [1.0, 2.5]}}


def test_encode_bytes_outputs_as_base64_and_special_floats() -> None:
    outputs = {
        "thumb_bytes": np.array([b"\x00\xff"], dtype=object),
        "x": np.array([math.nan], dtype=np.float64),
    }
    row = responses.encode_outputs(outputs, ROW)["predictions"][0]
    assert row["thumb_bytes"] == {"b64": "AP8="}
    assert math.isnan(row["x"])


def test_encode_errors() -> None:
    assert error_message({}, ROW) == "Cannot convert empty tensor map to JSON"
    assert (
        error_message({"y": np.array(1.0, dtype=np.float32)}, ROW)
        == "Tensor name: y has no shape information "
    )
    uneven = {"a": np.zeros(2), "b": np.zeros(3)}
    assert error_message(uneven, ROW) == "Tensor name: b has inconsistent batch size: 3 expecting: 2"
    assert error_message({"a": np.zeros((0, 2))}, ROW) == "Tensor name: a has invalid batch size: 0"
