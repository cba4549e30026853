"""`imgsieve serve` as a real process over real HTTP: TF Serving's status, metadata and predict APIs,
its error codes and messages, server-side batching and its metrics."""

from __future__ import annotations

import base64
import io
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.serving import export_tiny_model, http_json, running_server

pytestmark = pytest.mark.integration

MODEL = "tiny"
CLASSES = ["cat", "dog", "eel"]
OUTPUTS = ["classes", "scores", "top_class", "top_score"]
MAX_BATCH = 8


def jpeg(shade: int) -> bytes:
    """A small JPEG whose colour depends on shade, so different shades score differently."""
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (shade % 256, (shade * 7) % 256, (shade * 13) % 256)).save(buffer, "JPEG")
    return buffer.getvalue()


def b64(data: bytes) -> dict[str, str]:
    """A binary value as TF Serving's REST API takes it."""
    return {"b64": base64.b64encode(data).decode("ascii")}


def reference_scores(version_dir: Path, images: list[bytes]) -> np.ndarray:
    """Scores of the same SavedModel called in this process, without the server."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    return np.asarray(signature(image_bytes=tf.constant(images))["scores"])


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on the Prometheus page, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"{url}/monitoring/prometheus/metrics") as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def batch_counts(url: str) -> tuple[float, float]:
    """(model calls so far, model calls that held a single item) from the batch size histogram."""
    samples = metric_samples(url)
    calls = samples[("imgsieve_serve_batch_size_count", (("model", MODEL),))]
    singles = samples[("imgsieve_serve_batch_size_bucket", (("le", "1.0"), ("model", MODEL)))]
    return calls, singles


@pytest.fixture(scope="module")
def model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base path holding version 1 of a tiny three-class model."""
    base = tmp_path_factory.mktemp("serve") / MODEL
    export_tiny_model(base, CLASSES)
    return base


@pytest.fixture(scope="module")
def url(model_base: Path) -> Iterator[str]:
    """One server for the tests that do not change the model directory."""
    with running_server(model_base, MODEL, max_batch_size=MAX_BATCH, batch_timeout_ms=20) as base_url:
        yield base_url


def test_status_lists_the_available_version(url: str) -> None:
    status, answer = http_json("GET", f"{url}/v1/models/{MODEL}")
    assert status == 200
    available = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    assert answer == {"model_version_status": [available]}
    assert http_json("GET", f"{url}/v1/models/{MODEL}/versions/1") == (200, answer)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (f"/v1/models/{MODEL}/versions/7", f"Could not find version 7 of model {MODEL}"),
        ("/v1/models/nope", "Could not find any versions of model nope"),
        (f"/v1/models/{MODEL}/versions/9/metadata", f"Servable not found for request: Specific({MODEL}, 9)"),
        ("/v1/models/nope/metadata", "Servable not found for request: Latest(nope)"),
    ],
)
def test_unknown_model_or_version_is_404(url: str, path: str, message: str) -> None:
    assert http_json("GET", f"{url}{path}") == (404, {"error": message})


def test_metadata_describes_the_serving_signature(url: str) -> None:
    status, answer = http_json("GET", f"{url}/v1/models/{MODEL}/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    signature = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"] == {
        "image_bytes": {
            "dtype": "DT_STRING",
            "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
            "name": "serving_default_image_bytes:0",
        }
    }
    assert sorted(signature["outputs"]) == OUTPUTS
    assert signature["outputs"]["scores"]["dtype"] == "DT_FLOAT"
    assert signature["outputs"]["scores"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": str(len(CLASSES)), "name": ""},
    ]
    assert http_json("GET", f"{url}/v1/models/{MODEL}/versions/1/metadata") == (200, answer)


