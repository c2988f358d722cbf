"""`loans-dashboard` (`make dashboard`): a live page over the output topics (risk, fraud, stats, channel,
scores, monitor) and the prediction API's model.

A background confluent-kafka consumer (`TopicFeed`) folds every record into `serving.live.LiveState`;
the page (`serving/static/dashboard.html`, plain HTML and JS) polls `GET /api/state` about once a
second. The consumer starts `LOANS_SERVE_LOOKBACK_SECONDS` back in each topic (so a fresh page has
recent windows at once), picks up topics created later, and keeps going through broker outages
(the page shows the error). The API's `/model` is asked every few seconds for the version it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from importlib.resources import files
from typing import Any

import httpx
import uvicorn
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from core.cli import run_main
from core.logging import configure
from core.settings import KafkaSettings, LogSettings, ServingSettings, TopicSettings, load
from core.streams import BY_NAME
from kafka_consumer.read import consumer_config
from serving.guard import Guard
from serving.live import STREAMS, LiveState

log = logging.getLogger(__name__)

METADATA_EVERY_S = 5.0  # how often new topics and partitions are looked for
API_EVERY_S = 3.0


def now_ms() -> int:
    return int(time.time() * 1000)


class TopicFeed:
    """Reads the output topics into `state` on a background thread until `stop()`.

    Partitions are assigned by hand (no consumer group rebalances, no commits): each new one starts
    at the first record younger than `lookback_s`, and is never rewound again.
    """

    def __init__(
        self, kafka: KafkaSettings, topics: TopicSettings, state: LiveState, lookback_s: float = 300.0
    ) -> None:
        self.kafka, self.state, self.lookback_s = kafka, state, lookback_s
        self.streams = {BY_NAME[stream].topic(topics): stream for stream in STREAMS}
        self.assigned: set[tuple[str, int]] = set()
        self.positions: dict[tuple[str, int], int] = {}  # last offset read per partition
        self.error: str | None = None
        self.missing: list[str] = list(self.streams)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def status(self) -> dict[str, Any]:
        return {
            "topics": {stream: topic for topic, stream in self.streams.items()},
            "partitions": len(self.assigned),
            "missing": self.missing,
            "error": self.error,
            "bootstrap_servers": self.kafka.bootstrap_servers,
        }

    def _run(self) -> None:
        # A broker outage is shown on the page and retried; it must not end the dashboard's only reader.
        while not self._stop.is_set():
            try:
                self._consume()
            except KafkaException as exc:
                self.error = f"Kafka at {self.kafka.bootstrap_servers}: {exc.args[0]}"
                log.warning("%s; retrying in 2 s", self.error)
                self._stop.wait(2.0)

    def _consume(self) -> None:
        config = consumer_config(self.kafka, None, from_beginning=False)
        consumer = Consumer({**config, "client.id": f"{self.kafka.client_id}-dashboard"})
        self.assigned = set()  # a new consumer has nothing assigned; `positions` says where to go on
        try:
            looked = 0.0
            while not self._stop.is_set():
                if time.monotonic() - looked >= METADATA_EVERY_S:
                    self._assign_new(consumer)
                    looked = time.monotonic()
                for message in consumer.consume(500, 0.5) if self.assigned else []:
                    self._fold(message)
                if not self.assigned:
                    self._stop.wait(0.5)
        finally:
            consumer.close()

    def _assign_new(self, consumer: Consumer) -> None:
        topics = consumer.list_topics(timeout=5).topics
        self.missing = [t for t in self.streams if t not in topics]
        new = [
            (topic, partition)
            for topic in self.streams
            if topic in topics and topics[topic].error is None
            for partition in topics[topic].partitions
            if (topic, partition) not in self.assigned
        ]
        if not new:
            self.error = None
            return
        since = now_ms() - int(self.lookback_s * 1000)
        unseen = [TopicPartition(t, p, since) for t, p in new if (t, p) not in self.positions]
        # offset -1 from offsets_for_times (nothing that recent) is OFFSET_END: only new records
        starts = consumer.offsets_for_times(unseen, timeout=10) if unseen else []
        starts += [
            TopicPartition(t, p, self.positions[(t, p)] + 1) for t, p in new if (t, p) in self.positions
        ]
        consumer.incremental_assign(starts)
        self.assigned |= set(new)
        self.error = None
        log.info("reading %d partition(s) of %s", len(new), ", ".join(sorted({t for t, _ in new})))

    def _fold(self, message: Message) -> None:
        if (err := message.error()) is not None:
            if err.fatal():
                raise KafkaException(err)
            log.debug("%s: %s", message.topic(), err.str())
            return
        topic, partition, offset = str(message.topic()), int(message.partition() or 0), message.offset()
        if offset is not None:  # after a reconnect, go on from here instead of the lookback again
            self.positions[(topic, partition)] = offset
        _kind, at_ms = message.timestamp()
        try:
            record = json.loads(message.value() or b"")
        except ValueError:  # not JSON (or not UTF-8): counted as skipped
            record = None
        self.state.add(self.streams.get(topic, "?"), record, at_ms if at_ms > 0 else now_ms())


class ApiWatcher:
    """Asks the prediction API which model it serves (the dashboard's "serving model" panel)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.model: dict[str, Any] = {"error": f"not asked yet ({base_url})"}

    async def watch(self, every_s: float = API_EVERY_S) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                self.model = await self.ask(client)
                await asyncio.sleep(every_s)

    async def ask(self, client: httpx.AsyncClient) -> dict[str, Any]:
        try:
            response = await client.get("/model")
        except httpx.HTTPError as exc:
            return {"error": f"prediction API not reachable at {self.base_url} ({type(exc).__name__})"}
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict):
            detail = body.get("detail") if isinstance(body, dict) else None
            return {
                "error": f"prediction API answered {response.status_code}: {detail or response.text[:200]}"
            }
        return {key: body.get(key) for key in ("name", "version", "alias", "metrics", "loaded_at")}


