"""The job's Prometheus metrics, read from each query's last progress report when scraped (no loop
of our own): input and processed rates, batch duration, how far behind the input topics' ends it is
(lag), rows dropped as late, when its last batch ran; plus the dead letters the archiving queries
wrote. Served on LOANS_METRICS_JOB_PORT (loopback); `make status` reads them too.

    loans_job_query_active{query}                       1 while the query runs
    loans_job_query_restarting{query}                   1 while a failed query waits to restart
    loans_job_query_failures{query}                     its failures in a row (0 once it runs again)
    loans_job_input_rows_per_second{query}              as Spark's progress reports them
    loans_job_processed_rows_per_second{query}
    loans_job_batch_duration_seconds{query}             the last micro-batch's wall time
    loans_job_last_batch_timestamp_seconds{query}       when the last batch started (epoch s)
    loans_job_lag_records{query,topic}                  records behind the topic's end, summed over partitions
    loans_job_lag_growing{query}                        1 if the lag grew over the last 4 batches
    loans_job_late_rows_total{query}                    rows dropped by the watermark
    loans_job_dead_letters_total{query,topic}           malformed input messages sent to loan.dlq
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import pairwise
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pyspark.sql.streaming import StreamingQuery

from core import metrics

REGISTRY = CollectorRegistry()
DEAD_LETTERS = Counter(
    "loans_job_dead_letters",
    "malformed input messages sent to the DLQ",
    ["query", "topic"],
    registry=REGISTRY,
)
GROWING_OVER = 4  # batches


def lag(progress: dict[str, Any]) -> dict[str, int]:
    """Topic -> records between where the batch ended and the newest offset Kafka had (all partitions)."""
    out: dict[str, int] = {}
    for source in progress.get("sources", []):
        end, latest = (_offsets(source.get(k)) for k in ("endOffset", "latestOffset"))
        for topic, partitions in latest.items():
            done = end.get(topic, {})
            out[topic] = out.get(topic, 0) + sum(max(0, o - done.get(p, o)) for p, o in partitions.items())
    return out


def read_offsets(progress: dict[str, Any], topic: str) -> dict[int, int]:
    """Partition -> offset a query has read `topic` up to, as its progress report says."""
    done: dict[int, int] = {}
    for source in progress.get("sources", []):
        done |= {int(p): o for p, o in _offsets(source.get("endOffset")).get(topic, {}).items()}
    return done


def late_rows(progress: dict[str, Any]) -> int:
    """Rows dropped so far by a query's watermark, as its progress report says."""
    return sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in progress.get("stateOperators", []))


def read_through(query: StreamingQuery, rows: int, timeout_s: float = 600) -> None:
    """Wait until `query` has read `rows` input rows in all, and run one batch more (so what they
    caused is written), or raise. For queries whose state lives for a processing time, which run a
    batch every trigger, data or not, so that `processAllAvailable` never returns."""
    deadline, after = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if (error := query.exception()) is not None:
            raise RuntimeError(f"query {query.name} failed: {error}")
        progress = query.recentProgress
        if after is None and sum(p["numInputRows"] for p in progress) >= rows:
            after = progress[-1]["batchId"] if progress else -1
        if after is not None and progress and progress[-1]["batchId"] > after:
            return
        time.sleep(0.2)
    raise TimeoutError(f"query {query.name} did not read {rows} rows in {timeout_s:.0f} s")


def _offsets(value: object) -> dict[str, dict[str, int]]:
    parsed = json.loads(value) if isinstance(value, str) else (value or {})
    if not isinstance(parsed, dict):
        return {}
    return {t: {p: int(o) for p, o in ps.items()} for t, ps in parsed.items() if isinstance(ps, dict)}


class QueryCollector(Collector):
    """Reads `queries()` (name -> query) and `restarting()` (a failed query waiting to restart ->
    its failures in a row) on each scrape."""

    def __init__(
        self,
        queries: Callable[[], dict[str, StreamingQuery]],
        restarting: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.queries, self.restarting = queries, restarting
        self.history: dict[str, deque[tuple[int, int]]] = {}  # query -> (batch id, total lag)
        self.lock = threading.Lock()

    def growing(self, name: str, batch: int, total: int) -> bool:
        with self.lock:
            seen = self.history.setdefault(name, deque(maxlen=GROWING_OVER))
            if not seen or seen[-1][0] != batch:
                seen.append((batch, total))
            lags = [t for _, t in seen]
        return len(lags) == GROWING_OVER and lags[-1] > 0 and all(a < b for a, b in pairwise(lags))

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        gauges = {
            name: GaugeMetricFamily(f"loans_job_{name}", help_, labels=["query"])
            for name, help_ in (
                ("query_active", "1 while the query runs"),
                ("query_restarting", "1 while a failed query waits to restart"),
                ("query_failures", "failures in a row of a query waiting to restart"),
                ("input_rows_per_second", "input rate of the last micro-batch"),
                ("processed_rows_per_second", "processing rate of the last micro-batch"),
                ("batch_duration_seconds", "wall time of the last micro-batch"),
                ("last_batch_timestamp_seconds", "when the last micro-batch started"),
                ("lag_growing", "1 if the lag grew over the last batches"),
            )
        }
        lags = GaugeMetricFamily(
            "loans_job_lag_records", "records behind the topic's end", labels=["query", "topic"]
        )
        late = CounterMetricFamily("loans_job_late_rows", "rows dropped by the watermark", labels=["query"])
        restarting = self.restarting()
        for name, query in self.queries().items():
            progress: dict[str, Any] = query.lastProgress or {}
            gauges["query_active"].add_metric([name], float(query.isActive))
            gauges["query_restarting"].add_metric([name], float(name in restarting))
            gauges["query_failures"].add_metric([name], float(restarting.get(name, 0)))
            gauges["input_rows_per_second"].add_metric([name], float(progress.get("inputRowsPerSecond") or 0))
            gauges["processed_rows_per_second"].add_metric(
                [name], float(progress.get("processedRowsPerSecond") or 0)
            )
            took = (progress.get("durationMs") or {}).get("triggerExecution", 0)
            gauges["batch_duration_seconds"].add_metric([name], took / 1000)
            if stamp := progress.get("timestamp"):
                started = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                gauges["last_batch_timestamp_seconds"].add_metric([name], started)
            behind = lag(progress)
            for topic, records in behind.items():
                lags.add_metric([name, topic], records)
            batch = int(progress.get("batchId", -1))
            gauges["lag_growing"].add_metric([name], float(self.growing(name, batch, sum(behind.values()))))
            late.add_metric([name], late_rows(progress))
        yield from gauges.values()
        yield lags
        yield late


def serve(
    queries: Callable[[], dict[str, StreamingQuery]],
    host: str,
    port: int,
    restarting: Callable[[], dict[str, int]] = dict,
) -> Callable[[], None]:
    """Serve the job's metrics on host:port; returns what stops the server."""
    REGISTRY.register(collector := QueryCollector(queries, restarting))
    try:
        stop_server = metrics.serve(REGISTRY, host, port, "LOANS_METRICS_JOB_PORT")
    except Exception:
        REGISTRY.unregister(collector)
        raise

    def stop() -> None:
        stop_server()
        REGISTRY.unregister(collector)

    return stop
