"""Serving a service's Prometheus metrics on its own port (`core.settings.MetricsSettings`): the job
(`sparky.metrics`) and the producer (`kafka_producer.metrics`); the API serves /metrics itself."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_http_server

from core.ports import require_free


def serve(registry: CollectorRegistry, host: str, port: int, setting: str) -> Callable[[], None]:
    """Serve `registry` at http://host:port/metrics; a busy port is one line naming `setting`.
    Returns what stops the server."""
    require_free(host, port, setting)
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
