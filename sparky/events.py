"""One micro-batch of live applications: parsed once, then every per-application output.

Per batch, in this order (the latency-critical outputs first):
1. risk and scores to `loan.risk` and `loan.scores`: ONE Spark job over the parsed batch (kept in
   memory for the batch), one Kafka write for both topics (each Spark job costs the driver a few
   hundred milliseconds here, whatever its size);
2. the valid applications to the feed (Parquet, one folder per batch), which the windowed, fraud
   and lake queries read;
3. dead letters to `loan.dlq`, only when the batch has any: a look at the cached batch (~0.1 s)
   says, which is cheaper than writing an empty Python stage into step 1 (~0.3 s, measured).
Every projection is built once, when the job starts, and reused: building a Spark expression is a
round trip into the JVM, and rebuilding them per batch cost the driver a second a batch here.

Scores follow the registry alias (`Champion`): looked up at most every `champion_poll_s`, so when
`make promote` moves it, the next batches are scored by the new version, without a restart. While
there is no champion, batches are written without scores and the first such batch is remembered
(`<checkpoints>/scores-pending`); once a champion exists, the waiting applications are scored from
the feed (as far back as the feed keeps them) and the mark is removed.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core.errors import ServiceError
from core.events import LoanApplication
from core.settings import KafkaSettings, MlflowSettings, SparkJobSettings, TopicSettings
from models.registry import ModelRef, resolve
from sparky.analyses import risk, scores
from sparky.sink import kafka_columns, write_frames
from sparky.source import DEAD_LETTER_COLUMNS, Parser

log = logging.getLogger(__name__)

CHAMPION = "champion"
APPLICATION_KEY = ("application_id",)
DLQ_KEY = ("source_topic", "source_partition", "source_offset")


@dataclass
class Champion:
    """The version the alias names, asked of the registry at most every `poll_s` seconds. A registry
    that does not answer keeps the version already in use (and says so); none yet is None."""

    mlflow: MlflowSettings
    poll_s: float
    ref: ModelRef | None = None
    checked: float = float("-inf")
    why_not: str = ""

    def current(self) -> ModelRef | None:
        if time.monotonic() - self.checked < self.poll_s:
            return self.ref
        self.checked = time.monotonic()
        try:
            found = resolve(self.mlflow, CHAMPION)
        except ServiceError as exc:
            if self.ref is not None:
                log.warning("scores: staying on v%s: %s", self.ref.version, exc)
            self._waiting(str(exc))
            return self.ref
        if found is None and self.ref is None:
            self._waiting(
                f"model {self.mlflow.model_name!r} has no {CHAMPION!r} alias at {self.mlflow.tracking_uri} "
                "(run `make train` and `make promote`)"
            )
        elif found is not None and (self.ref is None or found.version != self.ref.version):
            was = f" (was v{self.ref.version})" if self.ref else ""
            log.info("scores: now scoring with %s v%s @%s%s", found.name, found.version, CHAMPION, was)
            self.ref = found
        return self.ref

    def _waiting(self, why: str) -> None:
        if self.ref is None:
            self.why_not = why
            log.warning("scores: waiting: %s; the other streams run meanwhile", why)


@dataclass
class LiveBatches:
    """The `events` query's batch handler (see the module docstring)."""

    spark: SparkSession
    kafka: KafkaSettings
    topics: TopicSettings
    settings: SparkJobSettings
    feed_dir: Path
    mlflow: MlflowSettings | None = None  # None: no scores
    parser: Parser = field(init=False)
    champion: Champion | None = field(init=False)
    lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.parser = Parser(LoanApplication, self.settings)
        self.champion = Champion(self.mlflow, self.settings.champion_poll_s) if self.mlflow else None
        # built once, applied to every batch
        self.valid = F.col("ok")
        self.invalid = ~F.col("ok")
        self.event = [F.col(f"event.{name}").alias(name) for name in LoanApplication.model_fields]
        self.risk = risk.columns(self.settings)
        self.risk_out = kafka_columns(risk.OUTPUT_COLUMNS, APPLICATION_KEY, self.topics.output("risk"))
        self.scores_out = kafka_columns(scores.OUTPUT_COLUMNS, APPLICATION_KEY, self.topics.output("scores"))
        self.dlq_out = kafka_columns(DEAD_LETTER_COLUMNS, DLQ_KEY, self.topics.dlq)

    @property
    def pending_file(self) -> Path:
        return Path(self.settings.checkpoint_dir) / "scores-pending"

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        with self.lock:
            self.handle(batch, batch_id)

    def handle(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        parsed = self.parser(batch).persist()
        try:
            applications = parsed.where(self.valid).select(*self.event)
            ref = self.champion.current() if self.champion else None
            frames = [applications.select(*self.risk).select(*self.risk_out)]
            if ref is not None:
                frames.append(self.scored(applications, ref))
            elif self.champion is not None and not self.pending_file.exists():
                self.pending_file.write_text(str(batch_id))  # the first batch without scores
            write_frames(frames, self.kafka)
            written = time.monotonic()
            self.write_feed(applications, batch_id)
            if ref is not None and self.pending_file.exists():
                self.score_backlog(ref, batch_id)
            bad = self.write_dead_letters(self.parser, parsed)
            log.debug(
                "events batch %d in %.2f s (risk%s %.2f s)%s",
                batch_id, time.monotonic() - started, " + scores" if ref else "", written - started,
                ", dead letters" if bad else "",
            )  # fmt: skip
        finally:
            parsed.unpersist()

    def write_dead_letters(self, parser: Parser, parsed: DataFrame) -> bool:
        """The dead letters of `parsed` (a cached batch of `parser`) to `loan.dlq`, only when it has
        any (a look at the cached batch, ~0.1 s); True when it had."""
        if parsed.where(self.invalid).isEmpty():
            return False
        write_frames([parser.dead_letters(parsed).select(*self.dlq_out)], self.kafka)
        return True

    def scored(self, applications: DataFrame, ref: ModelRef) -> DataFrame:
        """Scores of `applications` in ONE Python task: each task of a Python (Arrow) stage costs
        ~0.15 s whatever its size, the model ~2 µs a row (2,000 rows: 705 ms on 3 partitions, 333 ms
        on 1, measured), so a micro-batch is scored in one piece."""
        mlflow = self.mlflow or MlflowSettings()  # a ref comes only from self.mlflow's registry
        return scores.build(applications.coalesce(1), ref, mlflow).select(*self.scores_out)

    def write_feed(self, applications: DataFrame, batch_id: int) -> None:
        """Write batch `batch_id` once: a replayed batch whose folder is complete is not written again
        (new file names would be read twice); folders older than `feed_keep_batches` are removed."""
        folder = self.feed_dir / f"batch_id={batch_id}"
        if not (folder / "_SUCCESS").exists():
            applications.coalesce(1).write.mode("overwrite").parquet(str(folder))
        for old in self.feed_dir.glob("batch_id=*"):
            if int(old.name.split("=")[1]) < batch_id - self.settings.feed_keep_batches:
                shutil.rmtree(old, ignore_errors=True)

    def catch_up(self) -> None:
        """Between batches: if applications wait for a champion and one exists now, score them (so
        they do not wait for the next application to arrive)."""
        with self.lock:
            if self.champion is None or not self.pending_file.exists():
                return
            if (ref := self.champion.current()) is not None:
                batches = [int(f.name.split("=")[1]) for f in self.feed_dir.glob("batch_id=*")]
                self.score_backlog(ref, max(batches, default=-1) + 1)

    def watch(self, running: Callable[[], bool]) -> None:
        """`catch_up` every `champion_poll_s` while `running()`, in a daemon thread."""

        def loop() -> None:
            while running():
                time.sleep(self.settings.champion_poll_s)
                if self.pending_file.exists():
                    self.catch_up()

        threading.Thread(target=loop, name="scores-catch-up", daemon=True).start()

    def score_backlog(self, ref: ModelRef, end: int) -> None:
        """Score the applications of the batches from the pending mark to `end - 1`, which arrived
        before there was a champion, from the feed; then remove the mark."""
        first = int(self.pending_file.read_text())
        folders = [
            str(f)
            for i in range(first, end)
            if ((f := self.feed_dir / f"batch_id={i}") / "_SUCCESS").exists()
        ]
        if gone := (end - first) - len(folders):
            log.warning("scores: %d early batches are no longer in the feed and stay unscored", gone)
        if folders:
            waiting = self.spark.read.parquet(*folders)
            write_frames([self.scored(waiting, ref)], self.kafka)
            log.info("scores: scored the applications of %d batches that waited for a champion", len(folders))
        self.pending_file.unlink(missing_ok=True)