def page() -> str:
    return files("serving").joinpath("static/dashboard.html").read_text(encoding="utf-8")


def create_app(
    feed: TopicFeed, api: ApiWatcher | None = None, settings: ServingSettings | None = None
) -> FastAPI:
    """The dashboard over `feed`; the app starts the feed (and the API watcher) and stops them. With
    `settings.api_key` every page but /health needs it (HTTP basic auth: the browser asks)."""
    settings = settings or ServingSettings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        feed.start()
        watcher = asyncio.create_task(api.watch()) if api is not None else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with suppress(asyncio.CancelledError):
                    await watcher
            feed.stop()

    app = FastAPI(title="loan-stream live dashboard", version="1", description=__doc__, lifespan=lifespan)
    app.add_middleware(
        Guard,
        max_body_bytes=16_384,  # it reads no bodies: refuse big or non-JSON ones
        api_key=settings.api_key.get_secret_value(),
        hosts=settings.hosts(),
        protected=("/",),
        open_paths=("/health",),
        challenge='Basic realm="loan-stream dashboard"',  # the browser asks for the key
    )
    html = page()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(html)

    @app.get("/api/state", summary="rolling aggregates of the output topics")
    async def state() -> JSONResponse:
        snapshot = feed.state.snapshot(now_ms())
        snapshot["feed"] = feed.status()
        snapshot["api"] = api.model if api is not None else None
        return JSONResponse(snapshot)

    @app.get("/health", summary="is the dashboard up (and its consumer healthy)?")
    async def health() -> JSONResponse:
        status = feed.status()
        return JSONResponse({"status": "ok" if status["error"] is None else "degraded", **status})

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loans-dashboard", description=__doc__)
    parser.add_argument("--host", help="listen address (default LOANS_SERVE_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default LOANS_SERVE_DASHBOARD_PORT)")
    args = parser.parse_args(argv)

    def body() -> int:
        overrides = {k: v for k, v in (("host", args.host), ("dashboard_port", args.port)) if v is not None}
        settings = load(ServingSettings, **overrides)
        settings.require_key()
        configure(load(LogSettings).level)
        kafka, topics = load(KafkaSettings, service="dashboard"), load(TopicSettings)
        feed = TopicFeed(kafka, topics, LiveState(), settings.lookback_seconds)
        app = create_app(feed, ApiWatcher(settings.api_base()), settings)
        log.info(
            "dashboard on http://%s:%d over %s at %s",
            settings.host,
            settings.dashboard_port,
            ", ".join(feed.streams),
            kafka.bootstrap_servers,
        )
        uvicorn.run(app, host=settings.host, port=settings.dashboard_port, log_level="warning")
        return 0

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
