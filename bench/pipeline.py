"""The Spark job under a steady input rate: does every stream keep up, and how late is each output?

For each rate: fresh topics and checkpoints, the job started (local[*] on this machine), then the
project's producer (`loans-produce`, a separate process) publishes applications at that rate for
--duration seconds. Afterwards every input and output record is read back with its Kafka timestamp:
- per-application streams (risk, fraud): latency = output record time - input record time, per id;
- windowed streams (stats, channel): an update counting n applications is matched to the n-th
  input of its group (window, and channel); latency = output time - that input's time;
  segment: the same, to the newest input of its window written before the update (a lower bound).
A rate is kept up with when every valid application reached loan.risk within --drain seconds after
the producer stopped, the producer held its rate, and risk p99 (and scores p99, with --scores)
stayed under --p99-limit.

With --scores, an MLflow server is started, a quick champion is trained on synthetic history and
promoted, and the job scores every application (loan.scores) inside the same events batch as risk.
It also measures the events batch itself (the job's handler, on Kafka-shaped rows of --batch-rows
applications: parse, validation, risk, scores, dead letters, feed), with scores and without (the
baseline), so scoring throughput inside the job is stated in rows/s.

Baseline in the same run (--baseline): the earlier design, where each query reads Kafka and parses
the JSON itself (5 Kafka reads and 5 parses of every message instead of 1).

    uv run python -m bench.pipeline --rates 250 500 1000 2000 --duration 60 --scores --baseline
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from pyspark.sql import DataFrame, SparkSession

from core.events import LoanApplication
from core.logging import configure
from core.settings import KafkaSettings, MlflowSettings, PathSettings, SparkJobSettings, TopicSettings
from core.stack import jars
from core.stack.kafka import KafkaBroker
from core.stack.mlflow_server import MlflowServer
from core.stack.process import free_port
from kafka_producer.topics import ensure_topics
from sparky.job import Job
from sparky.session import build_session
from sparky.source import parse, read_kafka, valid_events

STREAMS = ("risk", "scores", "fraud", "stats", "segment", "channel")
PER_APPLICATION = ("risk", "scores")  # the streams --p99-limit applies to


class KafkaPerQueryJob(Job):
    """The baseline: windowed and fraud queries each read Kafka and parse the JSON themselves."""

    def applications(self) -> DataFrame:
        raw = read_kafka(self.spark, self.kafka, [self.topics.applications], self.settings)
        return valid_events(parse(raw, LoanApplication, self.settings))


@dataclass
class Outcome:
    design: str
    rate: float
    produced: int = 0
    held: float = 0.0  # input rate as the broker saw it: timed inputs / (last - first timestamp)
    in_risk: int = 0
    drained_s: float | None = None
    latency: dict[str, list[float]] = field(default_factory=dict)  # stream -> [p50, p95, p99] seconds
    records: dict[str, int] = field(default_factory=dict)
    batches: dict[str, str] = field(default_factory=dict)  # query -> its micro-batches, summarised

    def kept_up(self, p99_limit: float) -> bool:
        missing = [float("inf")] * 3
        p99s = [(self.latency.get(s) or missing)[2] for s in PER_APPLICATION if s in self.latency]
        return (
            self.drained_s is not None
            and self.held >= 0.95 * self.rate
            and bool(p99s)
            and max(p99s) <= p99_limit
        )


def read_all(kafka: KafkaSettings, topic: str) -> list[tuple[str, float, bytes]]:
    """Every record of `topic` as (key, timestamp in s, value), read up to the current end."""
    consumer = Consumer(
        {"bootstrap.servers": kafka.bootstrap_servers, "group.id": f"bench-{uuid.uuid4().hex}"}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        left = {p for p, end in ends.items() if end > 0}
        out: list[tuple[str, float, bytes]] = []
        while left:
            for m in consumer.consume(10_000, timeout=1.0):
                offset, partition = m.offset(), m.partition()
                if m.error() or offset is None or partition is None:
                    continue
                out.append(((m.key() or b"").decode(), m.timestamp()[1] / 1000, m.value() or b""))
                if offset + 1 >= ends[partition]:
                    left.discard(m.partition())
        return out
    finally:
        consumer.close()


def end_offsets(kafka: KafkaSettings, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "bench-offsets"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        )
    finally:
        consumer.close()


def percentiles(values: list[float]) -> list[float]:
    return [float(x) for x in np.percentile(values, [50, 95, 99])] if values else []


def window_of(event_time: str, seconds: int) -> str:
    t = datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp()
    return datetime.fromtimestamp(t - t % seconds).isoformat()


def windowed_latency(
    inputs: dict[tuple[str, ...], list[float]], outputs: list[tuple[tuple[str, ...], float, int]]
) -> list[float]:
    """Output (group, time, count n) -> time - n-th input time of the group (inputs sorted)."""
    lat = []
    for group, at, n in outputs:
        times = inputs.get(group, [])
        if 0 < n <= len(times):
            lat.append(at - times[n - 1])
    return lat


def measure(
    kafka: KafkaSettings,
    topics: TopicSettings,
    outcome: Outcome,
    window_s: int,
    skip: set[str],
    streams: tuple[str, ...],
) -> None:
    apps = [a for a in read_all(kafka, topics.applications) if a[0] not in skip]
    sent = {key: at for key, at, _ in apps}
    if len(sent) > 1:
        outcome.held = len(sent) / (max(sent.values()) - min(sent.values()))
    first_sent = min(sent.values(), default=0.0)  # windowed updates before the timed run are skipped
    by_window: dict[tuple[str, ...], list[float]] = defaultdict(list)
    by_channel: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for _, at, raw in apps:
        event = json.loads(raw)
        w = window_of(event["event_time"], window_s)
        by_window[(w,)].append(at)
        by_channel[(w, event["channel"])].append(at)
    for times in (*by_window.values(), *by_channel.values()):
        times.sort()
    for stream in streams:
        records = read_all(kafka, topics.output(stream))
        outcome.records[stream] = len(records)
        if stream in ("risk", "scores", "fraud"):
            lat = [at - sent[key] for key, at, _ in records if key in sent]
        else:
            rows = [(json.loads(v), at) for _, at, v in records]
            rows = [(r, at) for r, at in rows if at >= first_sent]
            if stream == "segment":
                lat = [
                    at - max((t for t in by_window.get((w,), []) if t <= at), default=at)
                    for r, at in rows
                    for w in [window_of(r["window_start"], window_s)]
                ]
            else:
                group = (
                    (lambda r: (window_of(r["window_start"], window_s),))
                    if stream == "stats"
                    else (lambda r: (window_of(r["window_start"], window_s), r["channel"]))
                )
                source = by_window if stream == "stats" else by_channel
                lat = windowed_latency(source, [(group(r), at, int(r["applications"])) for r, at in rows])
        outcome.latency[stream] = percentiles(lat)
    outcome.in_risk = len({key for key, _, _ in read_all(kafka, topics.output("risk")) if key not in skip})


def warm_up(
    kafka: KafkaSettings, topics: TopicSettings, env: dict[str, str], args: argparse.Namespace
) -> int:
    """Send --warmup-count applications and wait until loan.risk has them: the JVM compiles and
    caches its code on the first batches, which would otherwise dominate a short run."""
    subprocess.run(  # noqa: S603 (our own CLI, fixed arguments)
        [sys.executable, "-m", "kafka_producer.cli", "--rate", "0", "--count", str(args.warmup_count),
         "--history", "none", "--no-create-topics", "--seed", "99"],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + args.warmup
    while end_offsets(kafka, topics.output("risk")) < args.warmup_count:
        if time.monotonic() > deadline:
            raise SystemExit(f"warm-up: the job did not process {args.warmup_count} applications in time")
        time.sleep(1)
    time.sleep(11)  # the feed queries catch up; timed input starts in a later 10 s window
    return end_offsets(kafka, topics.applications)


def run_rate(
    spark: SparkSession,
    kafka: KafkaSettings,
    mlflow: MlflowSettings | None,
    design: str,
    rate: float,
    args: argparse.Namespace,
) -> Outcome:
    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        applications=f"pipe{tag}.applications",
        history=f"pipe{tag}.history",
        truth=f"pipe{tag}.truth",
        dlq=f"pipe{tag}.dlq",
        output_prefix=f"pipe{tag}",
    )
    ensure_topics(kafka, topics)
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    settings = SparkJobSettings(
        master=args.master, checkpoint_dir=work / "checkpoints", lake_dir=work / "lake", window="10 seconds"
    )
    job = (KafkaPerQueryJob if design == "baseline" else Job)(spark, kafka, topics, settings, mlflow)
    queries = job.start()
    outcome = Outcome(design, rate)
    try:
        env = os.environ | {
            "LOANS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "LOANS_TOPICS_APPLICATIONS": topics.applications,
            "LOANS_TOPICS_HISTORY": topics.history,
            "LOANS_TOPICS_TRUTH": topics.truth,
            "LOANS_TOPICS_OUTPUT_PREFIX": topics.output_prefix,
        }
        warm = warm_up(kafka, topics, env, args)
        skip = {key for key, _, _ in read_all(kafka, topics.applications)}
        subprocess.run(  # noqa: S603 (our own CLI, fixed arguments)
            [sys.executable, "-m", "kafka_producer.cli", "--rate", str(rate),
             "--duration", str(args.duration), "--history", "none", "--no-create-topics", "--seed", "3"],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        outcome.produced = end_offsets(kafka, topics.applications) - warm
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            if end_offsets(kafka, topics.output("risk")) >= outcome.produced + warm:
                outcome.drained_s = args.drain - (deadline - time.monotonic())
                break
            time.sleep(0.5)
        time.sleep(args.settle)  # let the windowed queries emit their last updates
        outcome.batches = {str(q.name): batch_summary(q.recentProgress) for q in queries}
    finally:
        for q in queries:
            q.stop()
    streams = STREAMS if mlflow is not None else tuple(s for s in STREAMS if s != "scores")
    measure(kafka, topics, outcome, window_s=10, skip=skip, streams=streams)
    return outcome


def batch_summary(progress: Sequence[Mapping[str, Any]]) -> str:
    """The recent micro-batches of one query that had input: how many, rows and seconds per batch, and
    where the time went (Spark's durationMs, mean per batch)."""
    busy = [p for p in progress if p.get("numInputRows", 0) > 0]
    if not busy:
        return "no batches with input"
    parts = defaultdict(list)
    for p in busy:
        for name, ms in p.get("durationMs", {}).items():
            parts[name].append(ms)
    total = np.mean(parts.pop("triggerExecution", [0])) / 1000
    rows = np.mean([p["numInputRows"] for p in busy])
    detail = ", ".join(f"{n} {np.mean(v) / 1000:.2f}" for n, v in sorted(parts.items()) if np.mean(v) >= 20)
    return f"{len(busy)} batches, {rows:,.0f} rows, {total:.2f} s each ({detail})"


def report(outcomes: list[Outcome], p99_limit: float) -> None:
    streams = [s for s in STREAMS if any(s in o.latency for o in outcomes)]
    print(f"\n{'design':<10}{'rate/s':>8}{'held/s':>8}{'in risk':>10}{'drain s':>8}  "
          + "".join(f"{s + ' p50/p95/p99 s':>26}" for s in streams) + "  kept up")  # fmt: skip
    for o in outcomes:
        drained = f"{o.drained_s:.1f}" if o.drained_s is not None else "-"
        cells = "".join(f"{'/'.join(f'{x:.2f}' for x in o.latency.get(s, [])) or '-':>26}" for s in streams)
        print(f"{o.design:<10}{o.rate:>8,.0f}{o.held:>8,.0f}{o.in_risk:>10,}{drained:>8}  {cells}  "
              f"{'yes' if o.kept_up(p99_limit) else 'no'}")  # fmt: skip
    best = {d: max((o.rate for o in outcomes if o.design == d and o.kept_up(p99_limit)), default=0)
            for d in dict.fromkeys(o.design for o in outcomes)}  # fmt: skip
    for o in outcomes:
        for name, summary in o.batches.items():
            print(f"  {o.design} {o.rate:,.0f}/s  {name:<8} {summary}")
    for design, rate in best.items():
        print(f"highest rate kept up with ({design}): {rate:,.0f} applications/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=float, nargs="*", default=[250, 500, 1000, 2000])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of input per rate")
    parser.add_argument("--drain", type=float, default=20.0, help="seconds allowed to catch up afterwards")
    parser.add_argument("--warmup", type=float, default=180.0, help="seconds the warm-up may take")
    parser.add_argument("--warmup-count", type=int, default=5000, help="applications sent to warm up")
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--p99-limit", type=float, default=3.0)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--baseline", action="store_true", help="also run the Kafka-per-query design")
    parser.add_argument(
        "--scores", action="store_true", help="score with a champion (starts MLflow, trains quickly)"
    )
    parser.add_argument("--batch-rows", type=int, default=100_000, help="rows of the in-job batch figure")
    parser.add_argument("--batch-repeat", type=int, default=3)
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    args = parser.parse_args(argv)
    configure("INFO")
    broker = None
    if args.bootstrap:
        kafka = KafkaSettings(bootstrap_servers=args.bootstrap)
    else:
        broker = KafkaBroker(
            Path(tempfile.mkdtemp(prefix="bench-pipeline-kafka-")),
            jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka"),
            port=free_port(),
            controller_port=free_port(),
            heap="1g",
        )
        broker.start()
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
    server, mlflow = start_champion() if args.scores else (None, None)
    spark = build_session(SparkJobSettings(master=args.master), PathSettings(), "bench-pipeline", ui=False)
    outcomes: list[Outcome] = []
    try:
        for design in ("feed", "baseline") if args.baseline else ("feed",):
            for rate in args.rates:
                outcome = run_rate(spark, kafka, mlflow, design, rate, args)
                outcomes.append(outcome)
                report([outcome], args.p99_limit)
                if not outcome.kept_up(args.p99_limit):
                    break  # higher rates will not do better
        report(outcomes, args.p99_limit)
        if mlflow is not None and args.batch_rows > 0:
            batch_throughput(spark, kafka, mlflow, args.batch_rows, args.batch_repeat)
    finally:
        spark.stop()
        if broker is not None:
            broker.stop()
        if server is not None:
            server.stop()
    return 0


