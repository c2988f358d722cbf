"""A micro-batch that was committed to Kafka but not to Spark's commit log (the job stopped or
crashed between the two) is replayed on restart and skipped by `TransactionalSink`, and the skip
must still run the batch's plan: Spark 4.1 checks that every state store of a stateful foreachBatch
query committed (STATE_STORE_COMMIT_VALIDATION_FAILED otherwise) — CI's catch-up test saw fraud fail
so after a stop. Here every batch is already committed, so every batch is a skipped replay."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core.settings import KafkaSettings, SparkJobSettings, TopicSettings
from kafka_producer.topics import ensure_topics
from sparky.source import read_kafka
from sparky.transactional import TransactionalSink

pytestmark = pytest.mark.integration


def test_a_skipped_replay_of_a_stateful_batch_still_commits_its_state(
    spark: SparkSession, kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    ensure_topics(kafka, topics, [topics.applications, topics.commits, topics.output("fraud")])
    producer = Producer(kafka.producer_config("replay"))
    for i in range(40):
        producer.produce(topics.applications, f"v{i % 4}", f"k{i}")
    assert producer.flush(30) == 0

    sink = TransactionalSink(kafka, topics.commits, "replay", uuid.uuid4().hex[:8])
    sink.last = 10**9  # as if every batch had been committed before a restart
    written: list[int] = []

    def handle(batch: DataFrame, batch_id: int) -> None:
        frame = batch.select(
            F.col("value").alias("key"), F.col("count").cast("string").alias("value"),
            F.lit(topics.output("fraud")).alias("topic"),
        )  # fmt: skip
        written.append(sink.write([frame], batch_id))

    settings = SparkJobSettings(checkpoint_dir=tmp_path, starting_offsets="earliest")
    raw = read_kafka(spark, kafka, [topics.applications], settings, "earliest", False)
    counts = raw.select(F.col("value").cast("string").alias("value")).groupBy("value").count()
    query = (
        counts.writeStream.outputMode("update").foreachBatch(handle)
        .option("checkpointLocation", str(tmp_path / "chk")).start()
    )  # fmt: skip
    try:
        query.processAllAvailable()
        assert query.isActive and query.exception() is None, query.exception()
        assert written and not any(written), written  # skipped, yet the query lives
    finally:
        query.stop()
