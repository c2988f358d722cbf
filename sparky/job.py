"""The one Spark Structured Streaming job: Kafka in, six streams and model monitoring, dead letters
and the lake out.

`Job.start()` starts the queries of `sparky.queries.QUERIES` named in LOANS_SPARK_QUERIES (risk,
scores, windows, fraud, archive; outcomes and monitor in a process of their own on a secured
broker), each checkpointed under LOANS_SPARK_CHECKPOINT_DIR/<query>; `Job.run()` watches them: it
logs each query's progress, starts scores and monitor once the registry has a champion, and restarts
a query that fails from its checkpoint with backoff (a bounded number of times; then it raises). If
one query fails to start, those already running are stopped and the error raised.

Scores: while the registry has no champion the scores query is not started (the other streams
run); once one exists it starts from its checkpoint, or, with none, from where the job's other
queries started (a new job) or the earliest offset Kafka still holds (a job that ran without a
champion), so no application is skipped and Spark's own offsets say what was scored. A version the
alias names is loaded on the driver first (`sparky.champion`): one that fails the loader's checks
is refused, and scoring stays on the version it had."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from core.errors import ConfigError
from core.events import LoanApplication
from core.settings import CHALLENGER, KafkaSettings, MlflowSettings, SparkJobSettings, TopicSettings
from sparky.champion import Champion
from sparky.metrics import late_rows, read_offsets
from sparky.queries import NEEDS_MODEL, QUERIES
from sparky.session import exists
from sparky.sink import AtLeastOnce, Writer
from sparky.source import Parser, read_kafka, valid_events
from sparky.transactional import TransactionalSink

log = logging.getLogger(__name__)


@dataclass
class Job:
    """Everything the queries need, built once at the entry point, and the queries it runs."""

    spark: SparkSession
    kafka: KafkaSettings
    topics: TopicSettings
    settings: SparkJobSettings
    mlflow: MlflowSettings | None = None  # None: no scores
    queries: dict[str, StreamingQuery] = field(default_factory=dict)
    scores_start: str = "earliest"  # where a new scores checkpoint starts (see the module docstring)
    writers: dict[str, Writer] = field(default_factory=dict)
    restarts: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (count, when last)

    @cached_property
    def champion(self) -> Champion | None:
        return Champion(self.mlflow, self.settings.champion_poll_s) if self.mlflow else None

    @cached_property
    def challenger(self) -> Champion | None:
        """The `challenger` alias: scored beside the champion, records flagged shadow."""
        return Champion(self.mlflow, self.settings.champion_poll_s, CHALLENGER) if self.mlflow else None

    @cached_property
    def parser(self) -> Parser:
        return Parser(LoanApplication, self.settings)

    def run_id(self, query: str) -> str:
        """The id Spark keeps in query `query`'s checkpoint, shortened: the same on every restart from
        that checkpoint, a new one for a new (or reset) checkpoint at the same place. It names the
        lake partitions and the transactions. Only while the query is active."""
        return next(str(q.id) for q in self.spark.streams.active if q.name == query)[:8]

    def applications(
        self, realtime: bool = False, starting_offsets: str | None = None, provenance: bool = False
    ) -> DataFrame:
        """Valid live applications, read from Kafka and parsed (a new source per query); with
        `provenance`, each with its message and where it came from (`sparky.source.PROVENANCE`)."""
        raw = read_kafka(
            self.spark, self.kafka, [self.topics.applications], self.settings, starting_offsets, realtime
        )
        return valid_events(self.parser(raw), provenance)

    def start(self) -> list[StreamingQuery]:
        """Start every query (scores only when a champion exists); if one fails to start, stop those
        already running and raise."""
        wanted = self.settings.queries.split(",")
        if unknown := sorted(set(wanted) - {q.name for q in QUERIES}):
            raise ConfigError(
                f"invalid setting LOANS_SPARK_QUERIES={self.settings.queries!r}: no query "
                f"{', '.join(unknown)}; choose from {', '.join(q.name for q in QUERIES)}"
            )
        new_job = not any(exists(self.spark, self.settings.location(q, "offsets")) for q in wanted)
        if new_job:
            self.scores_start = self.settings.starting_offsets
        where = f"the {self.settings.starting_offsets} offsets (LOANS_SPARK_STARTING_OFFSETS)"
        log.info(
            "checkpoints %s: %s", self.settings.checkpoint_dir,
            f"new, every query starts at {where}" if new_job else "found, every query resumes from them",
        )  # fmt: skip
        try:
            for query in QUERIES:
                if query.name not in wanted or (query.name in NEEDS_MODEL and not self.champion_ready()):
                    continue
                self.queries[query.name] = query.start(self)
        except Exception:
            self.stop()
            raise
        waiting = [q for q in NEEDS_MODEL if q in wanted and q not in self.queries]
        log.info(
            "started %d queries: %s%s",
            len(self.queries),
            ", ".join(self.queries),
            (f"; {' and '.join(waiting)} waiting for a champion" if waiting else "")
            if self.mlflow
            else "; scores and monitor off (no MLflow settings)",
        )
        return list(self.queries.values())

    def writer(self, query: str) -> Writer:
        """How query `query`'s micro-batches reach Kafka: in transactions (exactly once, see
        `sparky.transactional`) or, with LOANS_SPARK_EXACTLY_ONCE=false, at least once. Called from
        the query's own micro-batches, so the query is active and its id (kept in its checkpoint)
        names its transactions."""
        if query not in self.writers:
            if self.settings.exactly_once:
                self.writers[query] = TransactionalSink(
                    self.kafka, self.topics.commits, query, self.run_id(query), self.settings.failpoint
                )
            else:
                self.writers[query] = AtLeastOnce(self.kafka, query, self.settings.failpoint)
        return self.writers[query]

    def champion_ready(self) -> bool:
        return self.champion is not None and self.champion.current() is not None

    def waiting(self) -> list[str]:
        """The queries that need a model and have not started (while the registry has no champion)."""
        wanted = self.settings.queries.split(",")
        return [q for q in NEEDS_MODEL if q in wanted and q not in self.queries] if self.champion else []

    def start_scores_when_ready(self) -> None:
        """Start scores and monitor if they wait and the registry now has a champion."""
        if not (waiting := self.waiting()) or not self.champion_ready():
            return
        for name in waiting:
            self.queries[name] = next(q.start for q in QUERIES if q.name == name)(self)
        log.info(
            "%s: started (from the checkpoint, or %s offsets when new)", ", ".join(waiting), self.scores_start
        )

    def failed(self) -> StreamingQuery | None:
        return next((q for q in self.queries.values() if not q.isActive), None)

    def run(
        self,
        progress_every_s: float = 30.0,
        duration_s: float | None = None,
        stop: threading.Event | None = None,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Watch the queries until `duration_s` passes, `stop` is set or `until()` holds: restart a
        failed query (`restart`, which raises once it gives up), log progress, start scores once a
        champion exists."""
        started = logged = time.monotonic()
        while duration_s is None or time.monotonic() - started < duration_s:
            if (stop is not None and stop.is_set()) or (until is not None and until()):
                return
            try:
                self.spark.streams.awaitAnyTermination(1)
            except StreamingQueryException:  # a query failed: restarted below
                self.spark.streams.resetTerminated()
            if (failed := self.failed()) is not None:
                self.restart(failed, stop)
            self.start_scores_when_ready()
            if time.monotonic() - logged >= progress_every_s:
                self.log_progress()
                logged = time.monotonic()

    def behind(self, topic: str, target: dict[int, int]) -> list[str]:
        """The queries that have not yet read `topic` up to `target` (partition -> end offset), as
        their last progress reports; scores while it waits for a champion."""
        late = self.waiting() if self.champion_ready() else []
        for name, q in self.queries.items():
            done = read_offsets(q.lastProgress or {}, topic)
            if any(done.get(p, 0) < end for p, end in target.items() if end > 0):
                late.append(name)
        return late

    def restart(self, query: StreamingQuery, stop: threading.Event | None = None) -> None:
        """Restart a failed query from its checkpoint after a backoff (LOANS_SPARK_RESTART_BACKOFF_S,
        doubling), at most LOANS_SPARK_QUERY_RESTARTS times in a row (the count starts again after
        10 quiet minutes); then, or when its offsets were lost to retention, raise."""
        name, error = str(query.name), str(query.exception() or "stopped")
        reason = error.strip().splitlines()[0][:300] if error.strip() else "stopped"
        if "failOnDataLoss" in error or "data may have been lost" in error.lower():
            raise RuntimeError(
                f"query {name}: offsets its checkpoint needs are gone from Kafka (retention or a deleted "
                f"topic): {reason}. To skip them, run with LOANS_SPARK_FAIL_ON_DATA_LOSS=false"
            )
        count, last = self.restarts.get(name, (0, 0.0))
        count = 1 if time.monotonic() - last > 600 else count + 1
        if count > self.settings.query_restarts:
            raise RuntimeError(f"query {name} failed {count} times in a row; last: {reason}")
        wait = min(self.settings.restart_backoff_s * 2 ** (count - 1), 120.0)
        log.warning(
            "query %s failed (%s); restarting it from its checkpoint in %.0f s (%d of %d)",
            name, reason, wait, count, self.settings.query_restarts,
        )  # fmt: skip
        if stop is not None and stop.wait(wait):
            return
        if stop is None:
            time.sleep(wait)
        self.writers.pop(name, None)  # a new producer: it fences the old one and reads the last marker
        self.queries[name] = next(q.start for q in QUERIES if q.name == name)(self)
        self.restarts[name] = (count, time.monotonic())

    def log_progress(self) -> None:
        for name, q in self.queries.items():
            p: dict[str, Any] = q.lastProgress or {}
            log.info(
                "%-8s in %7.0f/s  done %7.0f/s  late dropped %d",
                name,
                p.get("inputRowsPerSecond", 0.0) or 0.0,
                p.get("processedRowsPerSecond", 0.0) or 0.0,
                late_rows(p),
            )

    def stop(self, restore_logs: bool = True) -> None:
        """Stop every query, the latency-critical ones last. A requested stop interrupts the tasks
        running (a real-time query always has some), which Spark logs as task errors with stack
        traces; they say nothing here, so Spark's own log is silenced while the queries stop (and
        stays so unless `restore_logs`: interrupted tasks can still report as the session ends)."""
        context, py4j = self.spark.sparkContext, logging.getLogger("py4j")  # py4j: interrupted foreachBatch
        context.setLogLevel("OFF")
        py4j_level, py4j.level = py4j.level, logging.CRITICAL
        try:
            for name in reversed(list(self.queries)):
                self.queries[name].stop()
            self.writers.clear()  # their producers end with them (no transaction is open between batches)
            deadline = time.monotonic() + 10  # the interrupted tasks end (and log) after stop() returns
            while context.statusTracker().getActiveStageIds() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            if restore_logs:
                context.setLogLevel(self.settings.log_level)
                py4j.setLevel(py4j_level)
        log.info("stopped %d queries", len(self.queries))


LOCAL = re.compile(r"^local\[(\d+|\*)(,\d+)?\]$")


def resolve_master(settings: SparkJobSettings, partitions: int) -> SparkJobSettings:
    """`settings` with a master that has a task slot for every partition real-time risk holds and
    some for the other queries: `local[*]` becomes cores + partitions; a smaller `local[N]` is a
    ConfigError saying what to set."""
    match = LOCAL.match(settings.master)
    if settings.risk_mode != "realtime" or match is None or "risk" not in settings.queries.split(","):
        return settings
    cores = os.cpu_count() or 2
    needed = partitions + 2
    if match.group(1) == "*":
        master = f"local[{max(cores + partitions, needed)}{match.group(2) or ''}]"
        log.info(
            "master %s: %d cores + %d real-time risk slots -> %s", settings.master, cores, partitions, master
        )
        return settings.model_copy(update={"master": master})
    if int(match.group(1)) < needed:
        raise ConfigError(
            f"LOANS_SPARK_MASTER={settings.master} has {match.group(1)} task slots, but real-time risk "
            f"holds one per partition of the input topic ({partitions}) and the other queries need 2 more: "
            f"use local[{needed}] or more (threads, not cores), or LOANS_SPARK_RISK_MODE=async"
        )
    return settings
