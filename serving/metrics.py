"""The API's Prometheus metrics at /metrics: requests by path and status, their latency, errors, and
the model version being served. A pure ASGI middleware (it times the whole request, the guard's
refusals included); the path label is one of the API's own paths or `other`, so a client cannot
make up label values.

    loans_api_requests_total{path,status}
    loans_api_request_seconds{path}          histogram
    loans_api_errors_total{path}             5xx answers
    loans_api_model_version                  the served version (absent while none)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATHS = ("/predict", "/predict/batch", "/model", "/health", "/metrics", "/docs", "/openapi.json")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ModelVersion(Collector):
    def __init__(self, version: Callable[[], str | None]) -> None:
        self.version = version

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("loans_api_model_version", "the model version being served")
        if (found := self.version()) is not None and str(found).isdigit():
            gauge.add_metric([], float(found))
        yield gauge


class Metrics:
    """ASGI middleware counting and timing every HTTP request; answers GET /metrics itself."""

    def __init__(self, app: ASGIApp, version: Callable[[], str | None]) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        labels: dict[str, Any] = {"registry": self.registry}
        self.requests = Counter("loans_api_requests", "HTTP requests", ["path", "status"], **labels)
        self.seconds = Histogram(
            "loans_api_request_seconds", "request latency", ["path"], buckets=BUCKETS, **labels
        )
        self.errors = Counter("loans_api_errors", "5xx answers", ["path"], **labels)
        self.registry.register(ModelVersion(version))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in PATHS else "other"
        if path == "/metrics" and scope["method"] == "GET":
            await self._expose(send)
            return
        status, started = [500], time.perf_counter()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.seconds.labels(path).observe(time.perf_counter() - started)
            self.requests.labels(path, str(status[0])).inc()
            if status[0] >= 500:
                self.errors.labels(path).inc()

    async def _expose(self, send: Send) -> None:
        body = generate_latest(self.registry)
        headers = [
            (b"content-type", CONTENT_TYPE_LATEST.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
