"""Run `imgsieve serve` as a real subprocess for tests: `running_server(base, name)` starts it on a free
port, waits until the model's metadata answers 200 (TF Serving's readiness probe), yields the base
URL, and on exit sends SIGTERM and checks that the server stopped cleanly with status 0.

    with running_server(base_path, "tiny", max_batch_size=8) as url:
        urllib.request.urlopen(f"{url}/v1/models/tiny")

`export_tiny_model(base, classes)` exports a small untrained classifier through the real exporter, for
tests that need a model server but not a trained model.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port

TINY_IMAGE_SIZE = 32
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 60.0
LOG_TAIL_CHARS = 4000


@dataclass
class ServerProcess:
    """A running `imgsieve serve`: its URL, process and log file (stdout and stderr together)."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """Send SIGTERM and return the exit status once the process has ended."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server did not stop on SIGTERM:\n{self.log()[-LOG_TAIL_CHARS:]}") from None


def http_json(method: str, url: str, body: Any = None, timeout: float = 60.0) -> tuple[int, Any]:
    """Send a request (body as JSON, or raw bytes) and return (HTTP status, parsed JSON answer)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@contextlib.contextmanager
def server_process(
    base_path: Path, model_name: str, *, wait_for_version: bool = True, **flags: Any
) -> Iterator[ServerProcess]:
    """Start `imgsieve serve` (flags as keywords: max_batch_size=8 -> --max-batch-size 8) and stop it after.

    With wait_for_version=False it only waits until the server answers, for servers started on an
    empty base path.
    """
    port = free_port()
    argv = [sys.executable, "-m", "imgsieve", "serve", "--model-base-path", str(base_path)]
    argv += ["--model-name", model_name, "--host", "127.0.0.1", "--port", str(port)]
    for name, value in flags.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory(prefix="imgsieve-serve-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
        try:
            _wait_until_ready(server, model_name, wait_for_version)
            yield server
        finally:
            status = server.stop()
        assert status == 0, f"server exited with {status}:\n{server.log()[-LOG_TAIL_CHARS:]}"


@contextlib.contextmanager
def running_server(base_path: Path, model_name: str, **flags: Any) -> Iterator[str]:
    """Start `imgsieve serve` on a free port, yield http://127.0.0.1:PORT once the model is ready."""
    with server_process(base_path, model_name, **flags) as server:
        yield server.url


def _wait_until_ready(server: ServerProcess, model_name: str, wait_for_version: bool) -> None:
    """Poll the metadata URL until it answers 200 (or, without wait_for_version, answers at all)."""
    url = f"{server.url}/v1/models/{model_name}/metadata"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if server.process.poll() is not None:
            raise AssertionError(
                f"server exited with {server.process.returncode}:\n{server.log()[-LOG_TAIL_CHARS:]}"
            )
        try:
            status, _ = http_json("GET", url, timeout=5)
            if status == 200 or not wait_for_version:
                return
        except (OSError, ValueError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise AssertionError(
                f"server not ready after {START_TIMEOUT_SECONDS} s:\n{server.log()[-LOG_TAIL_CHARS:]}"
            )
        time.sleep(0.1)


def export_tiny_model(base_path: Path, class_names: list[str], seed: int = 0) -> Path:
    """Export a tiny random classifier (32 px, conv -> pooling -> softmax) as the next version under base_path."""
    import keras

    from imgsieve.model.export import export_model

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 3))
    features = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(len(class_names), activation="softmax")(keras.layers.Rescaling(0.01)(pooled))
    return export_model(keras.Model(inputs, outputs), class_names, base_path, TINY_IMAGE_SIZE)
