"""`loans-consume` against a real broker: readable lines, pipeable JSON, a missing topic, a broker down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from core.ports import free_port
from core.settings import KafkaSettings, TopicSettings
from kafka_producer.topics import ensure_topics

pytestmark = pytest.mark.integration

RISK: list[dict[str, Any]] = [
    {
        "application_id": f"app-1a2b3c4d-{i:010d}",
        "event_time": f"2026-01-05T10:42:0{i}.123Z",
        "channel": "web",
        "sub_grade": "B3",
        "loan_amnt": 12000.0 + i,
        "risk_score": 0.31 + i / 10,
        "risk_band": "medium",
        "reason_codes": ["DTI_HIGH", "FICO_LOW"],
        "alert": i == 2,
    }
    for i in range(3)
]


def _env(kafka: KafkaSettings, topics: TopicSettings) -> dict[str, str]:
    return {
        "LOANS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LOANS_TOPICS_OUTPUT_PREFIX": topics.output_prefix,
        "LOANS_TOPICS_DLQ": topics.dlq,
    }


def _consume(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kafka_consumer.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def risk_topic(kafka: KafkaSettings, topics: TopicSettings) -> str:
    """The risk topic of this test, holding the three `RISK` records."""
    topic = topics.output("risk")
    ensure_topics(kafka, topics, [topic])
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all"})
    for record in RISK:
        producer.produce(topic, json.dumps(record).encode(), record["application_id"].encode())
    assert producer.flush(30) == 0
    return topic


def test_prints_one_readable_line_per_record(
    kafka: KafkaSettings, topics: TopicSettings, risk_topic: str, repo_root: Path
) -> None:
    result = _consume(
        ["risk", "--from-beginning", "--no-follow", "--max", "3"], _env(kafka, topics), repo_root
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "10:42:00  app-1a2b…0000  web         B3   $12,000  score 0.31 medium   DTI_HIGH,FICO_LOW",
        "10:42:01  app-1a2b…0001  web         B3   $12,001  score 0.41 medium   DTI_HIGH,FICO_LOW",
        "10:42:02  app-1a2b…0002  web         B3   $12,002  score 0.51 medium   DTI_HIGH,FICO_LOW  [ALERT]",
    ]
    err = result.stderr.splitlines()
    assert risk_topic in err[0] and kafka.bootstrap_servers in err[0]
    assert err[-1] == f"shown 3 records from {risk_topic}"


def test_json_prints_exactly_the_values_and_stops_when_idle(
    kafka: KafkaSettings, topics: TopicSettings, risk_topic: str, repo_root: Path
) -> None:
    result = _consume(["risk", "--json", "--from-beginning", "--no-follow"], _env(kafka, topics), repo_root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line) for line in lines] == RISK
    assert all(": " not in line and ", " not in line for line in lines)  # compact


def test_topic_that_does_not_exist_is_one_line_exit_2(
    kafka: KafkaSettings, topics: TopicSettings, repo_root: Path
) -> None:
    result = _consume(["dlq", "--no-follow"], _env(kafka, topics), repo_root)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: topic {topics.dlq} does not exist yet; start the Spark job (make spark-app-single) "
        "or create topics (make up)"
    ]


def test_broker_down_is_one_line_exit_2(topics: TopicSettings, repo_root: Path) -> None:
    down = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    result = _consume(["risk", "--no-follow"], _env(down, topics), repo_root)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach Kafka at {down.bootstrap_servers}")
