"""The job's queries, each a row of data: a name, the streams it writes, its trigger, what it builds
from the context and how that reaches Kafka. A query is a unit of cost, not of meaning: the streams
it writes share its fixed per-batch cost, so the job has few, and no Python stands between Kafka and
the per-application outputs.

- realtime (risk, scores): real-time mode, JVM only: one Kafka read and one parse, the points rules
  and the champion's exported network (`sparky.analyses.scores`), written by the exactly-once JVM
  writer; a challenger's scores beside it, flagged shadow. Without a champion it writes risk alone,
  and scores catch up from where the job started once one appears.
- windows (stats, segment, channel): ONE event-time aggregation, each row routed to its stream's topic.
- fraud (fraud, dlq): keyed velocity state, flagged applications and duplicate ids, per micro-batch.
- archive (dlq, and the lake): applications and history, valid ones to the Parquet lake
  (`core.lake`), the rest to loan.dlq with the reason.
- outcomes (dlq, and the lake): loan.truth the same way (retraining's labels).
- monitor (monitor): the real-time query's scores (read from loan.scores, not scored again) with the
  applications' fields and the outcomes from loan.truth, per window; per window and version, drift
  and accuracy (`models.monitoring.monitor`).

Each query runs as a Kafka principal (`Query.principal`, `stack.acl`): `spark` never reads
loan.truth, so outcomes and monitor run as `outcomes`, in their own process on a secured broker
(`make spark-monitor`). A new windowed stream is one analysis module, one `core.streams` line and
its `Dimension` in WINDOWED.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, Protocol

from pydantic import BaseModel
from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from core import lake
from core.events import ApplicationTruth, HistoricalLoan, LoanApplication
from core.records import ScoreRecord
from core.settings import CHALLENGER, SparkJobSettings, TopicSettings
from core.streams import BY_NAME
from sparky.analyses import channel, fraud, monitor, risk, scores, segment, stats, windows
from sparky.context import Context
from sparky.metrics import DEAD_LETTERS
from sparky.session import stable_id
from sparky.sink import Trigger, kafka_columns, message, start_batches, start_kafka
from sparky.source import PAYLOAD_KEEP, Parser, valid_events
from sparky.transactional import groups, resume, start_rows

log = logging.getLogger(__name__)

WINDOWED = (stats.DIMENSION, segment.DIMENSION, channel.DIMENSION)
Rows = Callable[[DataFrame, int], Sequence[DataFrame]]  # a micro-batch -> its Kafka rows


class Sink(Protocol):
    def start(self, df: DataFrame, query: Query, ctx: Context) -> StreamingQuery: ...


@dataclass(frozen=True)
class Query:
    name: str
    streams: tuple[str, ...]  # what it writes (core.streams)
    trigger: Callable[[SparkJobSettings], Trigger]
    build: Callable[[Context], DataFrame]
    sink: Sink
    principal: str = "spark"  # the Kafka principal it needs (`stack.acl`)

    def start(self, ctx: Context) -> StreamingQuery:
        return self.sink.start(self.build(ctx), self, ctx)


@dataclass(frozen=True)
class JvmRows:
    """Real time, through the exactly-once JVM writer (`sparky.transactional.start_rows`)."""

    def start(self, df: DataFrame, query: Query, ctx: Context) -> StreamingQuery:
        writer_id = stable_id(ctx.spark, ctx.settings.location(query.name))
        return start_rows(df, query.name, ctx.kafka, ctx.topics.applications, writer_id, ctx.settings)


@dataclass(frozen=True)
class Upserts:
    """Spark's Kafka sink: windowed upserts to compacted topics (a replay rewrites the same keys)."""

    def start(self, df: DataFrame, query: Query, ctx: Context) -> StreamingQuery:
        return start_kafka(df, query.name, ctx.kafka, ctx.settings, query.trigger(ctx.settings))


@dataclass(frozen=True)
class Batches:
    """Micro-batches in Kafka transactions (`sparky.transactional.TransactionalSink`): `rows(ctx,
    writer_id)`, called once as the query starts, gives what each batch writes."""

    rows: Callable[[Context, str], Rows]
    mode: str = "append"

    def start(self, df: DataFrame, query: Query, ctx: Context) -> StreamingQuery:
        writer_id = stable_id(ctx.spark, ctx.settings.location(query.name))
        writer, rows = ctx.writer(query.name, writer_id, query.principal), self.rows(ctx, writer_id)

        def handle(batch: DataFrame, batch_id: int) -> None:
            if frames := rows(batch, batch_id):
                writer.write(frames, batch_id)

        return start_batches(df, query.name, handle, ctx.settings, query.trigger(ctx.settings), self.mode)


