"""The one Spark Structured Streaming job: Kafka in, six analyses, dead letters and the lake out.

Live applications are read from Kafka and parsed ONCE per micro-batch, by the `events` query
(foreachBatch, `sparky.events`): risk and scores to Kafka first, in one Spark job, then the valid
applications to the *feed* (Parquet under the checkpoint folder, one directory per batch), then
dead letters when the batch has any. The other queries read the feed as a file stream: no second
Kafka read, no second JSON parse, only the columns each needs. Each query runs in its own FAIR
scheduler pool, `events` first.
- `stats`, `segment`, `channel`: event-time windows with a watermark, update mode, keyed by group.
- `fraud`: stateful velocity signals, flagged per micro-batch (foreachBatch).
- `lake`: every valid application to the Parquet lake, in larger, less frequent batches.
- `history`: historical loans from `loan.history` (a backfill, not latency-critical) to the lake,
  bad ones to `loan.dlq`.
Queries are few on purpose: each micro-batch of any query costs a few hundred milliseconds of
driver time whatever its size (planning, offset and commit logs, state commits), so only `events`
runs back to back; fraud runs every 5 s, the windows every 30 s, the lake every 60 s. The lake is
partitioned by date and `<run>-<batch>` (idempotent on replay). Each query is checkpointed under
LOANS_SPARK_CHECKPOINT_DIR/<name>. If one query fails to start or dies, the job fails rather than
running with the rest.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from core.events import HistoricalLoan, LoanApplication
from core.settings import KafkaSettings, MlflowSettings, SparkJobSettings, TopicSettings
from sparky.analyses import channel, fraud, segment, stats
from sparky.events import APPLICATION_KEY, LiveBatches
from sparky.schema import to_struct_type
from sparky.sink import kafka_columns, start_batch_sink, start_kafka_sink, write_frames
from sparky.source import Parser, read_kafka, valid_events

log = logging.getLogger(__name__)

Build = Callable[[DataFrame, SparkJobSettings], DataFrame]


@dataclass(frozen=True)
class Analysis:
    """One windowed output stream: its topic and query name follow from `name`."""

    name: str
    build: Build
    key: tuple[str, ...]
    mode: str = "update"


WINDOWED = (
    Analysis("stats", stats.build, ("window_start",)),
    Analysis("segment", segment.build, ("window_start", "segment")),
    Analysis("channel", channel.build, ("window_start", "channel")),
)


@dataclass(frozen=True)
class Job:
    """Everything the queries need, built once at the entry point."""

    spark: SparkSession
    kafka: KafkaSettings
    topics: TopicSettings
    settings: SparkJobSettings
    mlflow: MlflowSettings | None = None  # None: no scores

    @cached_property
    def run_id(self) -> str:
        """Names this job's lake partitions: stable across restarts on the same checkpoints, so a
        replayed batch overwrites its own files and never those of another run."""
        return hashlib.sha256(str(Path(self.settings.checkpoint_dir).resolve()).encode()).hexdigest()[:8]

    @property
    def feed_dir(self) -> Path:
        """Valid applications, one `batch_id=N` folder per events batch (lives with the checkpoints)."""
        return Path(self.settings.checkpoint_dir) / "feed" / "applications"

    @cached_property
    def live(self) -> LiveBatches:
        return LiveBatches(self.spark, self.kafka, self.topics, self.settings, self.feed_dir, self.mlflow)

    @cached_property
    def history_parser(self) -> Parser:
        return Parser(HistoricalLoan, self.settings)

    @cached_property
    def fraud_out(self) -> tuple[fraud.Flagging, list[Any]]:
        out = kafka_columns(fraud.OUTPUT_COLUMNS, APPLICATION_KEY, self.topics.output("fraud"))
        return fraud.flagging(self.settings), out

    def applications(self) -> DataFrame:
        """Valid live applications as a streaming DataFrame: the feed the events query writes."""
        self.feed_dir.mkdir(parents=True, exist_ok=True)
        schema = to_struct_type(LoanApplication).add("batch_id", "long")
        return self.spark.readStream.schema(schema).parquet(str(self.feed_dir)).drop("batch_id")

    def handle_history(self, batch: DataFrame, batch_id: int) -> None:
        """One micro-batch of historical loans: the valid ones to the lake, the others to the DLQ."""
        parser = self.history_parser
        parsed = parser(batch).persist()
        try:
            archive(valid_events(parsed), Path(self.settings.lake_dir) / "history", self.run_id, batch_id)
            self.live.write_dead_letters(parser, parsed)
        finally:
            parsed.unpersist()

    def handle_fraud(self, signals: DataFrame, batch_id: int) -> None:
        how, out = self.fraud_out
        write_frames([fraud.flag(signals, self.settings, how).select(*out)], self.kafka)

    def handle_lake(self, applications: DataFrame, batch_id: int) -> None:
        archive(applications, Path(self.settings.lake_dir) / "applications", self.run_id, batch_id)

    def start(self) -> list[StreamingQuery]:
        """Start every query; if one fails to start, stop those already running and raise."""
        queries: list[StreamingQuery] = []
        job = self.settings

        def every(trigger: str) -> SparkJobSettings:
            return job.model_copy(update={"trigger": trigger})

        try:
            live = read_kafka(self.spark, self.kafka, [self.topics.applications], job)
            queries.append(start_batch_sink(live, "events", self.live, job))
            signals = fraud.signals(self.applications())
            queries.append(start_batch_sink(signals, "fraud", self.handle_fraud, every(job.feed_trigger)))
            for a in WINDOWED:
                df, topic = a.build(self.applications(), job), self.topics.output(a.name)
                sink = every(job.window_trigger)
                queries.append(start_kafka_sink(df, a.name, topic, a.key, a.mode, self.kafka, sink))
            lake = self.applications()
            queries.append(start_batch_sink(lake, "lake", self.handle_lake, every(job.lake_trigger)))
            history = read_kafka(self.spark, self.kafka, [self.topics.history], job)
            queries.append(
                start_batch_sink(history, "history", self.handle_history, every(job.history_trigger))
            )
        except Exception:
            for q in queries:
                q.stop()
            raise
        if self.mlflow is not None:
            self.live.watch(lambda: any(q.isActive for q in queries))
        scoring = "on (champion from the registry)" if self.mlflow else "off (no MLflow settings given)"
        log.info(
            "started %d queries: %s; scores %s",
            len(queries),
            ", ".join(str(q.name) for q in queries),
            scoring,
        )
        return queries


def archive(events: DataFrame, path: Path, run_id: str, batch_id: int) -> None:
    """Append one micro-batch to the lake, partitioned by date and `<run>-<batch>`: rewriting the
    same batch replaces only its own files (idempotent replay)."""
    (
        events.withColumn("date", F.to_date("event_time"))
        .withColumn("batch", F.lit(f"{run_id}-{batch_id:06d}"))
        .write.mode("overwrite")
        .partitionBy("date", "batch")
        .parquet(str(path))
    )


def late_rows(query: StreamingQuery) -> int:
    """Rows dropped so far by this query's watermark, as reported in its last progress."""
    progress: dict[str, Any] = query.lastProgress or {}
    return sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in progress.get("stateOperators", []))


def monitor(
    spark: SparkSession, queries: list[StreamingQuery], every_s: float = 30.0, duration_s: float | None = None
) -> None:
    """Log throughput and late rows per query until one fails (raise), or `duration_s` passes."""
    started = time.monotonic()
    while duration_s is None or time.monotonic() - started < duration_s:
        wait = (
            every_s
            if duration_s is None
            else min(every_s, max(0.1, duration_s - (time.monotonic() - started)))
        )
        if spark.streams.awaitAnyTermination(max(1, round(wait))):
            failed = next((q for q in queries if not q.isActive), None)
            error = failed.exception() if failed is not None else None
            raise RuntimeError(f"query {failed.name if failed else '?'} stopped: {error}")
        for q in queries:
            p: dict[str, Any] = q.lastProgress or {}
            log.info(
                "%-8s in %7.0f/s  done %7.0f/s  late dropped %d",
                q.name,
                p.get("inputRowsPerSecond", 0.0) or 0.0,
                p.get("processedRowsPerSecond", 0.0) or 0.0,
                late_rows(q),
            )
