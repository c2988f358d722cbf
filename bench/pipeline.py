"""The Spark job under a steady input rate, through its public commands: does every stream keep up?

Per run: fresh topics and checkpoints, the job started as `loans-stream` (its own process, all
streams, scores by a champion from a private MLflow), warmed up, then `loans-produce` publishes
live applications at the rate for --duration seconds. Afterwards every input and output record is
read back with its Kafka timestamp:
- per-application streams (risk, scores, fraud): latency = output time - input time, per id;
  `risk seen`: when a read_committed reader, reading on during the run, first got the id - input
  time (what a transaction's commit adds, which the output's Kafka timestamp does not show);
- windowed streams (stats, segment, channel): per window (and group), the time from the window's
  last input to the first update that counts all of it.
A run keeps up when the producer held its rate, the job drained within --drain seconds, every
per-application p99 is <= --p99-limit and every window completed.

Designs, measured in the same run on this machine (--designs):
- `realtime`, `async`, `microbatch`: this tree's job, risk in real-time mode (the default), in
  micro-batches with async progress tracking, or in plain micro-batches;
- `exactly-once`, `at-least-once`: risk in micro-batches, and every micro-batch output written in
  Kafka transactions (the default) or by Spark's Kafka writer: what exactly-once costs;
- `baseline`: the job as it was before the restructuring (--baseline-ref), from a git worktree;
- `cluster`: this tree's job (real-time risk) spark-submitted to a Spark standalone cluster of a
  master and 2 workers on this machine (`make spark-app-cluster`: the wheel shipped, client mode),
  against `realtime` in `local[*]` at the same rates.
Each run also prints each query's micro-batches: how many, rows and seconds each, and Spark's
`durationMs` breakdown (from the Spark event log).

    uv run python -m bench.pipeline --rates 1000 --designs realtime async microbatch baseline
    uv run python -m bench.pipeline --rates 1000 2000 5000 --designs realtime
    uv run python -m bench.pipeline --rates 1000 --designs exactly-once at-least-once
    uv run python -m bench.pipeline --rates 500 1000 2000 --designs realtime cluster --all-rates
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from core.logging import configure
from core.settings import KafkaSettings, MlflowSettings, PathSettings, TopicSettings
from core.stack import jars
from core.stack.kafka import KafkaBroker
from core.stack.mlflow_server import MlflowServer
from core.stack.process import free_port
from kafka_producer.topics import ensure_topics
from sparky.analyses.segment import FICO_BANDS, FICO_TOP_BAND, INCOME_BANDS, INCOME_TOP_BAND, INCOME_UNKNOWN

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "7f3dfae"  # main before the real-time restructuring
PER_APPLICATION = ("risk", "scores", "fraud")
WINDOWED = ("stats", "segment", "channel")
DESIGNS = {  # this tree's job, by its settings
    "realtime": {"LOANS_SPARK_RISK_MODE": "realtime"},
    "async": {"LOANS_SPARK_RISK_MODE": "async"},
    "microbatch": {"LOANS_SPARK_RISK_MODE": "microbatch"},
    # what exactly-once costs: risk in micro-batches, every micro-batch output in Kafka transactions
    # or through Spark's Kafka writer (at least once)
    "exactly-once": {"LOANS_SPARK_RISK_MODE": "microbatch", "LOANS_SPARK_EXACTLY_ONCE": "true"},
    "at-least-once": {"LOANS_SPARK_RISK_MODE": "microbatch", "LOANS_SPARK_EXACTLY_ONCE": "false"},
    # ... and in real time: risk through Spark's Kafka sink (JVM only) instead of transactions
    "realtime-at-least-once": {"LOANS_SPARK_RISK_MODE": "realtime", "LOANS_SPARK_EXACTLY_ONCE": "false"},
}


@dataclass
class Outcome:
    design: str
    rate: float
    produced: int = 0
    held: float = 0.0  # input rate as the broker saw it
    drained_s: float | None = None
    latency: dict[str, list[float]] = field(default_factory=dict)  # stream -> [p50, p95, p99] s
    complete: dict[str, str] = field(default_factory=dict)  # windowed stream -> "k/n windows"
    records: dict[str, int] = field(default_factory=dict)
    batches: dict[str, str] = field(default_factory=dict)

    def kept_up(self, p99_limit: float) -> bool:
        p99s = [self.latency.get(s, [0, 0, float("inf")])[2] for s in PER_APPLICATION]
        windows_done = all(c.split("/")[0] == c.split("/")[1].split()[0] for c in self.complete.values())
        return (
            self.drained_s is not None
            and self.held >= 0.95 * self.rate
            and max(p99s) <= p99_limit
            and windows_done
        )


def read_all(kafka: KafkaSettings, topic: str) -> list[tuple[str, float, bytes]]:
    """Every record of `topic` as (key, timestamp in s, value), up to the current end (committed
    records only)."""
    consumer = reader(kafka)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        left = {p for p, end in ends.items() if end > 0}
        out: list[tuple[str, float, bytes]] = []
        deadline = time.monotonic() + 120
        while left and time.monotonic() < deadline:
            for m in consumer.consume(10_000, timeout=1.0):
                if m.error() is None:
                    out.append(((m.key() or b"").decode(), m.timestamp()[1] / 1000, m.value() or b""))
            positions = consumer.position([TopicPartition(topic, p) for p in left])
            left -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
        return out
    finally:
        consumer.close()


def reader(kafka: KafkaSettings) -> Consumer:
    """A read_committed consumer of its own group, committing nothing."""
    return Consumer(kafka.consumer_config(f"bench-{uuid.uuid4().hex}", {"enable.auto.commit": False}))


class Tally(threading.Thread):
    """The committed records of an output topic so far, counted by one read_committed consumer that
    reads on in its own thread (offsets would over-count: each Kafka transaction's commit marker
    takes one), and when each key was first seen here: what a read_committed reader waits, commit
    included (a record's Kafka timestamp is when it was written, before its transaction committed)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(name=f"tally-{topic}", daemon=True)
        self.consumer = Consumer(
            kafka.consumer_config(f"bench-{uuid.uuid4().hex}", {"enable.auto.commit": False})
        )
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self.n, self.done = 0, threading.Event()
        self.seen: dict[str, float] = {}  # key -> when first read here
        self.start()

    def run(self) -> None:
        while not self.done.is_set():
            messages = self.consumer.consume(10_000, 0.02)
            now = time.time()
            for m in messages:
                if m.error() is None:
                    self.n += 1
                    self.seen.setdefault((m.key() or b"").decode(), now)

    def count(self) -> int:
        return self.n

    def close(self) -> None:
        self.done.set()
        self.join()
        self.consumer.close()


def end_offsets(kafka: KafkaSettings, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "bench-offsets"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        )
    finally:
        consumer.close()


def percentiles(values: Iterable[float]) -> list[float]:
    v = list(values)
    return [float(x) for x in np.percentile(v, [50, 95, 99])] if v else []


def window_of(event_time: str, seconds: int) -> str:
    t = datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp()
    return datetime.fromtimestamp(t - t % seconds).isoformat()


def _band(value: float | None, bands: tuple[tuple[int, str], ...], top: str) -> str:
    return next((name for bound, name in bands if value is not None and value < bound), top)


def segment_of(event: dict[str, Any]) -> str:
    """As sparky.analyses.segment computes it."""
    income = event.get("annual_inc")
    fico = _band(event["fico_range_low"], FICO_BANDS, FICO_TOP_BAND)
    return f"{fico}/{INCOME_UNKNOWN if income is None else _band(income, INCOME_BANDS, INCOME_TOP_BAND)}"


def window_latency(
    inputs: dict[tuple[str, ...], list[float]], updates: dict[tuple[str, ...], list[tuple[float, int]]]
) -> tuple[list[float], int]:
    """Per group: the first update counting all its inputs, minus its last input's time; and how many
    groups got one."""
    lat = []
    for group, times in inputs.items():
        done = [at for at, n in sorted(updates.get(group, [])) if n >= len(times)]
        if done:
            lat.append(done[0] - max(times))
    return lat, len(lat)


def measure(
    kafka: KafkaSettings,
    topics: TopicSettings,
    outcome: Outcome,
    skip: set[str],
    window_s: int,
    seen: dict[str, dict[str, float]],
) -> None:
    apps = read_all(kafka, topics.applications)
    sent = {key: at for key, at, _ in apps if key not in skip}
    if len(sent) > 1:
        outcome.held = len(sent) / (max(sent.values()) - min(sent.values()))
    groups: dict[str, dict[tuple[str, ...], list[float]]] = {s: defaultdict(list) for s in WINDOWED}
    for _, at, raw in apps:
        event = json.loads(raw)
        w = window_of(event["event_time"], window_s)
        groups["stats"][(w,)].append(at)
        groups["segment"][(w, segment_of(event))].append(at)
        groups["channel"][(w, event["channel"])].append(at)
    first_sent = min(sent.values(), default=0.0)
    for stream in (*PER_APPLICATION, *WINDOWED):
        records = read_all(kafka, topics.output(stream))
        outcome.records[stream] = len(records)
        if stream in PER_APPLICATION:
            first: dict[str, float] = {}
            for key, at, _ in records:
                if key in sent:
                    first[key] = min(at, first.get(key, at))
            outcome.latency[stream] = percentiles(at - sent[key] for key, at in first.items())
            if stream in seen:  # seen by a live read_committed reader
                live = seen[stream]
                outcome.latency[f"{stream} seen"] = percentiles(live[k] - sent[k] for k in sent if k in live)
            continue
        updates: dict[tuple[str, ...], list[tuple[float, int]]] = defaultdict(list)
        for _, at, raw in records:
            r = json.loads(raw)
            group = (window_of(r["window_start"], window_s), *([r[stream]] if stream != "stats" else []))
            updates[group].append((at, int(r["applications"])))
        timed = {g: t for g, t in groups[stream].items() if max(t) >= first_sent}  # windows of the timed run
        lat, done = window_latency(timed, updates)
        outcome.latency[stream] = percentiles(lat)
        outcome.complete[stream] = f"{done}/{len(timed)} windows"


@dataclass(frozen=True)
class Design:
    name: str
    env: dict[str, str]
    tree: Path  # where its code is
    command: tuple[str, ...] = ("-m", "sparky.cli")  # how the job starts (python ...)


def standalone(port: int, ui_port: int) -> Design:
    """The job on a local Spark standalone cluster, as `make spark-app-cluster` runs it."""
    env = DESIGNS["realtime"] | {
        "LOANS_STACK_SPARK_MASTER_PORT": str(port), "LOANS_STACK_SPARK_UI_PORT": str(ui_port),
    }  # fmt: skip
    return Design("cluster (standalone, 2 workers)", env, ROOT, ("-m", "core.stack", "spark-app"))


def designs(names: list[str], baseline_ref: str) -> list[Design]:
    out = []
    for name in names:
        if name == "baseline":
            tree = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
            subprocess.run(  # noqa: S603
                ["git", "worktree", "add", "--detach", str(tree), baseline_ref],  # noqa: S607
                cwd=ROOT, check=True, capture_output=True,
            )  # fmt: skip
            out.append(Design(f"baseline ({baseline_ref})", {}, tree))
        elif name == "cluster":
            out.append(standalone(free_port(), free_port()))
        else:
            out.append(Design(name, DESIGNS[name], ROOT))
    return out


def run_rate(
    kafka: KafkaSettings, mlflow: MlflowSettings, design: Design, rate: float, args: argparse.Namespace
) -> Outcome:
    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        applications=f"pipe{tag}.applications", history=f"pipe{tag}.history", truth=f"pipe{tag}.truth",
        dlq=f"pipe{tag}.dlq", output_prefix=f"pipe{tag}",
    )  # fmt: skip
    ensure_topics(kafka, topics)
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    events = work / "events"
    events.mkdir()
    env = (
        os.environ
        | design.env
        | {
            "PYTHONPATH": str(design.tree),
            "PYTHONUNBUFFERED": "1",
            "PYSPARK_SUBMIT_ARGS": " ".join(
                f"--conf spark.eventLog.{option}"
                for option in (
                    f"dir=file://{events}",
                    "enabled=true",
                    "compress=false",
                    "rolling.enabled=false",
                )
            )
            + " pyspark-shell",
            "LOANS_PATHS_HOME": str((ROOT / ".loans").resolve()),
            "LOANS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "LOANS_TOPICS_APPLICATIONS": topics.applications,
            "LOANS_TOPICS_HISTORY": topics.history,
            "LOANS_TOPICS_TRUTH": topics.truth,
            "LOANS_TOPICS_DLQ": topics.dlq,
            "LOANS_TOPICS_OUTPUT_PREFIX": topics.output_prefix,
            "LOANS_MLFLOW_TRACKING_URI": mlflow.tracking_uri,
            "LOANS_MLFLOW_MODEL_NAME": mlflow.model_name,
            "LOANS_SPARK_CHECKPOINT_DIR": str(work / "checkpoints"),
            "LOANS_SPARK_LAKE_DIR": str(work / "lake"),
            "LOANS_SPARK_WINDOW": f"{args.window} seconds",
        }
    )
    # spark-submit (the cluster design) reads no PYSPARK_SUBMIT_ARGS: its JVM takes spark.* properties
    env["SPARK_SUBMIT_OPTS"] = (
        env["PYSPARK_SUBMIT_ARGS"].removesuffix(" pyspark-shell").replace("--conf ", "-D")
    )
    log = (work / "job.log").open("wb")
    job = subprocess.Popen(  # noqa: S603 (our own CLI)
        [sys.executable, *design.command, "--from-beginning", "--progress-every", "30"],
        cwd=design.tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    outcome = Outcome(design.name, rate)
    tallies = {s: Tally(kafka, topics.output(s)) for s in ("risk", "scores")}
    try:
        warm = warm_up(kafka, topics, env, job, args, tallies)
        skip = {key for key, _, _ in read_all(kafka, topics.applications)}
        print(f"  {design.name}: producing {rate:,.0f}/s for {args.duration:.0f} s ...", flush=True)
        produce(env, rate, args.duration, seed=3)
        outcome.produced = end_offsets(kafka, topics.applications) - warm
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            if all(tally.count() >= outcome.produced + warm for tally in tallies.values()):
                outcome.drained_s = args.drain - (deadline - time.monotonic())
                break
            time.sleep(0.5)
        time.sleep(args.settle)  # windows: let the last ones fill
    finally:
        stop(job)
        log.close()
        for tally in tallies.values():
            tally.close()
    measure(kafka, topics, outcome, skip, args.window, {s: t.seen for s, t in tallies.items()})
    outcome.batches = batch_costs(events)
    return outcome


def produce(env: dict[str, str], rate: float, duration: float, seed: int) -> None:
    subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "kafka_producer.cli", "--rate", str(rate), "--duration", str(duration),
         "--history", "none", "--no-create-topics", "--seed", str(seed)],
        cwd=ROOT, env=env | {"PYTHONPATH": str(ROOT)}, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def warm_up(
    kafka: KafkaSettings,
    topics: TopicSettings,
    env: dict[str, str],
    job: subprocess.Popen[bytes],
    args: argparse.Namespace,
    tallies: dict[str, Tally],
) -> int:
    """Produce warm-up applications until risk and scores answer (the JVM compiles its code on the
    first batches, which would otherwise dominate a short run); returns the applications sent."""
    deadline = time.monotonic() + args.warmup
    while True:
        produce(env, 200, 5, seed=99)
        sent = end_offsets(kafka, topics.applications)
        time.sleep(10)
        done = {s: tally.count() for s, tally in tallies.items()}
        print(f"  warm-up: {sent:,} sent, {done}", flush=True)
        if all(n >= sent for n in done.values()):
            time.sleep(5)
            return end_offsets(kafka, topics.applications)
        if job.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(
                f"warm-up: the job did not answer within {args.warmup:.0f} s (exit {job.poll()})"
            )