def realtime(ctx: Context) -> DataFrame:
    """Kafka -> parse, validity -> per application its `records`: its loan.risk record and, with a
    champion, its loan.scores record (the JVM scorer) and the challenger's, flagged shadow, each
    naming the output whose offsets it counts under; the JVM writer writes them in one transaction.
    Starts where the writer's offsets say (`sparky.transactional.resume`)."""
    settings, topics, models = ctx.settings, ctx.topics, ctx.models
    writer_id = stable_id(ctx.spark, settings.location("realtime"))
    outputs = ["risk", "scores"] if models.champion else ["risk"]
    named = groups(ctx.kafka, "realtime", writer_id)
    start = resume(ctx.kafka, topics.applications, named, outputs, settings.starting_offsets)
    apps = ctx.applications(realtime=True, starting_offsets=start, provenance=True)
    rows = [_row(message(BY_NAME["risk"], risk.columns(settings)), topics, "risk")]
    if models.champion is not None:
        apps = apps.withColumn("error", scores.error())
        shadow = [(models.challenger, "shadowed", f"|{CHALLENGER}")] if models.challenger else []
        for model, column, suffix in [(models.champion, "scored", ""), *shadow]:
            apps = apps.withColumn(column, scores.scored(model))
            key, value = message(BY_NAME["scores"], scores.columns(model, F.col(column)))
            rows.append(_row((F.concat(key, F.lit(suffix)), value), topics, "scores"))
    return apps.select(F.array(*rows).alias("records"), "source_partition", "source_offset")


def _row(record: tuple[Column, Column], topics: TopicSettings, stream: str) -> Column:
    """One Kafka row of the real-time query: key, value, topic, and the output it counts under."""
    key, value = record
    topic = F.lit(BY_NAME[stream].topic(topics))
    return F.struct(
        key.alias("key"), value.alias("value"), topic.alias("topic"), F.lit(stream).alias("output")
    )


def windowed(ctx: Context) -> DataFrame:
    """Kafka -> parse -> one windowed aggregation -> loan.stats, loan.segment, loan.channel (per row)."""
    aggregated = windows.build(ctx.applications(), ctx.settings, WINDOWED)
    stream = F.col("stream")

    def routed(pick: Callable[[windows.Dimension], Column]) -> Column:
        cases = [(stream == d.stream, pick(d)) for d in WINDOWED]
        return reduce(lambda acc, c: acc.when(*c), cases[1:], F.when(*cases[0]))

    messages = {d.stream: message(BY_NAME[d.stream], d.record()) for d in WINDOWED}
    return aggregated.select(
        routed(lambda d: messages[d.stream][0]).alias("key"),
        routed(lambda d: messages[d.stream][1]).alias("value"),
        routed(lambda d: F.lit(BY_NAME[d.stream].topic(ctx.topics))).alias("topic"),
    )


def fraud_signals(ctx: Context) -> DataFrame:
    """Kafka -> parse -> per-value velocity state and per-id duplicates, in the JVM (`fraud.signals`)."""
    return fraud.signals(ctx.applications(provenance=True), ctx.settings)


def fraud_rows(ctx: Context, writer_id: str) -> Rows:
    """Flagged applications -> loan.fraud and duplicate application ids -> loan.dlq, in one projection."""
    settings, topics = ctx.settings, ctx.topics
    how, duplicate = fraud.flagging(settings), F.col("duplicate_of_us").isNotNull()
    flagged = message(BY_NAME["fraud"], how.outputs)
    letters = fraud.duplicate_letters(topics.applications, settings.dedup_horizon, PAYLOAD_KEEP)
    letter = message(BY_NAME["dlq"], letters)
    pairs = zip(letter, flagged, ("key", "value"), strict=True)
    columns = [F.when(duplicate, d).otherwise(f).alias(c) for d, f, c in pairs]
    to = F.when(duplicate, BY_NAME["dlq"].topic(topics)).otherwise(BY_NAME["fraud"].topic(topics))
    keep = duplicate | (how.score >= settings.fraud_score_threshold)
    return lambda rows, _: [fraud.wide(rows).where(keep).select(*columns, to.alias("topic"))]


CONTRACTS: dict[str, type[BaseModel]] = {  # lake folder (= input) -> its contract
    "applications": LoanApplication,
    "history": HistoricalLoan,
    "truth": ApplicationTruth,
}


