"""The one Spark Structured Streaming job: Kafka in, six analyses, dead letters and the lake out.

The input is read from Kafka and parsed ONCE per micro-batch, by the `events` query (foreachBatch):
per-application outputs first (risk; scores joins here), then the valid applications to the
*feed* (Parquet under the checkpoint folder, one directory per batch), then dead letters to
`loan.dlq`, then every valid event to the lake (partitioned by date and batch, idempotent on
replay). The other queries read the feed as a file stream: no second Kafka read, no second JSON
parse, only the columns each needs.
- `stats`, `segment`, `channel`: event-time windows with a watermark, update mode, keyed by group.
- `fraud`: stateful velocity signals, flagged per micro-batch (foreachBatch).
- `scores`: the champion model from the MLflow registry, per application (see analyses/scores.py);
  started once a champion exists, following the alias from batch to batch.
- `lake`: every valid application to the Parquet lake, in larger, less frequent batches.
The lake is partitioned by date and `<run>-<batch>` (idempotent on replay). Each query is
checkpointed under LOANS_SPARK_CHECKPOINT_DIR/<name>. If one query fails to start
or dies, the job fails rather than running with the rest.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, reduce
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from core.errors import ServiceError
from core.events import HistoricalLoan, LoanApplication
from core.settings import KafkaSettings, MlflowSettings, SparkJobSettings, TopicSettings
from models.registry import ModelRef, resolve
from sparky.analyses import channel, fraud, risk, scores, segment, stats
from sparky.schema import to_struct_type
from sparky.sink import start_batch_sink, start_kafka_sink, write_kafka
from sparky.source import Parser, read_kafka, valid_events

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
PER_APPLICATION = (Analysis("risk", risk.build),)
CHAMPION = "champion"
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
    mlflow: MlflowSettings | None = None  # None: no scores query
    scoring: dict[str, ModelRef] = field(default_factory=dict)  # the version the last batch used

    @cached_property
    def parsers(self) -> dict[str, Parser]:
        return {name: Parser(model, self.settings) for name, model in INPUTS.items()}

    @cached_property
    def run_id(self) -> str:
        """Names this job's lake partitions: stable across restarts on the same checkpoints, so a
        replayed batch overwrites its own files and never those of another run."""
        return hashlib.sha256(str(Path(self.settings.checkpoint_dir).resolve()).encode()).hexdigest()[:8]

    @property
    def feed_dir(self) -> Path:
        """Valid applications, one `batch_id=N` folder per events batch (lives with the checkpoints)."""
        return Path(self.settings.checkpoint_dir) / "feed" / "applications"

    def applications(self) -> DataFrame:
        """Valid live applications as a streaming DataFrame: the feed the events query writes."""
        self.feed_dir.mkdir(parents=True, exist_ok=True)
        schema = to_struct_type(LoanApplication).add("batch_id", "long")
        return self.spark.readStream.schema(schema).parquet(str(self.feed_dir)).drop("batch_id")

    def write_feed(self, applications: DataFrame, batch_id: int) -> None:
        """Write batch `batch_id` once: a replayed batch whose folder is complete is not written again
        (new file names would be read twice); folders older than `feed_keep_batches` are removed."""
        folder = self.feed_dir / f"batch_id={batch_id}"
        if not (folder / "_SUCCESS").exists():
            applications.coalesce(1).write.mode("overwrite").parquet(str(folder))
        for old in self.feed_dir.glob("batch_id=*"):
            if int(old.name.split("=")[1]) < batch_id - self.settings.feed_keep_batches:
                shutil.rmtree(old, ignore_errors=True)

    def handle_events(self, batch: DataFrame, batch_id: int) -> None:
        """One micro-batch of both input topics: parse each once, then fan out, latency-critical first."""
        topics, job = self.topics, self.settings
        started, marks = time.monotonic(), []
        batch = batch.persist()
        topics_row = batch.agg(F.collect_set("topic")).first()
        present = set(topics_row[0]) if topics_row else set()
        # eager and cut from the plan: the outputs below are planned against the parsed rows
        parsed = {
            name: parse(batch.where(F.col("topic") == topic)).localCheckpoint()
            for name, parse in self.parsers.items()
            if (topic := getattr(topics, name)) in present
        }
        try:
            if "applications" in parsed:
                applications = valid_events(parsed["applications"])
                for analysis in PER_APPLICATION:
                    out = analysis.build(applications, job)
                    write_kafka(out, topics.output(analysis.name), analysis.key, self.kafka)
                marks.append(("outputs", time.monotonic()))
                self.write_feed(applications, batch_id)
                marks.append(("feed", time.monotonic()))
            letters = [self.parsers[name].dead_letters(p) for name, p in parsed.items()]
            if letters and not (bad := reduce(DataFrame.unionByName, letters)).isEmpty():
                write_kafka(
                    bad, topics.dlq, ("source_topic", "source_partition", "source_offset"), self.kafka
                )
                marks.append(("dead letters", time.monotonic()))
            if "history" in parsed:
                archive(
                    valid_events(parsed["history"]), Path(job.lake_dir) / "history", self.run_id, batch_id
                )
                marks.append(("history to lake", time.monotonic()))
            steps, before = [], started
            for step, at in marks:
                steps.append(f"{step} {at - before:.1f} s")
                before = at
            log.info("events batch %d done in %.1f s (%s)", batch_id, before - started, ", ".join(steps))
        finally:
            batch.unpersist()  # the checkpointed parses are freed when dropped

    def handle_fraud(self, signals: DataFrame, batch_id: int) -> None:
        write_kafka(
            fraud.flag(signals, self.settings), self.topics.output("fraud"), ("application_id",), self.kafka
        )

    def handle_scores(self, applications: DataFrame, batch_id: int) -> None:
        """Score with the version the alias names now: a moved alias takes effect on this batch."""
        if self.mlflow is None:
            raise RuntimeError("the scores query needs MLflow settings")
        try:
            ref = resolve(self.mlflow, CHAMPION) or self.scoring.get(CHAMPION)
        except ServiceError as exc:  # the registry is down: keep scoring with the version we have
            if (ref := self.scoring.get(CHAMPION)) is None:
                raise
            log.warning("scores: batch %d stays on v%s: %s", batch_id, ref.version, exc)
        if ref is None:
            raise RuntimeError(f"model {self.mlflow.model_name!r} has no {CHAMPION!r} alias any more")
        if (last := self.scoring.get(CHAMPION)) is None or last.version != ref.version:
            was = f" (was v{last.version})" if last else ""
            log.info("scores: batch %d on %s v%s @%s%s", batch_id, ref.name, ref.version, CHAMPION, was)
        self.scoring[CHAMPION] = ref
        write_kafka(
            scores.build(applications, ref, self.mlflow), self.topics.output("scores"), ("application_id",),
            self.kafka,
        )  # fmt: skip

    def start_scores(self, queries: list[StreamingQuery], poll_s: float = 10.0) -> None:
        """Start the scores query once a champion exists; until then wait and say so (the feed keeps
        the applications, so those that arrive meanwhile are scored when it starts)."""
        if self.mlflow is None:
            log.info("scores: off (no MLflow settings given)")
            return
        mlflow = self.mlflow

        def start() -> None:
            fed = self.settings.model_copy(update={"trigger": self.settings.feed_trigger})
            queries.append(start_batch_sink(self.applications(), "scores", self.handle_scores, fed))

        if champion_or_why(mlflow) is None:
            start()
            return

        def wait() -> None:
            while (why := champion_or_why(mlflow)) is not None:
                log.warning("scores: waiting: %s; the other streams run meanwhile", why)
                time.sleep(poll_s)
            if any(q.isActive for q in queries):
                start()

        threading.Thread(target=wait, name="scores-wait", daemon=True).start()

    def handle_lake(self, applications: DataFrame, batch_id: int) -> None:
        archive(applications, Path(self.settings.lake_dir) / "applications", self.run_id, batch_id)

    def start(self) -> list[StreamingQuery]:
        """Start every query; if one fails to start, stop those already running and raise."""
        queries: list[StreamingQuery] = []
        job = self.settings
        try:
            raw = read_kafka(self.spark, self.kafka, [self.topics.applications, self.topics.history], job)
            queries.append(start_batch_sink(raw, "events", self.handle_events, job))
            windows = job.model_copy(update={"trigger": job.window_trigger})
            for a in WINDOWED:
                df = a.build(self.applications(), job)
                queries.append(
                    start_kafka_sink(
                        df, a.name, self.topics.output(a.name), a.key, a.mode, self.kafka, windows
                    )
                )
            fed = job.model_copy(update={"trigger": job.feed_trigger})
            signals = fraud.signals(self.applications())
            queries.append(start_batch_sink(signals, "fraud", self.handle_fraud, fed))
            lake = job.model_copy(update={"trigger": job.lake_trigger})
            queries.append(start_batch_sink(self.applications(), "lake", self.handle_lake, lake))
            self.start_scores(queries)
        except Exception:
            for q in queries:
                q.stop()
            raise
        log.info("started %d queries: %s", len(queries), ", ".join(str(q.name) for q in queries))
        return queries


def champion_or_why(mlflow: MlflowSettings) -> str | None:
    """None when the registry has a champion; else why the scores query cannot start yet (no such
    alias, or the registry does not answer: both are waited out, neither stops the job)."""
    try:
        if resolve(mlflow, CHAMPION) is not None:
            return None
    except ServiceError as exc:
        return str(exc)
    return (
        f"model {mlflow.model_name!r} has no {CHAMPION!r} alias at {mlflow.tracking_uri} "
        "(run `make train` and `make promote`)"
    )


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