def stop(job: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user would; killed if it has not stopped within a minute."""
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGINT)
        try:
            job.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)


def batch_costs(events: Path) -> dict[str, str]:
    """Per query, from the Spark event log: micro-batches with input, their mean rows and seconds,
    and where the time went (Spark's durationMs, mean per batch, parts of 20 ms or more)."""
    progress: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in (p for p in events.rglob("*") if p.is_file()):
        for line in path.read_text(errors="replace").splitlines():
            if "QueryProgressEvent" not in line:
                continue
            try:
                p = json.loads(line)["progress"]
            except (ValueError, KeyError):
                continue
            p["numInputRows"] = sum(int(source.get("numInputRows", 0)) for source in p.get("sources", []))
            if p["numInputRows"] > 0:
                progress[p.get("name") or "?"].append(p)
    out = {}
    for name, busy in sorted(progress.items()):
        parts = defaultdict(list)
        for p in busy:
            for part, ms in (p.get("durationMs") or {}).items():
                parts[part].append(ms)
        total = np.mean(parts.pop("triggerExecution", [0])) / 1000
        rows = np.mean([p["numInputRows"] for p in busy])
        detail = ", ".join(
            f"{n} {np.mean(v) / 1000:.2f}" for n, v in sorted(parts.items()) if np.mean(v) >= 20
        )
        out[name] = f"{len(busy)} batches, {rows:,.0f} rows, {total:.2f} s each ({detail})"
    return out


def report(outcomes: list[Outcome], p99_limit: float) -> None:
    streams = ["risk", "risk seen", *PER_APPLICATION[1:], *WINDOWED]
    print(f"\n{'design':<22}{'rate/s':>8}{'held/s':>8}{'drain s':>8}  "
          + "".join(f"{s + ' p50/p95/p99 s':>24}" for s in streams) + "  kept up")  # fmt: skip
    for o in outcomes:
        drained = f"{o.drained_s:.1f}" if o.drained_s is not None else "-"
        cells = "".join(f"{'/'.join(f'{x:.2f}' for x in o.latency.get(s, [])) or '-':>24}" for s in streams)
        print(f"{o.design:<22}{o.rate:>8,.0f}{o.held:>8,.0f}{drained:>8}  {cells}  "
              f"{'yes' if o.kept_up(p99_limit) else 'no'}")  # fmt: skip
    for o in outcomes:
        print(f"  {o.design} {o.rate:,.0f}/s: windows complete {o.complete}; records {o.records}")
        for name, summary in o.batches.items():
            print(f"    {name:<8} {summary}")
    for design in dict.fromkeys(o.design for o in outcomes):
        best = max((o.rate for o in outcomes if o.design == design and o.kept_up(p99_limit)), default=0)
        print(f"highest rate kept up with ({design}): {best:,.0f} applications/s")


def start_champion() -> tuple[MlflowServer, MlflowSettings]:
    """A private MLflow server with a quick champion trained on synthetic history."""
    from bench.serving import train_champion

    server = MlflowServer(Path(tempfile.mkdtemp(prefix="bench-pipeline-mlflow-")), port=free_port())
    server.start(timeout_s=120)
    mlflow = MlflowSettings(tracking_uri=server.uri, model_name="bench-pipeline")
    print("training a quick champion on synthetic history ...", flush=True)
    train_champion(mlflow)
    return server, mlflow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=float, nargs="+", default=[1000])
    parser.add_argument("--designs", nargs="+", default=["realtime", "baseline"],
                        choices=[*DESIGNS, "baseline", "cluster"])  # fmt: skip
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of input per run")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds allowed to catch up afterwards")
    parser.add_argument("--settle", type=float, default=20.0, help="then seconds for the last windows")
    parser.add_argument("--warmup", type=float, default=240.0, help="seconds the warm-up may take")
    parser.add_argument(
        "--window", type=int, default=60, help="window seconds (the job's LOANS_SPARK_WINDOW)"
    )
    parser.add_argument("--p99-limit", type=float, default=3.0)
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--all-rates", action="store_true", help="run every rate, kept up or not")
    args = parser.parse_args(argv)
    configure("INFO")
    broker = KafkaBroker(
        Path(tempfile.mkdtemp(prefix="bench-pipeline-kafka-")),
        jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka"),
        port=free_port(),
        controller_port=free_port(),
        heap="1g",
    )
    broker.start()
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
    server, mlflow = start_champion()
    outcomes: list[Outcome] = []
    chosen: list[Design] = []
    try:
        for design in (chosen := designs(args.designs, args.baseline_ref)):
            for rate in args.rates:
                outcome = run_rate(kafka, mlflow, design, rate, args)
                outcomes.append(outcome)
                report([outcome], args.p99_limit)
                if not outcome.kept_up(args.p99_limit) and not args.all_rates:
                    break  # higher rates will not do better
        report(outcomes, args.p99_limit)
    finally:
        broker.stop()
        server.stop()
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False)  # noqa: S607
        for design in (d for d in chosen if d.command[1] == "core.stack"):
            subprocess.run([sys.executable, "-m", "core.stack", "spark-down"], env=os.environ | design.env,  # noqa: S603
                           cwd=ROOT, check=False)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
