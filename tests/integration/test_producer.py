"""The producer against a real broker: exactly-once readback, a broker that is down, bad CSV rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from core.errors import DeliveryError
from core.ports import free_port
from core.settings import KafkaSettings, TopicSettings
from generator.applications import ApplicationGenerator
from generator.history import synthetic_history
from kafka_consumer.read import read_topic
from kafka_producer.producer import EventProducer
from kafka_producer.publish import Pace, Progress, publish_live
from kafka_producer.topics import ensure_topics

pytestmark = pytest.mark.integration


def read_keys(kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 60) -> Counter[str]:
    """How often each key is on `topic` (from the start), read until `expected` or the deadline, + 2 s."""
    return Counter(key.decode() for m in read_topic(kafka, topic, expected, timeout_s) if (key := m.key()))


def test_sends_n_and_reads_back_exactly_n_each_once(kafka: KafkaSettings, topics: TopicSettings) -> None:
    ensure_topics(kafka, topics)
    producer = EventProducer(kafka)
    generator = ApplicationGenerator(seed=21, customers=5_000)
    sent = publish_live(
        producer, topics, generator, Pace(rate=0, count=12_345, batch=2_000), Progress(producer.stats)
    )
    stats = producer.close()
    assert sent == 12_345
    assert (stats.delivered, stats.failed) == (2 * 12_345, 0)  # applications + truth
    keys = read_keys(kafka, topics.applications, 12_345)
    assert len(keys) == 12_345 and set(keys.values()) == {1}
    assert read_keys(kafka, topics.truth, 12_345).keys() == keys.keys()


def test_paced_rate_is_accurate(kafka: KafkaSettings, topics: TopicSettings) -> None:
    ensure_topics(kafka, topics, [topics.applications, topics.truth])
    producer = EventProducer(kafka)
    start = time.monotonic()
    publish_live(
        producer,
        topics,
        ApplicationGenerator(seed=2, customers=1_000),
        Pace(rate=2_000, count=6_000),
        Progress(producer.stats),
    )
    elapsed = time.monotonic() - start
    producer.close()
    assert 2.7 < elapsed < 3.6  # 6,000 at 2,000/s: the last batch starts at ~2.95 s


def test_outcomes_follow_their_applications_by_the_delay(kafka: KafkaSettings, topics: TopicSettings) -> None:
    """LOANS_GEN_OUTCOME_DELAY_S: a lender learns an outcome late; every outcome still arrives."""
    ensure_topics(kafka, topics, [topics.applications, topics.truth])
    producer = EventProducer(kafka)
    pace = Pace(rate=1_000, count=3_000, outcome_delay_s=2.0)
    publish_live(
        producer, topics, ApplicationGenerator(seed=4, customers=1_000), pace, Progress(producer.stats)
    )
    assert producer.close().failed == 0
    sent = {m.key(): m.timestamp()[1] for m in read_topic(kafka, topics.applications, 3_000, 60)}
    known = {m.key(): m.timestamp()[1] for m in read_topic(kafka, topics.truth, 3_000, 60)}
    assert known.keys() == sent.keys() and len(sent) == 3_000
    lags = sorted(known[k] - sent[k] for k in sent)  # ms, the records' create times
    assert lags[0] >= 1_900 and lags[-1] <= 4_000, (lags[0], lags[-1])


def test_broker_down_stops_with_clear_error(tmp_path: Path) -> None:
    down = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", delivery_timeout_ms=2_000)
    producer = EventProducer(down)
    producer.send("loan.applications", [b"k1", b"k2"], [b"{}", b"{}"])
    with pytest.raises(DeliveryError, match=r"2 events were not delivered .* is the broker up"):
        producer.close(timeout_s=10)
    assert producer.stats.delivered == 0


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kafka_producer.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=180,
        check=False,
    )


def test_cli_never_reports_success_when_broker_is_down() -> None:
    env = {
        "LOANS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "LOANS_KAFKA_DELIVERY_TIMEOUT_MS": "2000",
    }
    result = _cli(["--count", "50", "--rate", "0", "--history", "none", "--no-create-topics"], env)
    assert result.returncode == 2
    assert "were not delivered" in result.stderr.strip().splitlines()[-1]
    assert "done:" not in result.stderr


def test_cli_skips_bad_csv_rows_sends_good_ones_exit_3(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    frame = synthetic_history(seed=8, n=40)
    csv = tmp_path / "loans.csv"
    frame.drop(columns=["event_time"]).to_csv(csv, index=False, date_format="%Y-%m-%d")
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[list(frame.columns).index("loan_amnt")], "abc", 1)
    lines[7] = ",".join(lines[7].split(",")[:5])  # too few fields
    csv.write_text("\n".join(lines) + "\n")
    env = {
        "LOANS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LOANS_TOPICS_HISTORY": topics.history,
        "LOANS_TOPICS_APPLICATIONS": topics.applications,
        "LOANS_TOPICS_TRUTH": topics.truth,
        "LOANS_TOPICS_DLQ": topics.dlq,
        "LOANS_TOPICS_OUTPUT_PREFIX": topics.output_prefix,
    }
    result = _cli(["--count", "0", "--history", str(csv)], env)
    assert result.returncode == 3, result.stderr
    assert "38 ok, 2 skipped" in result.stderr
    assert (
        f"{csv}:4: loan_amnt='abc' is not a number" in result.stderr
        and f"{csv}:8: has 5 fields" in result.stderr
    )
    keys = read_keys(kafka, topics.history, 38)
    assert len(keys) == 38
    skipped = {frame["id"].iloc[2], frame["id"].iloc[6]}
    assert not skipped & keys.keys()
