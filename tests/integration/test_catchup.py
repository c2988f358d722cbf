"""A backlog is caught up in bounded batches, with no query failing: applications produced before the
job's first start, and more produced while it is down, are read by every query (the micro-batch
queries at most LOANS_SPARK_MAX_OFFSETS_PER_TRIGGER a batch), nothing is restarted, and every
application reaches loan.risk and loan.scores exactly once. bench/catchup.py does the same with a
million applications and prints each query's rate."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from pyspark.sql import SparkSession

from core.settings import KafkaSettings, MlflowSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import read_topic
from kafka_producer.encode import json_lines
from kafka_producer.producer import EventProducer
from kafka_producer.topics import ensure_topics
from models.registry.versions import promote
from models.training.train import TrainingSource, TrainOptions, train
from sparky.context import Context
from sparky.supervisor import Supervisor

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow

BEFORE, WHILE_DOWN, MOST = 6_000, 3_000, 750  # applications; MOST: a micro-batch's bound


def produce(kafka: KafkaSettings, topic: str, gen: ApplicationGenerator, n: int) -> list[str]:
    producer, ids = EventProducer(kafka), []
    start = datetime.now(UTC) - timedelta(minutes=30)
    for offset in range(0, n, 2_000):
        apps = gen.batch(min(2_000, n - offset), start + timedelta(seconds=offset / 100), 0.01).applications
        producer.send(topic, [a.encode() for a in apps["application_id"]], json_lines(apps))
        ids += apps["application_id"].tolist()
    assert producer.close(60).failed == 0
    return ids


def catch_up(job: Supervisor, kafka: KafkaSettings, topic: str) -> None:
    """Run the job until every query has read `topic` to its end; nothing may fail on the way."""
    ends = _ends(kafka, topic)
    job.run(progress_every_s=30, duration_s=600, until=lambda: not job.behind(topic, ends))
    assert not job.behind(topic, ends), f"still behind after 600 s: {job.behind(topic, ends)}"
    assert not job.failures, f"a query failed on the backlog: {job.failures}"
    for name, query in job.queries.items():
        assert query.isActive, name
        if name != "realtime":  # real time reads as it goes; the micro-batches are bounded
            largest = max((p["numInputRows"] for p in query.recentProgress), default=0)
            assert largest <= MOST * (2 if name == "archive" else 1), f"{name}: a batch of {largest}"


def _ends(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    consumer = Consumer(kafka.consumer_config(f"ends-{uuid.uuid4().hex}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        }
    finally:
        consumer.close()


def test_a_backlog_before_the_first_start_and_while_down_is_caught_up_in_bounded_batches(
    spark: SparkSession,
    kafka: KafkaSettings,
    mlflow_settings: MlflowSettings,
    tmp_path: Path,
    fresh_topics: Callable[..., TopicSettings],
) -> None:
    topics = fresh_topics("c", 2)
    ensure_topics(kafka, topics)
    ml = mlflow_settings.model_copy(update={"model_name": f"catch-{uuid.uuid4().hex[:8]}"})
    train(ml, TrainingSource.synthetic(rows=4000, seed=3), TrainOptions.quick())
    assert promote(ml, force=True).promoted
    gen = ApplicationGenerator(seed=19, fraud_share=0.05)
    ids = produce(kafka, topics.applications, gen, BEFORE)  # before the first start
    settings = SparkJobSettings(
        checkpoint_dir=tmp_path / "chk", lake_dir=tmp_path / "lake", starting_offsets="earliest",
        queries="realtime,windows,fraud,archive", realtime_batch="10 seconds", max_offsets_per_trigger=MOST,
        window_trigger="2 seconds", fraud_trigger="1 second", archive_trigger="2 seconds",
    )  # fmt: skip
    for backlog in (None, WHILE_DOWN):
        if backlog:
            ids += produce(kafka, topics.applications, gen, backlog)  # while the job is down
        job = Supervisor(Context(spark, kafka, topics, settings, ml))
        job.start()
        try:
            catch_up(job, kafka, topics.applications)
        finally:
            job.stop()
    for stream in ("risk", "scores"):
        got = Counter(
            (m.key() or b"").decode() for m in read_topic(kafka, topics.output(stream), len(ids), 60, 2)
        )
        assert set(got) == set(ids), f"{stream}: {len(set(ids) - set(got))} missing"
        assert max(got.values()) == 1, f"{stream}: duplicates"
