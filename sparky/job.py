"""The one Spark Structured Streaming job: Kafka in, six analyses, dead letters and the lake out.

Queries (each checkpointed under LOANS_SPARK_CHECKPOINT_DIR/<name>):
- `events` (foreachBatch): parses applications and history ONCE per micro-batch, then writes
  dead letters to `loan.dlq`, every per-application analysis (risk; scores joins here) to its
  topic, and every valid event to the Parquet lake (partitioned by date and batch, idempotent
  on replay).
- `stats`, `segment`, `channel`: event-time windows with a watermark, update mode, keyed by group.
- `fraud`: stateful velocity signals, flagged per micro-batch (foreachBatch).
If one query fails to start or dies, the job fails rather than running with the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from core.events import HistoricalLoan, LoanApplication
from core.settings import KafkaSettings, SparkJobSettings, TopicSettings
from sparky.analyses import channel, fraud, risk, segment, stats
from sparky.sink import start_batch_sink, start_kafka_sink, write_kafka
from sparky.source import dead_letters, parse, read_kafka, valid_events

log = logging.getLogger(__name__)

Build = Callable[[DataFrame, SparkJobSettings], DataFrame]


@dataclass(frozen=True)
class Analysis:
    """One output stream: its topic and query name follow from `name`."""

    name: str
    build: Build
    key: tuple[str, ...] = ("application_id",)
    mode: str = "append"


INPUTS: dict[str, type[BaseModel]] = {"applications": LoanApplication, "history": HistoricalLoan}
PER_APPLICATION = (Analysis("risk", risk.build),)  # the scores stream joins here
WINDOWED = (
    Analysis("stats", stats.build, ("window_start",), "update"),
    Analysis("segment", segment.build, ("window_start", "segment"), "update"),
    Analysis("channel", channel.build, ("window_start", "channel"), "update"),
)


@dataclass(frozen=True)
class Job:
    """Everything the queries need, built once at the entry point."""

    spark: SparkSession
    kafka: KafkaSettings
    topics: TopicSettings
    settings: SparkJobSettings

    def applications(self) -> DataFrame:
        """Valid live applications as a streaming DataFrame (a Kafka source of its own)."""
        raw = read_kafka(self.spark, self.kafka, [self.topics.applications], self.settings)
        return valid_events(parse(raw, LoanApplication, self.settings))

    def handle_events(self, batch: DataFrame, batch_id: int) -> None:
        """One micro-batch of both input topics: parse each once, then fan out."""
        topics, job = self.topics, self.settings
        started = time.monotonic()
        batch = batch.persist()
        parsed = {
            name: parse(batch.where(F.col("topic") == getattr(topics, name)), model, job).persist()
            for name, model in INPUTS.items()
        }
        try:
            letters = reduce(DataFrame.unionByName, (dead_letters(p) for p in parsed.values()))
            write_kafka(
                letters, topics.dlq, ("source_topic", "source_partition", "source_offset"), self.kafka
            )
            applications = valid_events(parsed["applications"])
            for analysis in PER_APPLICATION:
                write_kafka(
                    analysis.build(applications, job), topics.output(analysis.name), analysis.key, self.kafka
                )
            marks = [("dlq+outputs", time.monotonic())]
            for name, rows in parsed.items():
                archive(valid_events(rows), Path(job.lake_dir) / name, batch_id)
            marks.append(("lake", time.monotonic()))
            log.info(
                "events batch %d done in %.1f s (dead letters and outputs %.1f s, lake %.1f s)",
                batch_id,
                marks[-1][1] - started,
                marks[0][1] - started,
                marks[1][1] - marks[0][1],
            )
        finally:
            for rows in parsed.values():
                rows.unpersist()
            batch.unpersist()

    def handle_fraud(self, signals: DataFrame, batch_id: int) -> None:
        write_kafka(
            fraud.flag(signals, self.settings), self.topics.output("fraud"), ("application_id",), self.kafka
        )

    def start(self) -> list[StreamingQuery]:
        """Start every query; if one fails to start, stop those already running and raise."""
        queries: list[StreamingQuery] = []
        try:
            raw = read_kafka(
                self.spark, self.kafka, [self.topics.applications, self.topics.history], self.settings
            )
            queries.append(start_batch_sink(raw, "events", self.handle_events, self.settings))
            for a in WINDOWED:
                df = a.build(self.applications(), self.settings)
                queries.append(
                    start_kafka_sink(
                        df, a.name, self.topics.output(a.name), a.key, a.mode, self.kafka, self.settings
                    )
                )
            queries.append(
                start_batch_sink(
                    fraud.signals(self.applications()), "fraud", self.handle_fraud, self.settings
                )
            )
        except Exception:
            for q in queries:
                q.stop()
            raise
        log.info("started %d queries: %s", len(queries), ", ".join(str(q.name) for q in queries))
        return queries


def archive(events: DataFrame, path: Path, batch_id: int) -> None:
    """Append one micro-batch to the lake; rewriting the same batch id replaces it (idempotent replay)."""
    (
        events.withColumn("date", F.to_date("event_time"))
        .withColumn("batch_id", F.lit(batch_id))
        .write.mode("overwrite")
        .partitionBy("date", "batch_id")
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
