"""The job's queries. A query is a unit of cost, not of meaning: the streams it writes share its
fixed per-micro-batch cost (planning, offset and commit logs, state commits), so the job has few,
and only JVM expressions stand between Kafka and the latency-critical `risk` output.

- risk (risk): stateless, JVM only; real-time mode by default (LOANS_SPARK_RISK_MODE), in Kafka
  transactions.
- scores (scores): stateless micro-batches, one Python (Arrow) task each; starts once a champion exists;
  a `challenger` alias is scored beside it (records flagged `shadow`).
- windows (stats, segment, channel): ONE event-time aggregation, each row routed to its stream's topic.
- fraud (fraud): keyed velocity state (numpy history per bucket of values), flagged per micro-batch.
- archive (dlq, and the lake): applications and history, valid ones to the Parquet lake
  (`core.lake`), the rest to loan.dlq with the reason.
- outcomes (dlq, and the lake): loan.truth the same way (retraining's labels).
- monitor (monitor): the registry's versions score the applications again, collected per window with
  the outcomes from loan.truth; per window and version, drift and accuracy (`models.monitor`).
  Starts once a champion exists.

Each query runs as a Kafka principal (`Query.principal`, `core.stack.acl`): `spark` never reads
loan.truth, so outcomes and monitor run as `outcomes`, in their own process on a secured broker
(`make spark-monitor`).

Every query reads Kafka and parses the JSON itself (about 20 µs a message: cheaper than a shared
file feed's listing and logs, measured), from `job.starting_offsets` when its checkpoint is new.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING

from pydantic import BaseModel
from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from core import lake
from core.events import ApplicationTruth, HistoricalLoan, LoanApplication
from core.settings import CHALLENGER, duration
from core.streams import BY_NAME
from sparky.analyses import channel, fraud, monitor, risk, scores, segment, stats, windows
from sparky.metrics import DEAD_LETTERS
from sparky.sink import kafka_columns, message, start_batches, start_kafka
from sparky.source import PAYLOAD_KEEP, Parser, read_kafka, valid_events
from sparky.transactional import start_rows

if TYPE_CHECKING:
    from sparky.job import Job

log = logging.getLogger(__name__)

WINDOWED = (stats.DIMENSION, segment.DIMENSION, channel.DIMENSION)


def start_risk(job: Job) -> StreamingQuery:
    """Kafka -> parse, validity, points rules -> loan.risk; no Python, no state. With
    LOANS_SPARK_EXACTLY_ONCE (the default), real time writes each record in Kafka transactions
    committed every LOANS_SPARK_REALTIME_COMMIT_MS (`sparky.transactional.start_rows`), micro-batches
    one transaction per batch; without it, or in async mode, Spark's Kafka sink (at least once)."""
    settings, realtime = job.settings, job.settings.risk_mode == "realtime"
    where = ["source_partition", "source_offset"] if realtime and settings.exactly_once else []
    apps = job.applications(realtime=realtime, provenance=bool(where))
    out = apps.select(*risk.columns(settings), *where)
    rows = out.select(*kafka_columns(BY_NAME["risk"], job.topics), *where)
    if realtime and where:
        return start_rows(rows, "risk", job.kafka, job.topics.applications, settings)
    if realtime:
        return start_kafka(rows, "risk", job.kafka, settings, {"realTime": settings.realtime_batch})
    trigger = {"processingTime": settings.trigger}
    if settings.risk_mode == "microbatch" and settings.exactly_once:

        def handle(batch: DataFrame, batch_id: int) -> None:
            job.writer("risk").write([batch], batch_id)

        return start_batches(rows, "risk", handle, settings, trigger)
    options = {"asyncProgressTrackingEnabled": "true"} if settings.risk_mode == "async" else {}
    return start_kafka(rows, "risk", job.kafka, settings, trigger, options)


