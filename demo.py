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
    CHAMPION,
    KafkaSettings,
    LogSettings,
    MlflowSettings,
    PathSettings,
    SparkJobSettings,
    TopicSettings,
    load,
)
from core.streams import STREAMS
from generator.applications import ApplicationGenerator
from kafka_consumer.format import format_message
from kafka_consumer.read import keyed_json, read_topic
from kafka_producer.producer import EventProducer
from kafka_producer.publish import Pace, Progress, publish_live
from kafka_producer.topics import admin_client, ensure_topics, partitions
from models.registry.tracking import connect, quiet_mlflow
from models.registry.versions import promote, resolve
from models.training.train import TrainingSource, TrainOptions, train
from sparky.context import Context
from sparky.queries import QUERIES
from sparky.session import build_session, resolve_master, stop_session
from sparky.supervisor import Supervisor

log = logging.getLogger(__name__)


def kafka_round_trip(kafka: KafkaSettings, topics: TopicSettings, count: int) -> int:
    """Send `count` keyed JSON messages to a scratch topic and read them back; return how many matched."""
    topic = f"{topics.output_prefix}.demo-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, topics, [topic])
    producer = Producer(kafka.producer_config("demo"))
    sent = {f"key-{i}": {"n": i, "sent_at": time.time()} for i in range(count)}
    for key, value in sent.items():
        producer.produce(topic, json.dumps(value).encode(), key.encode())
    producer.flush(30)
    got = keyed_json(read_topic(kafka, topic, count, timeout_s=30, settle_s=0))
    admin_client(kafka).delete_topics([topic])
    return sum(got.get(k) == v for k, v in sent.items())


def mlflow_round_trip(settings: MlflowSettings) -> float:
    """Log a metric to the tracking server and read it back (as the settings' user)."""
    connect(settings)
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


def written_since(consumer: Consumer, topic: str, since_ms: int) -> list[tuple[TopicPartition, int]]:
    """Per partition of `topic`: where the records written since `since_ms` start, and its end offset."""
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    starts = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in meta.partitions], 10)
    ranges = []
    for tp in starts:
        _, end = consumer.get_watermark_offsets(tp, timeout=10)
        ranges.append((TopicPartition(topic, tp.partition, end if tp.offset < 0 else tp.offset), end))
    return ranges


def summarise(kafka: KafkaSettings, topics: TopicSettings, since_ms: int) -> dict[str, int]:
    """Per output stream: how many records its topic got since `since_ms` (every committed record in
    the offsets written since then, read back), and the latest two, as `make
    kafka-consumer-output-<stream>` prints them. Returns the counts."""
    consumer = Consumer(kafka.consumer_config(f"demo-{uuid.uuid4()}", {"enable.auto.commit": False}))
    counts = {}
    try:
        for stream in STREAMS:
            topic = stream.topic(topics)
            records = committed(consumer, written_since(consumer, topic, since_ms))
            counts[stream.name] = len(records)
            print(f"\n{topic}: {counts[stream.name]:,} records during the demo")
            for raw in records[-2:]:
                print("   ", format_message(stream.name, raw))
    finally:
        consumer.close()
    return counts


def committed(consumer: Consumer, ranges: list[tuple[TopicPartition, int]]) -> list[bytes]:
    """The values of the committed records in the offset ranges (a transaction's commit marker takes
    an offset too, so offsets alone over-count)."""
    out: list[bytes] = []
    for start, end in ranges:
        if start.offset >= end:
            continue
        consumer.assign([start])
        idle = 0
        while idle < 3:  # the end, or nothing more to read (an open transaction's records)
            got = [m.value() or b"" for m in consumer.consume(1000, 0.5) if m.error() is None]
            out, idle = out + got, 0 if got else idle + 1
            if consumer.position([TopicPartition(start.topic, start.partition)])[0].offset >= end:
                break
    return out


def ensure_champion(ml: MlflowSettings) -> str:
    """The registry's champion, or a quick model trained on synthetic history and promoted."""
    if (ref := resolve(ml, CHAMPION)) is not None:
        return f"model  {ref.name} v{ref.version} is the champion"
    print("model  no champion yet: training a quick one on synthetic history (under a minute)")
    train(ml, TrainingSource.synthetic(rows=20_000, seed=1), TrainOptions.quick())
    result = promote(ml, force=True)
    return f"model  {result.reason}"


