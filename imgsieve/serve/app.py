"""The REST server: TensorFlow Serving's /v1 API on aiohttp, plus Prometheus metrics.

Routes, as TF Serving matches them (case-insensitive paths; anything else under /v1/ is a
"Malformed request", HTTP 400):
    GET  /v1/models/NAME[/versions/N]                 model_version_status of all versions, or of N
    GET  /v1/models/NAME[/versions/N]/metadata        signature_def metadata of the latest or of N
    POST /v1/models/NAME[/versions/N]:predict         row ("instances") or columnar ("inputs") predict
    GET  /monitoring/prometheus/metrics               Prometheus text exposition
/labels/LABEL works where /versions/N does, and answers that the label is unknown: labels come from
a model config file, which this server does not take.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Hashable
from typing import Any, cast
from urllib.parse import unquote

from aiohttp import web

from imgsieve.serve import codec, responses
from imgsieve.serve.batcher import Batcher, Tensors, batch_dimension
from imgsieve.serve.metrics import Metrics
from imgsieve.serve.registry import ModelRegistry
from imgsieve.serve.servable import DEFAULT_SIGNATURE, Servable
from imgsieve.serve.status import HTTP_STATUS, INTERNAL, UNIMPLEMENTED, ServingError, invalid_argument

V1_PATH = re.compile(r"/v1/.*", re.I)
PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.I
)
STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.I
)
METRICS_PATH = "/monitoring/prometheus/metrics"
MAX_REQUEST_BYTES = 256 * 2**20  # 64 photos as base64 JSON are ~10 MB; aiohttp's default is 1 MB
INT64_MAX = 2**63 - 1
OTHER_MODEL = "_other"  # metrics label for names this server does not serve, to bound label values

log = logging.getLogger(__name__)


class RestApi:
    """Request handlers bound to one model registry, its batcher and its metrics."""

    def __init__(
        self, registry: ModelRegistry, metrics: Metrics, max_batch_size: int, batch_timeout: float
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.batch_timeout = batch_timeout
        self._batcher: Batcher | None = None

    async def batching(self, app: web.Application) -> AsyncIterator[None]:
        """Run the batcher for the app's lifetime; it stops after the last request is answered."""
        model = self.registry.name
        self._batcher = Batcher(
            self._model_call,
            self.max_batch_size,
            self.batch_timeout,
            on_split=lambda _: self.metrics.batch_splits.labels(model).inc(),
        )
        yield
        await self._batcher.close()

    async def handle_v1(self, request: web.Request) -> web.StreamResponse:
        """Answer any /v1/ request with JSON, or {"error": ...} and TF Serving's HTTP status."""
        start = time.perf_counter()
        path = request.rel_url.raw_path
        if not V1_PATH.fullmatch(path):
            raise web.HTTPNotFound()
        seen = {"api": "unknown", "model": ""}  # filled in by _dispatch as soon as the path is read
        try:
            answer = await self._dispatch(request, path, seen)
            status = 200
        except ServingError as exc:
            answer, status = {"error": exc.message}, exc.http_status
        except Exception as exc:  # answer in TF Serving's shape even when this server has a bug
            log.exception("%s %s failed", request.method, path)
            answer, status = {"error": f"{type(exc).__name__}: {exc}"}, HTTP_STATUS[INTERNAL]
        model = seen["model"] if seen["model"] == self.registry.name else OTHER_MODEL
        self.metrics.requests.labels(model, seen["api"], str(status)).inc()
        self.metrics.request_latency.labels(model, seen["api"]).observe(time.perf_counter() - start)
        return web.Response(text=json.dumps(answer), status=status, content_type="application/json")

    async def handle_metrics(self, request: web.Request) -> web.StreamResponse:
        """The Prometheus exposition page."""
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _dispatch(self, request: web.Request, path: str, seen: dict[str, str]) -> dict[str, Any]:
        """Route a /v1 request and return its answer; note its API and model name in seen."""
        method = request.method
        if method == "POST" and (match := PREDICT_PATH.fullmatch(path)):
            seen.update(api=match[4].lower(), model=unquote(match[1]))
            name, version, label = _model_spec(match)
            body = await request.read()
            if match[4] == "predict":
                return await self._predict(name, version, label, body)
            if match[4] in ("classify", "regress"):
                return self._classify_or_regress(match[4], name, version, label, body)
        elif method == "GET" and (match := STATUS_PATH.fullmatch(path)):
            api = "metadata" if match[4] == "metadata" else "status"
            seen.update(api=api, model=unquote(match[1] or ""))
            name, version, label = _model_spec(match)
            if not name:
                raise invalid_argument("Missing model name in request.")
            if api == "metadata":
                return self._servable(name, version, label).metadata()
            # TF Serving's GetModelStatus looks at the version only, so a label lists every version.
            return {"model_version_status": self.registry.status(name, version)}
        raise invalid_argument(f"Malformed request: {method} {path}")

    async def _predict(
        self, name: str, version: int | None, label: str | None, body: bytes
    ) -> dict[str, Any]:
        """Parse a :predict request, run it through the batcher and encode the outputs."""
        doc = codec.parse_json(body)
        signature = codec.signature_name(doc)
        servable = self._servable(name, version, label)
        input_dtypes = servable.input_dtypes(signature)
        if not input_dtypes:
            raise invalid_argument(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
        fmt, inputs = codec.decode_inputs(doc, input_dtypes)
        assert self._batcher is not None, "the batcher starts with the app"
        outputs = await self._batcher.submit((servable, signature), inputs)
        return responses.encode_outputs(outputs, fmt)

    def _classify_or_regress(
        self, verb: str, name: str, version: int | None, label: str | None, body: bytes
    ) -> dict[str, Any]:
        """Check a :classify or :regress request as TF Serving does; our models only have predict signatures."""
        doc = codec.parse_json(body)
        signature = codec.signature_name(doc) or DEFAULT_SIGNATURE
        if "examples" not in doc:
            raise codec.format_error(
                doc, "When method is classify, key 'examples' is expected and was not found"
            )
        if not isinstance(doc["examples"], list):
            raise codec.format_error(doc, "Expecting 'examples' value to be an list/array")
        if not doc["examples"]:
            raise codec.format_error(doc, "'examples' value is an empty array")
        servable = self._servable(name, version, label)
        if signature not in servable.signature_defs:
            raise invalid_argument(f"No signature was found with the name: {signature}")
        kind = "classification" if verb == "classify" else "regression"
        expected = f"tensorflow/serving/{verb}"
        was = servable.signature_defs[signature].get("method_name", "")
        if was != expected:
            raise invalid_argument(f"Expected {kind} signature method_name to be {expected}. Was: {was}")
        raise ServingError(UNIMPLEMENTED, f"{verb} is not implemented by imgsieve serve; use :predict")

    def _servable(self, name: str, version: int | None, label: str | None) -> Servable:
        """The servable a request names, or the NOT_FOUND / INVALID_ARGUMENT error TF Serving gives."""
        if label is not None:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return self.registry.servable(name, version)

    def _model_call(self, target: Hashable, inputs: Tensors) -> Tensors:
        """One model call on a batch (in the batcher's worker thread), with its metrics."""
        servable, signature = cast(tuple[Servable, str], target)  # what _predict submits
        size = batch_dimension(inputs) or 1
        model = self.registry.name
        start = time.perf_counter()
        try:
            outputs: Tensors = servable.run(signature, inputs)
        finally:
            self.metrics.batch_size.labels(model).observe(size)
            self.metrics.model_call_latency.labels(model).observe(time.perf_counter() - start)
        self.metrics.images.labels(model, str(servable.version)).inc(size)
        return outputs


def create_app(
    registry: ModelRegistry, metrics: Metrics, max_batch_size: int, batch_timeout: float
) -> web.Application:
    """Build the aiohttp application serving registry's model."""
    api = RestApi(registry, metrics, max_batch_size, batch_timeout)
    metrics.track_version(registry.name, registry.latest_version)
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.cleanup_ctx.append(api.batching)
    app.router.add_get(METRICS_PATH, api.handle_metrics)
    app.router.add_route("*", "/{tail:.*}", api.handle_v1)
    return app


def _model_spec(match: re.Match[str]) -> tuple[str, int | None, str | None]:
    """(model name, version, label) from a matched request path."""
    name = unquote(match[1] or "")
    version = None
    if match[2] is not None:
        version = int(match[2])
        if version > INT64_MAX:
            raise invalid_argument(f"Failed to convert version: {match[2]} to numeric.")
    label = unquote(match[3]) if match[3] is not None else None
    return name, version, label
