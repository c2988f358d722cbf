"""What every query of the job needs, built once at start-up and handed over frozen: the session, the
settings, the Kafka sources, the model versions the scoring runs. A query never calls back into
whatever started it; the supervisor (`sparky.supervisor`) makes a new context when a model moves.

    ctx = Context(spark, kafka, topics, settings, mlflow)
    ctx.applications(realtime=True, provenance=True)      # parsed, valid live applications
    ctx.writer("fraud", query_id)                         # its micro-batches' exactly-once writer
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from pyspark.sql import DataFrame, SparkSession

from core.events import LoanApplication
from core.settings import KafkaSettings, MlflowSettings, SparkJobSettings, TopicSettings
from sparky.analyses.scores import Model
from sparky.source import Parser, read_kafka, valid_events
from sparky.transactional import TransactionalSink


@dataclass(frozen=True)
class Models:
    """The versions the scoring runs: the champion (None: no scores yet) and a challenger scored in
    shadow beside it."""

    champion: Model | None = None
    challenger: Model | None = None

    def describe(self) -> str:
        if self.champion is None:
            return "no champion"
        shadow = f", challenger v{self.challenger.ref.version} in shadow" if self.challenger else ""
        return f"{self.champion.ref.name} v{self.champion.ref.version}{shadow}"


@dataclass(frozen=True)
class Context:
    spark: SparkSession
    kafka: KafkaSettings
    topics: TopicSettings
    settings: SparkJobSettings
    mlflow: MlflowSettings | None = None  # None: no scores, no monitoring
    models: Models = field(default_factory=Models)

    @cached_property
    def parser(self) -> Parser:
        return Parser(LoanApplication, self.settings)

    def raw(
        self, topics: list[str], starting_offsets: str | None = None, realtime: bool = False
    ) -> DataFrame:
        """Raw Kafka records of `topics` (a new source per query)."""
        return read_kafka(self.spark, self.kafka, topics, self.settings, starting_offsets, realtime)

    def applications(
        self, realtime: bool = False, starting_offsets: str | None = None, provenance: bool = False
    ) -> DataFrame:
        """Valid live applications, read from Kafka and parsed; with `provenance`, each with its
        message and where it came from (`sparky.source.PROVENANCE`)."""
        raw = self.raw([self.topics.applications], starting_offsets, realtime)
        return valid_events(self.parser(raw), provenance)

    def writer(self, query: str, query_id: str, principal: str) -> TransactionalSink:
        """Query `query`'s exactly-once micro-batch writer (`sparky.transactional`), its transactions
        named by `query_id` (the id Spark keeps in the query's checkpoint), its markers in the commits
        topic of the query's `principal`."""
        return TransactionalSink(self.kafka, self.topics.commits_of(principal), query, query_id[:8])