def drain(job: Supervisor, kafka: KafkaSettings, topic: str, most_s: float) -> None:
    """Run the job until every query has read `topic` to its current end, or `most_s` passes."""
    consumer = Consumer(kafka.consumer_config(f"demo-{uuid.uuid4()}"))
    try:
        target = {start.partition: end for start, end in written_since(consumer, topic, 0)}
    finally:
        consumer.close()
    started = time.monotonic()
    job.run(progress_every_s=10, duration_s=most_s, until=lambda: not job.behind(topic, target))
    waited = time.monotonic() - started
    if behind := job.behind(topic, target):
        print(f"after {waited:.0f} s still catching up: {', '.join(behind)} (raise --drain)")
    else:
        print(f"every query caught up {waited:.0f} s after the last application")


def run_demo(
    kafka: KafkaSettings,
    topics: TopicSettings,
    ml: MlflowSettings,
    paths: PathSettings,
    args: argparse.Namespace,
) -> dict[str, int]:
    """Start the job on fresh checkpoints, produce, let it drain, stop it, summarise each topic."""
    run_dir = paths.home / "demo" / time.strftime("%Y%m%d-%H%M%S")
    settings = load(
        SparkJobSettings,
        checkpoint_dir=run_dir / "checkpoints",
        lake_dir=paths.home / "lake",
        window=args.window,
        window_trigger="2 seconds",
        monitor_window=args.window,
        monitor_trigger="2 seconds",
        realtime_batch="5 seconds",  # real-time risk reports its offsets every 5 s
        starting_offsets="latest",  # the demo's own traffic, not what the topics held before
        archive_trigger="5 seconds",  # dead letters and the lake within the demo's few seconds
        queries=",".join(q.name for q in QUERIES),  # all, in one process (as the admin)
    )
    settings = resolve_master(settings, partitions(kafka, topics.applications))
    spark = build_session(settings, paths)
    job = Supervisor(Context(spark, kafka, topics, settings, ml))
    job.start()
    since_ms = int(time.time() * 1000)
    try:
        time.sleep(5)  # let every query pin its starting offsets
        sent = produce_live(kafka, topics, args.rate, args.seconds)
        print(f"produced {sent:,} live applications at {args.rate:.0f}/s and 3 malformed messages")
        drain(job, kafka, topics.applications, args.drain)
    finally:
        job.stop(restore_logs=False)
        stop_session(spark)
    counts = summarise(kafka, topics, since_ms)
    print(f"\nlake: {paths.home / 'lake'} (Parquet, by date); Spark checkpoints: {run_dir}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loans-demo", description=__doc__)
    parser.add_argument("--rate", type=float, default=300, help="live applications per second")
    parser.add_argument("--seconds", type=float, default=40, help="how long to produce")
    parser.add_argument(
        "--drain", type=float, default=120, help="most seconds the job gets to catch up afterwards"
    )
    parser.add_argument(
        "--window", default="10 seconds", help="window of the windowed streams (short, so several close)"
    )
    args = parser.parse_args(argv)

    def body() -> int:
        configure(load(LogSettings).level)
        quiet_mlflow()  # no download bars; before the JVM starts, whose workers inherit it
        kafka, topics, ml, paths = (
            load(KafkaSettings, service="admin"),  # the demo plays every service
            load(TopicSettings),
            load(MlflowSettings, service="admin"),  # MLflow's too
            load(PathSettings),
        )
        ensure_topics(kafka, topics)
        matched = kafka_round_trip(kafka, topics, 100)
        print(f"kafka  {kafka.bootstrap_servers}: sent 100, read back {matched} identical")
        metric = mlflow_round_trip(ml)
        print(f"mlflow {ml.tracking_uri}: logged demo_metric=0.42, read back {metric}")
        print(ensure_champion(ml))
        counts = run_demo(kafka, topics, ml, paths, args)
        print("next: make kafka-producer-single, make spark-app-single, make kafka-consumer-output-scores")
        print("      make spark-monitor (model monitoring, loan.monitor: its own process and principal)")
        print(
            "      make serve (API docs at http://127.0.0.1:8000/docs), make dashboard (http://127.0.0.1:8050)"
        )
        empty = [name for name, n in counts.items() if n == 0]
        if empty:
            print(f"no records on: {', '.join(empty)}")
        return 0 if matched == 100 and metric == 0.42 and not empty else 1

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
