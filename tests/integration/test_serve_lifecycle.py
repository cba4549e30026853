"""`imgsieve serve` over a model's life: before any version exists, picking up new versions while
serving, a version that fails to load, shutdown on SIGTERM, and a model trained by `imgsieve train`."""

from __future__ import annotations

import base64
import io
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.integration.serving import export_tiny_model, http_json, running_server, server_process

pytestmark = pytest.mark.integration

MODEL = "tiny"
POLL_SECONDS = 0.2
WAIT_SECONDS = 60.0


def image_body(count: int = 1) -> dict[str, Any]:
    """A row-format predict request for count small JPEGs."""
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), (90, 160, 30)).save(buffer, "JPEG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"instances": [{"b64": encoded}] * count}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll condition until it holds, failing the test after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def drop_in(source_version: Path, base: Path, version: int) -> None:
    """Publish a version directory the way the exporter does: copy aside, then rename into place."""
    staging = base / f".export-copy-{version}"
    shutil.copytree(source_version, staging)
    os.rename(staging, base / str(version))


def states(url: str) -> dict[str, str]:
    """Version -> state, from the status API."""
    status, answer = http_json("GET", f"{url}/v1/models/{MODEL}")
    return (
        {entry["version"]: entry["state"] for entry in answer["model_version_status"]}
        if status == 200
        else {}
    )


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version directories to drop into servers: "three" (3 classes) and "two" (2 classes)."""
    root = tmp_path_factory.mktemp("exports")
    return {
        "three": export_tiny_model(root / "three", ["cat", "dog", "eel"], seed=1),
        "two": export_tiny_model(root / "two", ["ant", "bee"], seed=2),
    }


def test_server_without_a_version_answers_404_until_one_is_dropped_in(
    tmp_path: Path, exports: dict[str, Path]
) -> None:
    base = tmp_path / MODEL
    (base / ".export-abc123").mkdir(parents=True)  # an exporter's staging dir: never a version
    (base / "notes").mkdir()
    with server_process(base, MODEL, wait_for_version=False, poll_seconds=POLL_SECONDS) as server:
        url = server.url
        assert http_json("GET", f"{url}/v1/models/{MODEL}") == (
            404,
            {"error": f"Could not find any versions of model {MODEL}"},
        )
        not_found = (404, {"error": f"Servable not found for request: Latest({MODEL})"})
        assert http_json("GET", f"{url}/v1/models/{MODEL}/metadata") == not_found
        assert http_json("POST", f"{url}/v1/models/{MODEL}:predict", image_body()) == not_found

        drop_in(exports["three"], base, 1)
        wait_for(lambda: http_json("GET", f"{url}/v1/models/{MODEL}/metadata")[0] == 200, "version 1")
        assert states(url) == {"1": "AVAILABLE"}
        status, answer = http_json("POST", f"{url}/v1/models/{MODEL}:predict", image_body())
        assert status == 200 and answer["predictions"][0]["classes"] == ["cat", "dog", "eel"]
        assert f"model {MODEL} version 1 is AVAILABLE" in server.log()


def test_new_version_is_picked_up_while_the_old_one_serves(tmp_path: Path, exports: dict[str, Path]) -> None:
    base = tmp_path / MODEL
    drop_in(exports["three"], base, 1)
    with server_process(base, MODEL, poll_seconds=POLL_SECONDS) as server:
        url = server.url
        answers: list[tuple[int, Any]] = []
        stop = threading.Event()

        def keep_predicting() -> None:
            while not stop.is_set():
                answers.append(http_json("POST", f"{url}/v1/models/{MODEL}:predict", image_body()))

        client = threading.Thread(target=keep_predicting)
        client.start()
        try:
            drop_in(exports["two"], base, 2)
            wait_for(lambda: states(url) == {"2": "AVAILABLE", "1": "END"}, "version 2 to replace version 1")
        finally:
            stop.set()
            client.join()
        assert answers and all(status == 200 for status, _ in answers), "requests failed during the switch"
        status, answer = http_json("POST", f"{url}/v1/models/{MODEL}:predict", image_body())
        assert status == 200 and answer["predictions"][0]["classes"] == ["ant", "bee"]
        assert http_json("GET", f"{url}/v1/models/{MODEL}/metadata")[1]["model_spec"]["version"] == "2"
        assert http_json("POST", f"{url}/v1/models/{MODEL}/versions/1:predict", image_body())[0] == 404
        status, answer = http_json("GET", f"{url}/v1/models/{MODEL}")
        assert [entry["version"] for entry in answer["model_version_status"]] == ["2", "1"]
        assert f"model {MODEL} version 2 is AVAILABLE" in server.log()
        assert f"model {MODEL} version 1 unloaded" in server.log()


def test_version_that_fails_to_load_is_reported_and_the_old_one_keeps_serving(
    tmp_path: Path, exports: dict[str, Path]
) -> None:
    base = tmp_path / MODEL
    drop_in(exports["three"], base, 1)
    with running_server(base, MODEL, poll_seconds=POLL_SECONDS) as url:
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"\x00 this is not a SavedModel")
        os.rename(broken, base / "2")
        wait_for(lambda: states(url).get("2") == "END", "version 2 to fail")
        status, answer = http_json("GET", f"{url}/v1/models/{MODEL}/versions/2")
        assert status == 200
        [entry] = answer["model_version_status"]
        assert entry["status"]["error_code"] == "DATA_LOSS"
        assert "saved_model.pb" in entry["status"]["error_message"]
        assert states(url)["1"] == "AVAILABLE"
        status, answer = http_json("POST", f"{url}/v1/models/{MODEL}:predict", image_body())
        assert status == 200 and answer["predictions"][0]["classes"] == ["cat", "dog", "eel"]


def test_sigterm_finishes_requests_in_flight_then_exits_0(tmp_path: Path, exports: dict[str, Path]) -> None:
    base = tmp_path / MODEL
    drop_in(exports["three"], base, 1)
    # A long batch timeout keeps the request waiting in the server when SIGTERM arrives.
    with server_process(base, MODEL, batch_timeout_ms=1500) as server, ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(http_json, "POST", f"{server.url}/v1/models/{MODEL}:predict", image_body(2))
        time.sleep(0.5)
        assert not in_flight.done()
        assert server.stop() == 0
        status, answer = in_flight.result()
        assert status == 200 and len(answer["predictions"]) == 2
        with pytest.raises(OSError):
            http_json("GET", f"{server.url}/v1/models/{MODEL}", timeout=5)
        assert "stopped" in server.log()


@pytest.mark.slow
def test_serves_a_model_trained_by_the_train_command(tiny_model: Path, sample_unlabelled: Path) -> None:
    from imgsieve.model.export import read_model_info

    class_names = read_model_info(tiny_model / "1")["class_names"]
    photos = sorted(sample_unlabelled.glob("*.jpg"))[:6]
    instances = [{"b64": base64.b64encode(photo.read_bytes()).decode("ascii")} for photo in photos]
    with running_server(tiny_model, "tiny") as url:
        status, answer = http_json("POST", f"{url}/v1/models/tiny:predict", {"instances": instances})
        assert status == 200, answer
        assert len(answer["predictions"]) == len(photos)
        for row in answer["predictions"]:
            assert row["classes"] == class_names
            assert row["top_class"] in class_names
            assert abs(sum(row["scores"]) - 1.0) < 1e-4