def start_scores(job: Job) -> StreamingQuery:
    """Kafka -> parse -> the champion's scores -> loan.scores, one Python task per micro-batch."""
    champion, mlflow = job.champion, job.mlflow
    assert champion is not None and mlflow is not None  # noqa: S101 (started only with a registry)
    out = kafka_columns(BY_NAME["scores"], job.topics)

    def handle(batch: DataFrame, batch_id: int) -> None:
        ref = champion.current()
        if ref is None:  # the alias was removed after the query started: nothing can score
            raise RuntimeError(f"scores: no champion to score micro-batch {batch_id}: {champion.why_not}")
        # each task of a Python (Arrow) stage costs ~0.15 s whatever its size: one task per batch
        one = batch.coalesce(1)
        frames = [scores.build(one, ref, mlflow).select(*out)]
        rival = job.challenger.current() if job.challenger else None
        if rival is not None and rival.version != ref.version:  # shadow: the same traffic, flagged
            shadow = scores.build(one, rival, mlflow, shadow=True).select(*out)
            frames.append(shadow.withColumn("key", F.concat("key", F.lit(f"|{CHALLENGER}"))))
        job.writer("scores").write(frames, batch_id)

    # scored_at is the micro-batch's time (Spark keeps it in the offset log: a replay gets the same)
    apps = job.applications(starting_offsets=job.scores_start).withColumn("scored_at", F.current_timestamp())
    return start_batches(apps, "scores", handle, job.settings, {"processingTime": job.settings.trigger})


def start_windows(job: Job) -> StreamingQuery:
    """Kafka -> parse -> one windowed aggregation -> loan.stats, loan.segment, loan.channel (per row)."""
    aggregated = windows.build(job.applications(), job.settings, WINDOWED)
    stream = F.col("stream")

    def routed(pick: Callable[[windows.Dimension], Column]) -> Column:
        cases = [(stream == d.stream, pick(d)) for d in WINDOWED]
        return reduce(lambda acc, c: acc.when(*c), cases[1:], F.when(*cases[0]))

    messages = {d.stream: message(BY_NAME[d.stream], d.record()) for d in WINDOWED}
    rows = aggregated.select(
        routed(lambda d: messages[d.stream][0]).alias("key"),
        routed(lambda d: messages[d.stream][1]).alias("value"),
        routed(lambda d: F.lit(BY_NAME[d.stream].topic(job.topics))).alias("topic"),
    )
    return start_kafka(
        rows, "windows", job.kafka, job.settings, {"processingTime": job.settings.window_trigger}
    )


def start_fraud(job: Job) -> StreamingQuery:
    """Kafka -> parse -> per-value velocity state -> flagged applications -> loan.fraud, and
    duplicate application ids -> loan.dlq, in one projection (the stateful batch runs once)."""
    settings, topics = job.settings, job.topics
    how, duplicate = fraud.flagging(settings), F.col("duplicate_of_us").isNotNull()
    flagged = message(BY_NAME["fraud"], how.outputs)
    letters = fraud.duplicate_letters(topics.applications, settings.dedup_horizon, PAYLOAD_KEEP)
    letter = message(BY_NAME["dlq"], letters)
    pairs = zip(letter, flagged, ("key", "value"), strict=True)
    rows = [F.when(duplicate, d).otherwise(f).alias(c) for d, f, c in pairs]
    to = F.when(duplicate, BY_NAME["dlq"].topic(topics)).otherwise(BY_NAME["fraud"].topic(topics))
    keep = duplicate | (how.score >= settings.fraud_score_threshold)

    def handle(signals: DataFrame, batch_id: int) -> None:
        job.writer("fraud").write([signals.where(keep).select(*rows, to.alias("topic"))], batch_id)

    signals = fraud.signals(job.applications(provenance=True), duration(settings.dedup_horizon))
    return start_batches(
        signals, "fraud", handle, settings, {"processingTime": settings.fraud_trigger}, fraud.OUTPUT_MODE
    )


@dataclass(frozen=True)
class Archive:
    """An archiving query's handler: each input topic's valid events to its lake folder, partitioned
    by date and `<run>-<batch>` (a replayed batch replaces its own files), the rest to loan.dlq."""

    job: Job
    name: str  # the query's
    parsers: dict[str, tuple[Parser, str]]  # topic -> (its parser, its lake folder)
    out: list[Column]  # dead letters as Kafka rows

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        letters, run = [], self.job.run_id(self.name)
        for topic, (parser, folder) in self.parsers.items():
            parsed = parser(batch.where(F.col("topic") == topic))
            # the lake write counts the dead letters on its way (no cache, no second pass); only a
            # batch that has some parses again to explain them (each Python task costs ~0.2 s)
            seen = Observation()
            counted = parsed.observe(seen, F.sum(F.when(F.col("ok"), 0).otherwise(1)).alias("bad"))
            archive(valid_events(counted), self.job.settings.lake(folder), run, batch_id)
            if bad := seen.get.get("bad"):
                letters.append(parser.dead_letters(parsed).select(*self.out))
                DEAD_LETTERS.labels(self.name, topic).inc(bad)
        if letters:
            self.job.writer(self.name).write(letters, batch_id)


