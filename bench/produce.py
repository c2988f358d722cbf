"""End-to-end produce throughput to a real local broker with acks=all and idempotence.

Produce only: the same pre-encoded applications through a naive producer (librdkafka defaults,
one `poll(0)` per message) and the project's tuned `EventProducer` (lz4, linger, large batches,
delivery reports served once per batch). End to end: the project's whole path, `publish_live`:
generate, encode and produce each application plus its ground-truth record.
Starts its own KRaft broker in a temp folder unless --bootstrap is given.
    uv run python -m bench.produce --events 300000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer

from core.ports import free_port
from core.settings import KafkaSettings, PathSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_producer.encode import json_lines
from kafka_producer.producer import EventProducer
from kafka_producer.publish import Pace, Progress, publish_live
from kafka_producer.topics import ensure_topics
from stack import jars
from stack.kafka import KafkaBroker


def naive(kafka: KafkaSettings, topic: str, keys: list[bytes], values: list[bytes]) -> tuple[float, int]:
    delivered = 0

    def count(err: object, _msg: object) -> None:
        nonlocal delivered
        delivered += err is None

    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True, "acks": "all"}
    )
    start = time.perf_counter()
    for key, value in zip(keys, values, strict=True):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=count)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    return time.perf_counter() - start, delivered


def tuned(kafka: KafkaSettings, topic: str, keys: list[bytes], values: list[bytes]) -> tuple[float, int]:
    producer = EventProducer(kafka)
    start = time.perf_counter()
    for i in range(0, len(keys), 5_000):
        producer.send(topic, keys[i : i + 5_000], values[i : i + 5_000])
    stats = producer.close(timeout_s=120)
    return time.perf_counter() - start, stats.delivered


def run_once(kafka: KafkaSettings, events: int, baseline_events: int) -> dict[str, tuple[float, float, int]]:
    """One round of all three measurements: name -> (applications/s, messages/s, failed)."""
    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        applications=f"bench{tag}.applications",
        truth=f"bench{tag}.truth",
        history=f"bench{tag}.history",
        dlq=f"bench{tag}.dlq",
        output_prefix=f"bench{tag}",
    )
    ensure_topics(
        kafka, topics, [topics.applications, topics.truth, f"bench{tag}.naive", f"bench{tag}.tuned"]
    )

    gen = ApplicationGenerator(seed=1)
    batch = gen.batch(baseline_events, datetime.now(UTC), 0.0)
    keys = batch.applications["application_id"].str.encode("utf-8").tolist()
    values = json_lines(batch.applications)
    naive_s, naive_ok = naive(kafka, f"bench{tag}.naive", keys, values)
    tuned_s, tuned_ok = tuned(kafka, f"bench{tag}.tuned", keys, values)

    producer = EventProducer(kafka)
    start = time.perf_counter()
    sent = publish_live(
        producer, topics, gen, Pace(rate=0, count=events, batch=5_000), Progress(producer.stats)
    )
    stats = producer.close(timeout_s=120)
    e2e_s = time.perf_counter() - start
    return {
        "produce only, same pre-encoded apps: naive": (
            naive_ok / naive_s,
            naive_ok / naive_s,
            baseline_events - naive_ok,
        ),
        "produce only, same pre-encoded apps: tuned": (
            tuned_ok / tuned_s,
            tuned_ok / tuned_s,
            baseline_events - tuned_ok,
        ),
        "end to end: generate + encode + produce app + truth": (
            sent / e2e_s,
            stats.delivered / e2e_s,
            stats.failed,
        ),
    }


def run(kafka: KafkaSettings, events: int, baseline_events: int, repeat: int) -> None:
    rounds = [run_once(kafka, events, baseline_events) for _ in range(repeat)]
    print(
        f"\nbroker {kafka.bootstrap_servers}, acks=all, idempotent; {repeat} rounds, median (min-max) apps/s"
    )
    print(f"{'':<52}{'apps/s':>24}{'msgs/s':>10}{'failed':>8}")
    for name in rounds[0]:
        apps = sorted(r[name][0] for r in rounds)
        msgs = statistics.median(r[name][1] for r in rounds)
        failed = sum(r[name][2] for r in rounds)
        spread = f"{statistics.median(apps):,.0f} ({apps[0]:,.0f}-{apps[-1]:,.0f})"
        print(f"{name:<52}{spread:>24}{msgs:>10,.0f}{failed:>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--baseline-events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    args = parser.parse_args(argv)
    if args.bootstrap:
        run(KafkaSettings(bootstrap_servers=args.bootstrap), args.events, args.baseline_events, args.repeat)
        return 0
    jar_dir = jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka")
    broker = KafkaBroker(
        Path(tempfile.mkdtemp(prefix="bench-produce-")),
        jar_dir,
        port=free_port(),
        controller_port=free_port(),
        heap="1g",
    )
    broker.start()
    try:
        own = KafkaSettings(
            bootstrap_servers=broker.bootstrap, security_protocol="PLAINTEXT"
        )  # its own open broker
        run(own, args.events, args.baseline_events, args.repeat)
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
