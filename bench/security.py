"""What Kafka security costs: the same work against a PLAINTEXT broker and a SASL/SCRAM-SHA-512 broker
with the StandardAuthorizer and the project's ACLs (`stack.acl`), in one run on this machine.

- produce: the project's `EventProducer` sends the same pre-encoded applications (acks=all,
  idempotent), as the `producer` principal on the secured broker; applications/s, median of --repeat;
- job: the Spark job's risk query (micro-batches, in Kafka transactions) reads them all from the
  start and writes loan.risk, as the `spark` principal; seconds from start until it has read every
  application (so both include the query's start-up), median of --repeat.

    uv run python -m bench.security --events 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from core.logging import configure
from core.ports import free_port
from core.settings import KafkaSettings, PathSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_producer.encode import json_lines
from kafka_producer.producer import EventProducer
from kafka_producer.topics import admin_client, ensure_topics
from sparky.context import Context
from sparky.session import build_session, stop_session
from sparky.supervisor import Supervisor
from stack import acl, jars
from stack.kafka import ADMIN, KafkaBroker


@dataclass
class Setup:
    name: str
    broker: KafkaBroker
    passwords: dict[str, str]

    def as_(self, service: str) -> KafkaSettings:
        if not self.passwords:
            return KafkaSettings(bootstrap_servers=self.broker.bootstrap, security_protocol="PLAINTEXT")
        return KafkaSettings(
            bootstrap_servers=self.broker.bootstrap, security_protocol="SASL_PLAINTEXT",
            username=service, password=self.passwords[service],
        )  # fmt: skip


def start(name: str, work: Path, secured: bool) -> Setup:
    admin_password = secrets.token_urlsafe(24) if secured else ""
    broker = KafkaBroker(
        work / name, jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka"),
        port=free_port(), controller_port=free_port(), heap="1g", admin_password=admin_password,
    )  # fmt: skip
    broker.start(timeout_s=120)
    passwords = {s: secrets.token_urlsafe(24) for s in acl.SERVICES} if secured else {}
    setup = Setup(name, broker, {ADMIN: admin_password, **passwords} if secured else {})
    return setup


def topics_for(setup: Setup, run: int) -> TopicSettings:
    topics = TopicSettings(applications=f"apps-{run}", output_prefix=f"out{run}", dlq=f"out{run}.dlq")
    admin = setup.as_(ADMIN) if setup.passwords else setup.as_("")
    ensure_topics(admin, topics)
    if setup.passwords:
        passwords = {k: v for k, v in setup.passwords.items() if k != ADMIN}
        acl.apply(admin_client(admin), passwords, topics, admin.client_id)
    return topics


def produce(kafka: KafkaSettings, topic: str, keys: list[bytes], values: list[bytes]) -> float:
    producer = EventProducer(kafka)
    began = time.perf_counter()
    for i in range(0, len(keys), 5_000):
        producer.send(topic, keys[i : i + 5_000], values[i : i + 5_000])
    stats = producer.close(120)
    assert stats.failed == 0, stats
    return len(keys) / (time.perf_counter() - began)


def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    consumer = Consumer(kafka.consumer_config(f"{kafka.prefix}-ends"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def job_seconds(setup: Setup, run: int, work: Path, topics: TopicSettings) -> float:
    kafka = setup.as_("spark")
    settings = SparkJobSettings(
        checkpoint_dir=work / f"chk-{setup.name}-{run}", lake_dir=work / "lake", queries="realtime",
        realtime_batch="5 seconds", starting_offsets="earliest", master="local[3]",
    )  # fmt: skip
    spark = build_session(settings, PathSettings(), "bench-security", ui=False)
    target = end_offsets(kafka, topics.applications)
    job = Supervisor(Context(spark, kafka, topics, settings))
    began = time.perf_counter()
    job.start()
    try:
        job.run(
            progress_every_s=600, duration_s=600, until=lambda: not job.behind(topics.applications, target)
        )
        assert not job.behind(topics.applications, target), "the job did not catch up in 600 s"
        return time.perf_counter() - began
    finally:
        job.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    configure("WARNING")
    work = Path(tempfile.mkdtemp(prefix="bench-security-"))
    apps = ApplicationGenerator(seed=1).batch(args.events, datetime.now(UTC) - timedelta(hours=1), 0.001)
    keys = apps.applications["application_id"].str.encode("utf-8").tolist()
    values = json_lines(apps.applications)
    setups = [start("plaintext", work, secured=False), start("sasl-scram-acl", work, secured=True)]
    rates: dict[str, list[float]] = {s.name: [] for s in setups}
    seconds: dict[str, list[float]] = {s.name: [] for s in setups}
    try:
        for run in range(args.repeat):
            for setup in setups:  # alternate, so drift on the machine hits both alike
                topics = topics_for(setup, run)
                rates[setup.name].append(produce(setup.as_("producer"), topics.applications, keys, values))
                seconds[setup.name].append(job_seconds(setup, run, work, topics))
                print(f"run {run + 1} {setup.name:<15} produce {rates[setup.name][-1]:>9,.0f}/s  "
                      f"job read all in {seconds[setup.name][-1]:.1f} s", flush=True)  # fmt: skip
    finally:
        from pyspark.sql import SparkSession

        if (active := SparkSession.getActiveSession()) is not None:
            stop_session(active)
        for setup in setups:
            setup.broker.stop()
    print(f"\n{args.events:,} applications, median of {args.repeat}:")
    base_rate, base_s = (statistics.median(rates["plaintext"]), statistics.median(seconds["plaintext"]))
    for name in rates:
        rate, secs = statistics.median(rates[name]), statistics.median(seconds[name])
        print(f"  {name:<15} produce {rate:>9,.0f}/s ({rate / base_rate:.2f}x)   job {secs:6.1f} s "
              f"({args.events / secs:,.0f} applications/s, {secs / base_s:.2f}x the time)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