CONTRACTS: dict[str, type[BaseModel]] = {  # lake folder (= input) -> its contract
    "applications": LoanApplication,
    "history": HistoricalLoan,
    "truth": ApplicationTruth,
}


def _archiver(name: str, folders: tuple[str, ...]) -> Callable[[Job], StreamingQuery]:
    """A query that archives the inputs `folders` (`core.lake.FOLDERS`) to the lake, dead letters
    -> loan.dlq."""

    def start(job: Job) -> StreamingQuery:
        parsers = {getattr(job.topics, f): (Parser(CONTRACTS[f], job.settings), f) for f in folders}
        raw = read_kafka(job.spark, job.kafka, list(parsers), job.settings)
        trigger = {"processingTime": job.settings.archive_trigger}
        handle = Archive(job, name, parsers, kafka_columns(BY_NAME["dlq"], job.topics))
        return start_batches(raw, name, handle, job.settings, trigger)

    start.__doc__ = f"Kafka {', '.join(folders)} -> the lake, dead letters -> loan.dlq."
    return start


def archive(events: DataFrame, path: str, run_id: str, batch_id: int) -> None:
    """Append one micro-batch to the lake at `path` in the layout of `core.lake`: rewriting the same
    batch replaces only its own files (idempotent replay)."""
    (
        events.withColumns({"date": F.to_date("event_time"), "batch": F.lit(lake.batch(run_id, batch_id))})
        .write.mode("overwrite")
        .partitionBy(*lake.PARTITIONS)
        .parquet(path)
    )


def start_monitor(job: Job) -> StreamingQuery:
    """Kafka loan.applications (scored by the registry's versions) + loan.truth (outcomes) -> one
    windowed collection -> per window and model version, `models.monitor` figures -> loan.monitor."""
    mlflow, settings = job.mlflow, job.settings
    assert mlflow is not None  # noqa: S101 (started only with a registry)
    raw = read_kafka(job.spark, job.kafka, [job.topics.truth], settings)
    truth = valid_events(Parser(ApplicationTruth, settings)(raw))
    windowed = monitor.build(job.applications(), truth, mlflow, settings)
    schema = "key string, value string, topic string"
    topic = BY_NAME["monitor"].topic(job.topics)

    def handle(batch: DataFrame, batch_id: int) -> None:
        found = monitor.records(
            batch.toPandas(), lambda n, v: monitor.reference(mlflow, n, v), settings.alarm_psi
        )
        rows = [(*monitor.message(r), topic) for r in found]
        job.writer("monitor").write([job.spark.createDataFrame(rows, schema)], batch_id)

    trigger = {"processingTime": settings.monitor_trigger}
    return start_batches(windowed, "monitor", handle, settings, trigger, "update")


@dataclass(frozen=True)
class Query:
    name: str
    streams: tuple[str, ...]  # what it writes (core.streams)
    start: Callable[[Job], StreamingQuery]
    principal: str = "spark"  # the Kafka principal it needs (`core.stack.acl`)


QUERIES = (
    Query("risk", ("risk",), start_risk),
    Query("scores", ("scores",), start_scores),
    Query("windows", tuple(d.stream for d in WINDOWED), start_windows),
    Query("fraud", ("fraud",), start_fraud),
    Query("archive", ("dlq",), _archiver("archive", ("applications", "history"))),
    Query("outcomes", ("dlq",), _archiver("outcomes", ("truth",)), "outcomes"),
    Query("monitor", ("monitor",), start_monitor, "outcomes"),
)
JOB, MONITORING = "risk,scores,windows,fraud,archive", "outcomes,monitor"  # one process per principal
NEEDS_MODEL = ("scores", "monitor")  # started once the registry has a champion
