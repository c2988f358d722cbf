"""Restart safety: `loans-stream` killed with SIGKILL mid-stream (input still arriving, at no chosen
point) and restarted on the same checkpoints: loan.risk, written in real time in Kafka transactions,
has every application exactly once for a read_committed reader. Before the kill, the running job's
processes are read for the ports they listen on: every one (Spark UI, driver RPC, block manager,
metrics) on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from core.settings import KafkaSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import read_topic
from kafka_producer.encode import json_lines
from kafka_producer.topics import ensure_topics
from tests.integration.jobs import descendants, listening, loopback

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow

PER_ROUND = 150  # applications a second, until the kill and for AFTER_KILL seconds after it
AFTER_KILL = 5
REALTIME_BATCH_S = 5


def start_job(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sparky.cli", "--from-beginning", "--progress-every", "5"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the JVM dies with it
        )


def risk_keys(kafka: KafkaSettings, topics: TopicSettings, expected: int, timeout_s: float) -> list[str]:
    messages = read_topic(kafka, topics.output("risk"), expected, timeout_s, settle_s=1)
    return [key.decode() for m in messages if (key := m.key())]


def all_risk_keys(kafka: KafkaSettings, topics: TopicSettings, ids: set[str], timeout_s: float) -> list[str]:
    """Every key on loan.risk, read again until each of `ids` is there (duplicates do not count)."""
    deadline = time.monotonic() + timeout_s
    keys = risk_keys(kafka, topics, len(ids), 5)
    while not ids <= set(keys) and time.monotonic() < deadline:
        time.sleep(5)
        keys = risk_keys(kafka, topics, len(ids), 5)
    return keys


def kill_mid_stream(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> tuple[list[str], Counter[str]]:
    """Applications sent at PER_ROUND a second, the job killed once risk answers and restarted;
    returns the ids sent and the count of each key on loan.risk (read_committed)."""
    ensure_topics(kafka, topics)
    env = os.environ | {
        "LOANS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LOANS_TOPICS_APPLICATIONS": topics.applications,
        "LOANS_TOPICS_HISTORY": topics.history,
        "LOANS_TOPICS_TRUTH": topics.truth,
        "LOANS_TOPICS_DLQ": topics.dlq,
        "LOANS_TOPICS_OUTPUT_PREFIX": topics.output_prefix,
        "LOANS_TOPICS_PARTITIONS": "1",
        "LOANS_SPARK_MASTER": "local[4]",  # the real-time query holds 1 slot (1 partition), 3 for the rest
        "LOANS_SPARK_REALTIME_BATCH": f"{REALTIME_BATCH_S} seconds",
        "LOANS_SPARK_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "LOANS_SPARK_LAKE_DIR": str(tmp_path / "lake"),
        "LOANS_SPARK_MAX_OFFSETS_PER_TRIGGER": "300",  # several batches, so the kill lands mid-stream
    }
    log = tmp_path / "job.log"
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    gen = ApplicationGenerator(seed=11)
    ids: list[str] = []
    job = start_job(env, log)
    killed_at: int | None = None
    deadline = time.monotonic() + 180
    try:
        for i in range(1000):
            if killed_at is not None and i >= killed_at + AFTER_KILL:
                break
            assert time.monotonic() < deadline, f"the job never wrote to loan.risk; log: {log}"
            batch = gen.batch(PER_ROUND, datetime(2026, 3, 1, 9, 0, tzinfo=UTC), 0.01).applications
            for line, app_id in zip(json_lines(batch), batch["application_id"], strict=True):
                producer.produce(topics.applications, line, app_id.encode())
            producer.flush(10)
            ids += batch["application_id"].tolist()
            if killed_at is None and risk_keys(kafka, topics, 1, timeout_s=1):
                exposed = {(a, p) for a, p in listening(descendants(job.pid)) if not loopback(a)}
                assert not exposed, f"the job listens beyond loopback: {sorted(exposed)}"
                os.killpg(job.pid, signal.SIGKILL)  # mid-stream: input still arriving
                job.wait(30)
                killed_at = i
                job = start_job(env, log)  # same checkpoints
            time.sleep(1)
        keys = all_risk_keys(kafka, topics, set(ids), timeout_s=240)
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        job.wait(60)
    counts = Counter(keys)
    missing = set(ids) - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"\nrestart: {len(ids)} applications, {len(missing)} missing, {duplicates} duplicates in loan.risk")
    assert not missing, f"{len(missing)} applications missing from loan.risk after the restart; log: {log}"
    assert set(counts) == set(ids)
    return ids, counts


def test_sigkill_mid_stream_then_restart_gives_each_application_once(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    _, counts = kill_mid_stream(kafka, topics, tmp_path)
    assert max(counts.values()) == 1, f"duplicates: {sum(n - 1 for n in counts.values())}"