def batch_throughput(
    spark: SparkSession, kafka: KafkaSettings, mlflow: MlflowSettings, rows: int, repeat: int
) -> None:
    """The events handler on one static batch of `rows` Kafka-shaped applications: rows/s with scores
    and without, median of `repeat` batches each."""
    from generator.applications import ApplicationGenerator
    from generator.encode import json_lines
    from sparky.events import LiveBatches

    frame = ApplicationGenerator(seed=5).batch(rows, datetime.now().astimezone(), 0.001).applications
    values = json_lines(frame)
    raw = (
        spark.createDataFrame(
            [
                (str(k).encode(), v, "bench", i % 3, i)
                for i, (k, v) in enumerate(zip(frame["application_id"], values, strict=True))
            ],
            "key binary, value binary, topic string, partition int, offset long",
        )
        .repartition(3)
        .persist()
    )
    raw.count()
    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        applications=f"batch{tag}.applications", output_prefix=f"batch{tag}", dlq=f"batch{tag}.dlq"
    )
    ensure_topics(kafka, topics)
    print(
        f"\nevents batch of {rows:,} applications (parse, risk, scores, dead letters, feed), {repeat} times:"
    )
    for label, ml in (("risk only (baseline)", None), ("risk + scores", mlflow)):
        work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
        settings = SparkJobSettings(checkpoint_dir=work, lake_dir=work / "lake")
        live = LiveBatches(spark, kafka, topics, settings, work / "feed", ml)
        live(raw, 0)  # warm up: plans, Python workers, the model load
        seconds = []
        for batch_id in range(1, repeat + 1):
            started = time.perf_counter()
            live(raw, batch_id)
            seconds.append(time.perf_counter() - started)
        median = float(np.median(seconds))
        print(f"  {label:<22} median {median:5.2f} s  ->  {rows / median:9,.0f} rows/s")
    raw.unpersist()


def start_champion() -> tuple[MlflowServer, MlflowSettings]:
    """A private MLflow server with a quick champion trained on synthetic history."""
    from bench.serving import train_champion

    server = MlflowServer(Path(tempfile.mkdtemp(prefix="bench-pipeline-mlflow-")), port=free_port())
    server.start(timeout_s=120)
    mlflow = MlflowSettings(tracking_uri=server.uri, model_name="bench-pipeline")
    print("training a quick champion on synthetic history ...", flush=True)
    train_champion(mlflow)
    return server, mlflow


if __name__ == "__main__":
    raise SystemExit(main())