@pytest.mark.parametrize("shape", ["bare", "named"])
def test_predict_row_format(url: str, model_base: Path, shape: str) -> None:
    images = [jpeg(shade) for shade in (10, 120, 250)]
    instances = [b64(image) if shape == "bare" else {"image_bytes": b64(image)} for image in images]
    status, answer = http_json("POST", f"{url}/v1/models/{MODEL}:predict", {"instances": instances})
    assert status == 200, answer
    predictions = answer["predictions"]
    assert [sorted(row) for row in predictions] == [OUTPUTS] * 3
    assert all(row["classes"] == CLASSES for row in predictions)
    expected = reference_scores(model_base / "1", images)
    np.testing.assert_allclose([row["scores"] for row in predictions], expected, rtol=1e-5)
    assert [row["top_class"] for row in predictions] == [CLASSES[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose([row["top_score"] for row in predictions], expected.max(axis=1), rtol=1e-5)


@pytest.mark.parametrize("shape", ["named", "bare"])
def test_predict_columnar_format(url: str, model_base: Path, shape: str) -> None:
    images = [jpeg(shade) for shade in (30, 200)]
    values = [b64(image) for image in images]
    inputs: Any = {"image_bytes": values} if shape == "named" else values
    status, answer = http_json("POST", f"{url}/v1/models/{MODEL}/versions/1:predict", {"inputs": inputs})
    assert status == 200, answer
    outputs = answer["outputs"]
    assert sorted(outputs) == OUTPUTS
    assert outputs["classes"] == [CLASSES, CLASSES]
    np.testing.assert_allclose(outputs["scores"], reference_scores(model_base / "1", images), rtol=1e-5)
    assert len(outputs["top_class"]) == len(outputs["top_score"]) == 2


def test_predict_with_signature_name(url: str) -> None:
    body: dict[str, Any] = {"signature_name": "serving_default", "instances": [b64(jpeg(1))]}
    status, answer = http_json("POST", f"{url}/v1/models/{MODEL}:predict", body)
    assert status == 200 and len(answer["predictions"]) == 1
    body["signature_name"] = "nope"
    error = 'Serving signature name: "nope" not found in signature def'
    assert http_json("POST", f"{url}/v1/models/{MODEL}:predict", body) == (400, {"error": error})


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (f"{MODEL}:predict", b"{not json", 400, "JSON Parse error: Missing a name for object member."),
        (f"{MODEL}:predict", b"", 400, "JSON Parse error: The document is empty"),
        (
            f"{MODEL}:predict",
            {"instances": [{"image": b64(jpeg(1))}]},
            400,
            "does not have named input: image",
        ),
        (f"{MODEL}:predict", {"inputs": {"image": [b64(jpeg(1))]}}, 400, "Missing named input: image_bytes"),
        (f"{MODEL}:predict", {"instances": [b64(b"not an image")]}, 400, "Unknown image file format"),
        (f"{MODEL}:predict", {"instances": [{"b64": "%%%"}]}, 400, "Unable to base64 decode"),
        (f"{MODEL}:predict", {"examples": []}, 400, "Missing 'inputs' or 'instances' key"),
        (
            f"{MODEL}:predict",
            {"instances": [], "inputs": []},
            400,
            "expecting only one of 'inputs' or 'instances'",
        ),
        (
            f"{MODEL}/labels/stable:predict",
            {"instances": []},
            400,
            "Unrecognized servable version label: stable",
        ),
        (
            f"{MODEL}/versions/2:predict",
            {"instances": []},
            404,
            f"Servable not found for request: Specific({MODEL}, 2)",
        ),
        ("nope:predict", {"instances": [b64(jpeg(1))]}, 404, "Servable not found for request: Latest(nope)"),
    ],
)
def test_bad_predict_requests(url: str, path: str, body: Any, status: int, message: str) -> None:
    got_status, answer = http_json("POST", f"{url}/v1/models/{path}", body)
    assert (got_status, list(answer)) == (status, ["error"]), answer
    assert message in answer["error"]


def test_classify_on_a_predict_signature_is_400(url: str) -> None:
    error = (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )
    body = {"examples": [{"image_bytes": b64(jpeg(1))}]}
    assert http_json("POST", f"{url}/v1/models/{MODEL}:classify", body) == (400, {"error": error})


