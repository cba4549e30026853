"""Prometheus metrics of the model server, exposed at /monitoring/prometheus/metrics (the path
TF Serving's monitoring config uses) in the text exposition format.

Each server has its own registry, so several servers in one process (tests) do not share counters.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "imgsieve_serve"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """The server's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only double the page; nothing here reads them
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            f"{PREFIX}_requests",
            "REST requests answered, by model, API (status, metadata, predict, ...) and HTTP status code",
            ["model", "api", "code"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            f"{PREFIX}_request_latency_seconds",
            "time from a request's arrival to its answer",
            ["model", "api"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "items (images) per model call, after server-side batching",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.model_call_latency = Histogram(
            f"{PREFIX}_model_call_seconds",
            "duration of one model call on a batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.images = Counter(
            f"{PREFIX}_images_predicted",
            "items (images) predicted successfully, by model and version",
            ["model", "version"],
            registry=self.registry,
        )
        self.batch_splits = Counter(
            f"{PREFIX}_batch_splits",
            "merged batches that failed on a bad input and were rerun one request at a time",
            ["model"],
            registry=self.registry,
        )
        self.version = Gauge(
            f"{PREFIX}_model_version",
            "version that requests without a version go to; 0 while none is available",
            ["model"],
            registry=self.registry,
        )

    def track_version(self, model: str, latest: Callable[[], int | None]) -> None:
        """Report latest() as the served version of model whenever metrics are scraped."""
        self.version.labels(model).set_function(lambda: float(latest() or 0))

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
