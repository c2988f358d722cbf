"""`loans-demo` (`make demo`): run the whole path on the local stack for a bounded time and say what happened.

1. Kafka and MLflow round trips (the stack answers).
2. The Spark job starts (fresh checkpoints under .loans/demo), then live applications are
   produced at `--rate` for `--seconds`, with a few malformed messages mixed in.
3. After the job has caught up, each output topic is summarised: records written during the demo
   and the latest two, as `make kafka-consumer-output-<stream>` prints them.
Before the job starts, a champion model is trained (quickly, on synthetic history) and promoted
if the registry has none, so the scores stream has a model; the serving API (`make serve`) and the
dashboard (`make dashboard`) can be opened beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import uuid

import mlflow
from confluent_kafka import Consumer, Producer, TopicPartition

from core.cli import run_main
from core.logging import configure
from core.settings import (
    KafkaSettings,
    LogSettings,
    MlflowSettings,
    PathSettings,
    SparkJobSettings,
    TopicSettings,
    load,
)
from generator.applications import ApplicationGenerator
from kafka_producer.consume import format_message, keyed_json, read_topic
from kafka_producer.producer import EventProducer
from kafka_producer.publish import Pace, Progress, publish_live
from kafka_producer.topics import admin_client, ensure_topics
from models.registry import promote, resolve
from models.train import TrainingSource, TrainOptions, train
from sparky.job import Job, monitor
from sparky.session import build_session

log = logging.getLogger(__name__)


def kafka_round_trip(kafka: KafkaSettings, topics: TopicSettings, count: int) -> int:
    """Send `count` keyed JSON messages to a scratch topic and read them back; return how many matched."""
    topic = f"{topics.output_prefix}.demo-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, topics, [topic])
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True})
    sent = {f"key-{i}": {"n": i, "sent_at": time.time()} for i in range(count)}
    for key, value in sent.items():
        producer.produce(topic, json.dumps(value).encode(), key.encode())
    producer.flush(30)
    got = keyed_json(read_topic(kafka, topic, count, timeout_s=30, settle_s=0))
    admin_client(kafka).delete_topics([topic])
    return sum(got.get(k) == v for k, v in sent.items())


def mlflow_round_trip(settings: MlflowSettings) -> float:
    """Log a metric to the tracking server and read it back."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment("loan-stream-demo")
    with mlflow.start_run(run_name="demo") as run:
        mlflow.log_metric("demo_metric", 0.42)
    return float(mlflow.get_run(run.info.run_id).data.metrics["demo_metric"])


def produce_live(kafka: KafkaSettings, topics: TopicSettings, rate: float, seconds: float) -> int:
    """Live applications at `rate` for `seconds`, plus three malformed messages for the DLQ."""
    producer = EventProducer(kafka)
    sent = publish_live(
        producer,
        topics,
        ApplicationGenerator(seed=7),
        Pace(rate, duration_s=seconds),
        Progress(producer.stats, every_s=5),
    )
    for key, bad in (
        (b"demo-bad-json", b"{oops"),
        (b"demo-empty", b""),
        (b"demo-missing", b'{"channel": "web"}'),
    ):
        producer.send(topics.applications, [key], [bad])
    producer.close()
    return sent


def summarise(kafka: KafkaSettings, topics: TopicSettings, since_ms: int) -> None:
    """Per output topic: how many records were written since `since_ms`, and the latest two."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"demo-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    for stream in [*topics.streams, "dlq"]:
        topic = topics.dlq if stream == "dlq" else topics.output(stream)
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        starts = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in meta.partitions], 10)
        records: list[bytes] = []
        for tp in starts:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            start = high if tp.offset < 0 else tp.offset
            records += _read_range(consumer, TopicPartition(topic, tp.partition, start), high)
        print(f"\n{topic}: {len(records):,} records during the demo")
        for raw in records[-2:]:
            print("   ", format_message(stream, raw))
    consumer.close()


def _read_range(consumer: Consumer, start: TopicPartition, end: int) -> list[bytes]:
    if start.offset >= end:
        return []
    consumer.assign([start])
    out: list[bytes] = []
    while len(out) < end - start.offset:
        batch = consumer.consume(1000, 5)
        if not batch:
            break
        out += [m.value() or b"" for m in batch if m.error() is None]
    return out[-50:]  # the latest few are all we print; the count comes from the offsets


def ensure_champion(ml: MlflowSettings) -> str:
    """The registry's champion, or a quick model trained on synthetic history and promoted."""
    if (ref := resolve(ml, "champion")) is not None:
        return f"model  {ref.name} v{ref.version} is the champion"
    print("model  no champion yet: training a quick one on synthetic history (under a minute)")
    train(ml, TrainingSource.synthetic(rows=20_000, seed=1), TrainOptions.quick())
    result = promote(ml, force=True)
    return f"model  {result.reason}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loans-demo", description=__doc__)
    parser.add_argument("--rate", type=float, default=300, help="live applications per second")
    parser.add_argument("--seconds", type=float, default=40, help="how long to produce")
    parser.add_argument("--drain", type=float, default=20, help="seconds the job gets to catch up afterwards")
    args = parser.parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        kafka, topics, ml, paths = (
            load(KafkaSettings),
            load(TopicSettings),
            load(MlflowSettings),
            load(PathSettings),
        )
        matched = kafka_round_trip(kafka, topics, 100)
        print(f"kafka  {kafka.bootstrap_servers}: sent 100, read back {matched} identical")
        metric = mlflow_round_trip(ml)
        print(f"mlflow {ml.tracking_uri}: logged demo_metric=0.42, read back {metric}")
        print(ensure_champion(ml))
        run_dir = paths.home / "demo" / time.strftime("%Y%m%d-%H%M%S")
        job = load(SparkJobSettings, checkpoint_dir=run_dir / "checkpoints", lake_dir=paths.home / "lake")
        spark = build_session(job, paths)
        queries = Job(spark, kafka, topics, job, ml).start()
        since_ms = int(time.time() * 1000)
        try:
            time.sleep(5)  # let every query pin its starting offsets
            sent = produce_live(kafka, topics, args.rate, args.seconds)
            print(f"produced {sent:,} live applications at {args.rate:.0f}/s and 3 malformed messages")
            monitor(spark, queries, every_s=10, duration_s=args.drain)
        finally:
            for q in queries:
                q.stop()
        summarise(kafka, topics, since_ms)
        print(f"\nlake: {paths.home / 'lake'} (Parquet, by date); Spark checkpoints: {run_dir}")
        print("next: make kafka-producer-single, make spark-app-single, make kafka-consumer-output-scores")
        print(
            "      make serve (API docs at http://127.0.0.1:8000/docs), make dashboard (http://127.0.0.1:8050)"
        )
        return 0 if matched == 100 and metric == 0.42 else 1

    return run_main(body)
