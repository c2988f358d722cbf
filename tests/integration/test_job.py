"""The whole job through a real broker and a real Spark session: valid applications reach every
output exactly as expected, malformed messages all land in the DLQ with reasons, the lake fills."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pyspark.sql import SparkSession

from core.settings import KafkaSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator, Batch
from generator.history import synthetic_history
from kafka_consumer.read import read_topic
from kafka_producer.encode import json_lines
from kafka_producer.topics import ensure_topics
from sparky.context import Context
from sparky.supervisor import Supervisor

pytestmark = pytest.mark.integration

START = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
N_APPS = 400


def read_all(kafka: KafkaSettings, topic: str, until: int, timeout_s: float = 180) -> list[dict]:
    """Values on `topic` from the beginning, read until `until` records or the deadline (+3 s)."""
    return [
        json.loads(value)
        for m in read_topic(kafka, topic, until, timeout_s, settle_s=3)
        if (value := m.value())
    ]


MALFORMED = {
    "invalid json": b"{not json",
    "wrong type": None,  # filled from a real application below
    "missing field": None,
    "not utf-8": None,
    "empty": b"",
    "oversized": b'{"pad": "' + b"x" * 120_000 + b'"}',
}


@pytest.fixture
def job_run(
    spark: SparkSession, kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> Iterator[tuple[Supervisor, Batch]]:
    ensure_topics(kafka, topics)
    batch = ApplicationGenerator(seed=31, customers=3_000).batch(N_APPS, START, 0.5)
    lines = json_lines(batch.applications)
    wrong, missing = json.loads(lines[0]), json.loads(lines[1])
    wrong.update(application_id="bad-type", loan_amnt="lots")
    missing.update(application_id="bad-missing")
    del missing["fico_range_low"]
    malformed = {
        **MALFORMED,
        "wrong type": json.dumps(wrong).encode(),
        "missing field": json.dumps(missing).encode(),
        "not utf-8": lines[2].replace(b'"email":"', b'"email":"\xff'),  # else valid: a leak shows twice
    }
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "message.max.bytes": 2_000_000})
    for line, app_id in zip(lines, batch.applications["application_id"], strict=True):
        producer.produce(topics.applications, line, app_id.encode())
    for name, payload in malformed.items():
        producer.produce(topics.applications, payload, name.encode())
    history = synthetic_history(seed=2, n=50)
    for line, loan_id in zip(json_lines(history), history["id"], strict=True):
        producer.produce(topics.history, line, loan_id.encode())
    assert producer.flush(30) == 0
    settings = SparkJobSettings(
        checkpoint_dir=tmp_path / "chk",
        lake_dir=tmp_path / "lake",
        starting_offsets="earliest",
        window_trigger="2 seconds",
        archive_trigger="2 seconds",
        watermark="10 minutes",
        realtime_batch="10 seconds",
    )
    job = Supervisor(Context(spark, kafka, topics, settings))
    job.start()
    try:
        yield job, batch
    finally:
        job.stop()


def test_every_output_of_the_job(
    job_run: tuple[Supervisor, Batch], kafka: KafkaSettings, topics: TopicSettings, spark: SparkSession
) -> None:
    job, batch = job_run
    risk = read_all(kafka, topics.output("risk"), N_APPS)
    ids = [r["application_id"] for r in risk]
    assert sorted(ids) == sorted(batch.applications["application_id"])  # every valid one, exactly once
    assert all(0 <= r["risk_score"] <= 1 and r["risk_band"] for r in risk)

    dlq = read_all(kafka, topics.dlq, len(MALFORMED))
    reasons = {r["key"] if r.get("key") is not None else "": r["reason"] for r in dlq}
    assert len(dlq) == len(MALFORMED)
    assert reasons["not utf-8"].startswith("not valid UTF-8: byte 0xff at offset ")
    assert reasons["invalid json"] == "not a JSON object"
    assert reasons["empty"] == "empty value"
    assert "exceeds LOANS_SPARK_MAX_MESSAGE_BYTES" in reasons["oversized"]
    assert 'field loan_amnt: expected double, got ["lots"]' in reasons["wrong type"]
    assert reasons["missing field"] == "missing required field fico_range_low"
    assert all(r["source_topic"] == topics.applications and r["source_offset"] >= 0 for r in dlq)

    stats = read_all(kafka, topics.output("stats"), 1, timeout_s=120)
    latest: dict[str, dict] = {}
    for record in stats:  # update mode: the last record per window wins
        latest[record["window_start"]] = record
    assert sum(r["applications"] for r in latest.values()) == N_APPS
    windows = batch.applications["event_time"].dt.floor("1min").value_counts()
    assert sorted(r["applications"] for r in latest.values()) == sorted(windows.tolist())

    channels = read_all(kafka, topics.output("channel"), 1, timeout_s=60)
    assert {r["channel"] for r in channels} == set(batch.applications["channel"])

    lake = job.ctx.settings.lake("applications")
    deadline = time.monotonic() + 60
    while not Path(lake).exists() or spark.read.parquet(lake).count() < N_APPS:
        assert time.monotonic() < deadline, "the lake did not receive every application within 60 s"
        time.sleep(2)
    assert spark.read.parquet(lake).count() == N_APPS
    assert spark.read.parquet(job.ctx.settings.lake("history")).count() == 50
    assert all(q.isActive for q in job.queries.values())  # no message stopped the job