def test_malformed_path_is_400(url: str) -> None:
    error = f"Malformed request: GET /v1/models/{MODEL}:predict"
    assert http_json("GET", f"{url}/v1/models/{MODEL}:predict") == (400, {"error": error})


def test_request_larger_than_max_batch_size_is_chunked(url: str, model_base: Path) -> None:
    images = [jpeg(shade * 11) for shade in range(MAX_BATCH * 2 + 4)]
    body = {"instances": [b64(image) for image in images]}
    calls_before, _ = batch_counts(url)
    status, answer = http_json("POST", f"{url}/v1/models/{MODEL}:predict", body)
    assert status == 200, answer
    expected = reference_scores(model_base / "1", images)
    np.testing.assert_allclose([row["scores"] for row in answer["predictions"]], expected, rtol=1e-5)
    calls_after, _ = batch_counts(url)
    assert calls_after - calls_before >= 3  # 20 images in chunks of at most 8


def test_concurrent_clients_are_batched(url: str) -> None:
    clients, requests_each = 32, 3
    images = [jpeg(shade) for shade in range(clients)]
    calls_before, singles_before = batch_counts(url)

    def client(index: int) -> list[tuple[int, Any]]:
        body = {"instances": [b64(images[index])]}
        return [http_json("POST", f"{url}/v1/models/{MODEL}:predict", body) for _ in range(requests_each)]

    with ThreadPoolExecutor(clients) as pool:
        answers = [answer for batch in pool.map(client, range(clients)) for answer in batch]
    assert all(status == 200 and len(answer["predictions"]) == 1 for status, answer in answers)
    calls_after, singles_after = batch_counts(url)
    calls = calls_after - calls_before
    merged_calls = calls - (singles_after - singles_before)
    assert calls < clients * requests_each, "every request had a model call of its own"
    assert merged_calls > 0
    images_total = metric_samples(url)[
        ("imgsieve_serve_images_predicted_total", (("model", MODEL), ("version", "1")))
    ]
    assert images_total >= clients * requests_each


def test_bad_image_merged_with_good_requests_fails_alone(model_base: Path) -> None:
    # A long batch timeout makes sure the concurrent requests share one model call.
    with running_server(model_base, MODEL, max_batch_size=64, batch_timeout_ms=500) as base_url:
        bodies = [{"instances": [b64(jpeg(shade))]} for shade in range(12)]
        bodies.insert(5, {"instances": [b64(b"plain text, not an image")]})
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(
                pool.map(
                    lambda body: http_json("POST", f"{base_url}/v1/models/{MODEL}:predict", body), bodies
                )
            )
        assert answers[5][0] == 400 and "Unknown image file format" in answers[5][1]["error"]
        good = answers[:5] + answers[6:]
        assert all(status == 200 and len(answer["predictions"]) == 1 for status, answer in good)
        assert metric_samples(base_url)[("imgsieve_serve_batch_splits_total", (("model", MODEL),))] >= 1


def test_prometheus_page_counts_requests_by_api_and_code(url: str) -> None:
    http_json("GET", f"{url}/v1/models/{MODEL}")
    http_json("GET", f"{url}/v1/models/{MODEL}/versions/5")
    with urllib.request.urlopen(f"{url}/monitoring/prometheus/metrics") as response:
        assert response.headers["Content-Type"].startswith("text/plain")
    samples = metric_samples(url)
    assert (
        samples[("imgsieve_serve_requests_total", (("api", "status"), ("code", "200"), ("model", MODEL)))]
        >= 1
    )
    assert (
        samples[("imgsieve_serve_requests_total", (("api", "status"), ("code", "404"), ("model", MODEL)))]
        >= 1
    )
    assert (
        samples[("imgsieve_serve_request_latency_seconds_count", (("api", "status"), ("model", MODEL)))] >= 2
    )
    assert samples[("imgsieve_serve_model_version", (("model", MODEL),))] == 1
    assert ("imgsieve_serve_model_call_seconds_count", (("model", MODEL),)) in samples
