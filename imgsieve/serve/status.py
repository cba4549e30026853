"""Errors of the model server as TensorFlow Serving reports them: a canonical error code
(INVALID_ARGUMENT, NOT_FOUND, ...) and a message, answered as {"error": message} with the HTTP status
that TF Serving's REST layer maps that code to.
"""

from __future__ import annotations

import re

OK = "OK"
CANCELLED = "CANCELLED"
UNKNOWN = "UNKNOWN"
INVALID_ARGUMENT = "INVALID_ARGUMENT"
NOT_FOUND = "NOT_FOUND"
INTERNAL = "INTERNAL"
UNAVAILABLE = "UNAVAILABLE"
DATA_LOSS = "DATA_LOSS"
UNIMPLEMENTED = "UNIMPLEMENTED"

# tensorflow/core/protobuf/error_codes.proto, in number order.
CODE_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)

# tensorflow_serving/model_servers/http_server.cc, ToHTTPStatusCode().
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# Python's TF wraps an op's message in eager-mode context that the C++ server never shows.
_TF_PREAMBLE = re.compile(
    r"^Graph execution error:\s*(Detected at node .*?\n<stack traces unavailable>\n)?", re.S
)
_TF_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*$")


class ServingError(Exception):
    """A request or load failure with its canonical error code, e.g. ServingError(NOT_FOUND, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving answers this error with."""
        return HTTP_STATUS.get(self.code, 500)


def invalid_argument(message: str) -> ServingError:
    """An INVALID_ARGUMENT error (HTTP 400)."""
    return ServingError(INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """A NOT_FOUND error (HTTP 404)."""
    return ServingError(NOT_FOUND, message)


def from_exception(exc: BaseException) -> ServingError:
    """Turn a TensorFlow OpError (or any other exception) into a ServingError with its code."""
    if isinstance(exc, ServingError):
        return exc
    error_code = getattr(exc, "error_code", None)
    message = getattr(exc, "message", None)
    if isinstance(error_code, int) and 0 <= error_code < len(CODE_NAMES) and isinstance(message, str):
        text = _TF_OP_SUFFIX.sub("", _TF_PREAMBLE.sub("", message)).strip()
        return ServingError(CODE_NAMES[error_code], text)
    return ServingError(UNKNOWN, f"{type(exc).__name__}: {exc}")