def _archiver(
    folders: tuple[str, ...],
) -> tuple[Callable[[Context], DataFrame], Callable[[Context, str], Rows]]:
    """(build, rows) of a query that archives the inputs `folders` (`core.lake.FOLDERS`) to the lake
    by date and `<writer id>-<batch>` (a replayed batch replaces its own files), dead letters ->
    loan.dlq."""

    def build(ctx: Context) -> DataFrame:
        return ctx.raw([getattr(ctx.topics, f) for f in folders])

    def rows(ctx: Context, writer_id: str) -> Rows:
        parsers = {getattr(ctx.topics, f): (Parser(CONTRACTS[f], ctx.settings), f) for f in folders}
        out = kafka_columns(BY_NAME["dlq"], ctx.topics)
        name = "outcomes" if folders == ("truth",) else "archive"

        def batch_rows(batch: DataFrame, batch_id: int) -> list[DataFrame]:
            letters = []
            for topic, (parser, folder) in parsers.items():
                parsed = parser(batch.where(F.col("topic") == topic))
                # the lake write counts the dead letters on its way (no cache, no second pass); only
                # a batch that has some parses again to explain them (each Python task costs ~0.2 s)
                seen = Observation()
                counted = parsed.observe(seen, F.sum(F.when(F.col("ok"), 0).otherwise(1)).alias("bad"))
                archive(valid_events(counted), ctx.settings.lake(folder), writer_id, batch_id)
                if bad := seen.get.get("bad"):
                    letters.append(parser.dead_letters(parsed).select(*out))
                    DEAD_LETTERS.labels(name, topic).inc(bad)
            return letters

        return batch_rows

    return build, rows


def archive(events: DataFrame, path: str, run_id: str, batch_id: int) -> None:
    """Append one micro-batch to the lake at `path` in the layout of `core.lake`: rewriting the same
    batch replaces only its own files (idempotent replay)."""
    (
        events.withColumns({"date": F.to_date("event_time"), "batch": F.lit(lake.batch(run_id, batch_id))})
        .write.mode("overwrite")
        .partitionBy(*lake.PARTITIONS)
        .parquet(path)
    )


def monitored(ctx: Context) -> DataFrame:
    """Kafka loan.scores (the real-time query's answers) + loan.applications (their fields) +
    loan.truth (outcomes) -> one windowed collection per monitoring window."""
    scores = BY_NAME["scores"].topic(ctx.topics)
    scored = valid_events(Parser(ScoreRecord, ctx.settings)(ctx.raw([scores])))
    truth = valid_events(Parser(ApplicationTruth, ctx.settings)(ctx.raw([ctx.topics.truth])))
    return monitor.build(ctx.applications(), scored, truth, ctx.settings)


def monitor_rows(ctx: Context, writer_id: str) -> Rows:
    """Per window and model version, `models.monitoring.monitor` figures -> loan.monitor."""
    mlflow, settings, spark = ctx.mlflow, ctx.settings, ctx.spark
    schema, topic = "key string, value string, topic string", BY_NAME["monitor"].topic(ctx.topics)

    def reference(name: str, version: str) -> dict[str, Any] | None:
        return monitor.reference(mlflow, name, version) if mlflow else None  # none: no drift figures

    def batch_rows(batch: DataFrame, _: int) -> list[DataFrame]:
        with warnings.catch_warnings():  # a collect interrupted by a stop warns with a Java stack trace
            warnings.filterwarnings("ignore", "toPandas attempted Arrow optimization", UserWarning)
            frame = batch.toPandas()  # ... and raises: a failure is still the query's, logged as such
        found = monitor.records(frame, reference, monitor.alarms(settings))
        return [spark.createDataFrame([(*monitor.message(r), topic) for r in found], schema)]

    return batch_rows


def _every(name: str) -> Callable[[SparkJobSettings], Trigger]:
    """A processing-time trigger from the setting `name`."""
    return lambda s: {"processingTime": str(getattr(s, name))}


ARCHIVE, OUTCOMES = _archiver(("applications", "history")), _archiver(("truth",))
QUERIES = (
    Query("realtime", ("risk", "scores"), lambda s: {"realTime": s.realtime_batch}, realtime, JvmRows()),
    Query("windows", tuple(d.stream for d in WINDOWED), _every("window_trigger"), windowed, Upserts()),
    Query(
        "fraud",
        ("fraud", "dlq"),
        _every("fraud_trigger"),
        fraud_signals,
        Batches(fraud_rows, fraud.OUTPUT_MODE),
    ),
    Query("archive", ("dlq",), _every("archive_trigger"), ARCHIVE[0], Batches(ARCHIVE[1])),
    Query("outcomes", ("dlq",), _every("archive_trigger"), OUTCOMES[0], Batches(OUTCOMES[1]), "outcomes"),
    Query(
        "monitor",
        ("monitor",),
        _every("monitor_trigger"),
        monitored,
        Batches(monitor_rows, "update"),
        "outcomes",
    ),
)
BY_QUERY: Mapping[str, Query] = {q.name: q for q in QUERIES}
JOB, MONITORING = "realtime,windows,fraud,archive", "outcomes,monitor"  # one process per principal
