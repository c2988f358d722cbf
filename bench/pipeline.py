"""The Spark job under a steady input rate, through its public commands: does every stream keep up?

Per run, on the default stack as `make up` gives it (a Kafka broker with SASL/SCRAM and ACLs, each
service its own principal; exactly once on): fresh topics and checkpoints, the job started as
`loans-stream` (`make spark-app-single`: every stream, scores by a champion from a private MLflow)
and beside it the monitoring process (`make spark-monitor`: outcomes and loan.monitor, as the
`outcomes` principal), warmed up, then `loans-produce` publishes live applications (and their
outcomes) at the rate for --duration seconds. Afterwards every input and output record is read back
with its Kafka timestamp:
- per-application streams (risk, scores, fraud): latency = output time - input time, per id;
  `risk seen` / `scores seen`: when a read_committed reader, reading on during the run, first got
  the id - input time (what a transaction's commit adds, which the output's Kafka timestamp hides);
- windowed streams (stats, segment, channel, monitor): per window (and group), the time from the
  window's last input to the first update that counts all of it.
A run keeps up when the producer held its rate, the job drained within --drain seconds, every
per-application p99 is <= --p99-limit and every window completed. The CPU the job's and the
monitoring process's trees used over the run is printed as cores and as cores per 1,000
applications/s; `--per-query` instead runs each query alone at the first rate and prints what each
costs (the monitoring process beside a job of the real-time query alone, for the scores it reads).

Designs, measured in the same run on this machine (--designs):
- `jvm`: this tree's job (one real-time query for risk and scores in the JVM, fraud's keyed state
  in the JVM);
- `baseline`: the job as it was before (--baseline-ref, main before "Python off the hot path": scores
  and fraud in Python per micro-batch), from a git worktree, its champion trained by its own code;
- `cluster`: this tree's job spark-submitted to a Spark standalone cluster of a master and 2 workers
  on this machine (`make spark-app-cluster`), against `jvm` in `local[*]` at the same rates.
Each run also prints each query's micro-batches: how many, rows and seconds each, and Spark's
`durationMs` breakdown (from the Spark event log).

    uv run python -m bench.pipeline --rates 500 1000 --designs jvm baseline --all-rates
    uv run python -m bench.pipeline --rates 2000 3000 5000 --designs jvm
    uv run python -m bench.pipeline --rates 1000 --designs jvm baseline --per-query --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
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
from confluent_kafka.admin import AclBinding, AclOperation, ResourcePatternType, ResourceType

from core.logging import configure
from core.ports import free_port
from core.settings import KafkaSettings, PathSettings, TopicSettings
from kafka_producer.topics import admin_client, ensure_topics
from sparky.analyses.segment import FICO_BANDS, FICO_TOP_BAND, INCOME_BANDS, INCOME_TOP_BAND, INCOME_UNKNOWN
from stack import acl, jars
from stack.acl import ADMIN
from stack.kafka import KafkaBroker
from stack.mlflow_server import MlflowServer

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "d195d9d"  # main before "Python off the hot path" (issue 22)
PER_APPLICATION = ("risk", "scores", "fraud")
WINDOWED = ("stats", "segment", "channel", "monitor")
LIVE = ("risk", "scores")  # read on during the run by a read_committed reader
JOB_QUERIES = {
    "jvm": ("realtime", "windows", "fraud", "archive"),
    "baseline": ("risk", "scores", "windows", "fraud", "archive"),
}
MONITORING = "outcomes,monitor"


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
    cores: dict[str, float] = field(default_factory=dict)  # process -> CPU cores used over the run

    def kept_up(self, p99_limit: float) -> bool:
        none = [float("inf")] * 3  # records but no latency: never answered in time
        p99s = [(self.latency.get(s) or none)[2] for s in PER_APPLICATION if self.records.get(s)]
        windows_done = all(c.split("/")[0] == c.split("/")[1].split()[0] for c in self.complete.values())
        return (
            self.drained_s is not None
            and self.held >= 0.95 * self.rate
            and max(p99s, default=0.0) <= p99_limit
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
    return Consumer(
        kafka.consumer_config(f"{kafka.prefix}-{uuid.uuid4().hex}", {"enable.auto.commit": False})
    )


class Tally(threading.Thread):
    """The committed records of an output topic so far, counted by one read_committed consumer that
    reads on in its own thread (offsets would over-count: each Kafka transaction's commit marker
    takes one), and when each key was first seen here: what a read_committed reader waits, commit
    included (a record's Kafka timestamp is when it was written, before its transaction committed)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(name=f"tally-{topic}", daemon=True)
        self.consumer = Consumer(
            kafka.consumer_config(f"{kafka.prefix}-{uuid.uuid4().hex}", {"enable.auto.commit": False})
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
    consumer = Consumer(kafka.consumer_config(f"{kafka.prefix}-offsets"))  # the stack's credentials
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
        groups["monitor"][(w,)].append(at)  # the champion's record of the window
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
            if stream == "monitor" and r.get("shadow"):
                continue
            keyed = stream not in ("stats", "monitor")
            group = (window_of(r["window_start"], window_s), *([r[stream]] if keyed else []))
            updates[group].append((at, int(r["applications"])))
        timed = {g: t for g, t in groups[stream].items() if max(t) >= first_sent}  # windows of the timed run
        lat, done = window_latency(timed, updates)
        outcome.latency[stream] = percentiles(lat)
        outcome.complete[stream] = f"{done}/{len(timed)} windows"


@dataclass(frozen=True)
class Design:
    name: str
    kind: str  # "jvm" or "baseline": which queries the job has
    tree: Path  # where its code is
    command: tuple[str, ...] = ("-m", "sparky.cli")  # how the job starts (python ...)
    env: dict[str, str] = field(default_factory=dict)


def baseline_bindings(topics: TopicSettings, client_id: str) -> list[AclBinding]:
    """What the baseline design needs beside today's grants (it predates per-principal prefixes):
    transactional ids and groups under the bare client id, Spark's default source groups, and the
    monitoring principal's markers in the job's commits topic. On this private bench stack only."""
    prefixed, ops = ResourcePatternType.PREFIXED, (AclOperation.WRITE, AclOperation.DESCRIBE)
    old = [
        *(acl.Grant(ResourceType.TRANSACTIONAL_ID, f"{client_id}.", op, prefixed) for op in ops),
        acl.Grant(ResourceType.GROUP, f"{client_id}-", AclOperation.READ, prefixed),
        acl.Grant(ResourceType.GROUP, "spark-kafka-", AclOperation.READ, prefixed),
    ]
    markers = [acl.Grant(ResourceType.TOPIC, topics.commits, op) for op in (AclOperation.READ, *ops)]
    return [*acl.bindings("spark", old), *acl.bindings("outcomes", [*old, *markers])]


@dataclass
class Stack:
    """The default stack, as `make up` secures it: a broker with SASL/SCRAM and ACLs (one principal
    per service), and a private MLflow with a champion per design (trained by that design's code)."""

    broker: KafkaBroker
    mlflow: MlflowServer
    passwords: dict[str, str]

    def kafka(self, service: str) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.broker.bootstrap, security_protocol="SASL_PLAINTEXT",
            username=service, password=self.passwords[service],
        )  # fmt: skip

    def topics(self) -> TopicSettings:
        """Fresh topics for one run, with every principal's ACLs on them."""
        tag = uuid.uuid4().hex[:6]
        topics = TopicSettings(
            applications=f"pipe{tag}.applications", history=f"pipe{tag}.history", truth=f"pipe{tag}.truth",
            dlq=f"pipe{tag}.dlq", output_prefix=f"pipe{tag}",
        )  # fmt: skip
        admin = self.kafka(ADMIN)
        ensure_topics(admin, topics)
        client = admin_client(admin)
        acl.apply(client, {s: p for s, p in self.passwords.items() if s != ADMIN}, topics, admin.client_id)
        for future in client.create_acls(
            baseline_bindings(topics, admin.client_id), request_timeout=30
        ).values():
            future.result()
        return topics

    def env(self) -> dict[str, str]:
        """What the job, the monitoring process and the producer are given, as `make up` writes it."""
        return {
            "LOANS_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "LOANS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            **{f"LOANS_KAFKA_PASSWORD_{s.upper()}": p for s, p in self.passwords.items()},
            "LOANS_MLFLOW_TRACKING_URI": self.mlflow.uri,
        }


def start_stack() -> Stack:
    admin_password = secrets.token_urlsafe(24)
    broker = KafkaBroker(
        Path(tempfile.mkdtemp(prefix="bench-pipeline-kafka-")),
        jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka"),
        port=free_port(), controller_port=free_port(), heap="1g", admin_password=admin_password,
    )  # fmt: skip
    broker.start()
    server = MlflowServer(Path(tempfile.mkdtemp(prefix="bench-pipeline-mlflow-")), port=free_port())
    server.start(timeout_s=120)
    passwords = {ADMIN: admin_password, **{s: secrets.token_urlsafe(24) for s in acl.SERVICES}}
    return Stack(broker, server, passwords)


def train_champion(stack: Stack, design: Design) -> str:
    """A quick champion trained and promoted by `design`'s own code (a model's format is its code's);
    returns its registered model name."""
    name = f"bench-{design.kind}"
    code = (
        "from bench.serving import train_champion; from core.settings import MlflowSettings; "
        f"train_champion(MlflowSettings(tracking_uri={stack.mlflow.uri!r}, model_name={name!r}))"
    )
    print(f"training a quick champion ({design.kind}) on synthetic history ...", flush=True)
    subprocess.run(  # noqa: S603 (our own code)
        [sys.executable, "-c", code], cwd=design.tree, env=os.environ | {"PYTHONPATH": str(design.tree)},
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return name


def standalone(port: int, ui_port: int) -> Design:
    """The job on a local Spark standalone cluster, as `make spark-app-cluster` runs it."""
    env = {"LOANS_STACK_SPARK_MASTER_PORT": str(port), "LOANS_STACK_SPARK_UI_PORT": str(ui_port)}
    return Design("cluster (standalone, 2 workers)", "jvm", ROOT, ("-m", "stack", "spark-app"), env)


def designs(names: list[str], baseline_ref: str) -> list[Design]:
    out = []
    for name in names:
        if name == "baseline":
            tree = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
            subprocess.run(  # noqa: S603
                ["git", "worktree", "add", "--detach", str(tree), baseline_ref],  # noqa: S607
                cwd=ROOT, check=True, capture_output=True,
            )  # fmt: skip
            home = {"LOANS_PATHS_HOME": str(tree / ".loans")}  # its own jars: its pom is not this one
            subprocess.run(  # noqa: S603
                [sys.executable, "-m", "stack", "jars"], cwd=tree, check=True,
                env=os.environ | home | {"PYTHONPATH": str(tree)}, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            out.append(Design(f"baseline ({baseline_ref})", "baseline", tree, env=home))
        elif name == "cluster":
            out.append(standalone(free_port(), free_port()))
        else:
            out.append(Design("jvm", "jvm", ROOT))
    return out


def process_tree(pid: int) -> set[int]:
    """`pid` and its live descendants: the job's Python driver, the JVM it starts (in a session of
    its own, so the tree and not the session), the JVM's Python workers."""
    parent = {}
    for entry in Path("/proc").iterdir():
        try:
            parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    tree, grew = {pid}, True
    while grew:
        more = {child for child, up in parent.items() if up in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid`'s process tree."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def start_job(
    design: Design, env: dict[str, str], queries: str, log: Path, work: Path, name: str, metrics: int = 0
) -> subprocess.Popen[bytes]:
    """`loans-stream` of `design` running `queries`, its Spark event log under `work`, its Prometheus
    metrics on port `metrics` (0: none)."""
    events = work / f"events-{name}"
    events.mkdir(exist_ok=True)
    submit = " ".join(
        f"--conf spark.eventLog.{o}"
        for o in (f"dir=file://{events}", "enabled=true", "compress=false", "rolling.enabled=false")
    )
    env = env | design.env | {
        "PYSPARK_SUBMIT_ARGS": submit + " pyspark-shell",
        # spark-submit (the cluster design) reads no PYSPARK_SUBMIT_ARGS: its JVM takes spark.* properties
        "SPARK_SUBMIT_OPTS": submit.replace("--conf ", "-D"),
        "LOANS_SPARK_QUERIES": queries,
        "LOANS_SPARK_CHECKPOINT_DIR": str(work / f"checkpoints-{name}"),
        "LOANS_METRICS_JOB_PORT": str(metrics), "LOANS_METRICS_MONITOR_PORT": str(metrics),
    }  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 (our own CLI)
            [sys.executable, *design.command, "--from-beginning", "--progress-every", "30"],
            cwd=design.tree, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def run_env(stack: Stack, design: Design, topics: TopicSettings, model: str, work: Path) -> dict[str, str]:
    """The environment of one run's processes: the stack, the run's topics, model and folders."""
    return os.environ | stack.env() | {
        "PYTHONPATH": str(design.tree), "PYTHONUNBUFFERED": "1",
        "LOANS_PATHS_HOME": str((ROOT / ".loans").resolve()),
        "LOANS_TOPICS_APPLICATIONS": topics.applications, "LOANS_TOPICS_HISTORY": topics.history,
        "LOANS_TOPICS_TRUTH": topics.truth, "LOANS_TOPICS_DLQ": topics.dlq,
        "LOANS_TOPICS_OUTPUT_PREFIX": topics.output_prefix, "LOANS_MLFLOW_MODEL_NAME": model,
        "LOANS_SPARK_LAKE_DIR": str(work / "lake"),
    }  # fmt: skip


def run_rate(
    stack: Stack,
    model: str,
    design: Design,
    rate: float,
    args: argparse.Namespace,
    queries: str | None = None,
    monitoring: bool = True,
) -> Outcome:
    """One run at `rate`: the job (all its queries, or `queries`) and the monitoring process (with
    all the queries, or when `monitoring`)."""
    topics, work = stack.topics(), Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    window = f"{args.window} seconds"
    env = run_env(stack, design, topics, model, work)
    env |= {"LOANS_SPARK_WINDOW": window, "LOANS_SPARK_MONITOR_WINDOW": window}
    job_queries = queries or ",".join(JOB_QUERIES[design.kind])
    jobs = {"job": start_job(design, env, job_queries, work / "job.log", work, "job")}
    if queries is None or monitoring:
        jobs["monitoring"] = start_job(design, env, MONITORING, work / "monitoring.log", work, "monitoring")
    name = design.name if queries is None else f"{design.name}: {job_queries}"
    outcome = Outcome(name, rate)
    reader = stack.kafka("bench")
    live = [s for s in LIVE if s in _streams(design.kind, job_queries)]
    tallies = {s: Tally(reader, topics.output(s)) for s in live}
    try:
        warm = warm_up(reader, topics, env, jobs, args, tallies)
        skip = {key for key, _, _ in read_all(reader, topics.applications)}
        print(f"  {name}: producing {rate:,.0f}/s for {args.duration:.0f} s ...", flush=True)
        cpu = {n: cpu_seconds(j.pid) for n, j in jobs.items()}
        began = time.monotonic()
        produce(env, rate, args.duration, seed=3)
        outcome.produced = end_offsets(reader, topics.applications) - warm
        deadline = time.monotonic() + args.drain
        while tallies and time.monotonic() < deadline:
            if all(tally.count() >= outcome.produced + warm for tally in tallies.values()):
                outcome.drained_s = args.drain - (deadline - time.monotonic())
                break
            time.sleep(0.5)
        spent = time.monotonic() - began
        outcome.cores = {n: (cpu_seconds(j.pid) - cpu[n]) / spent for n, j in jobs.items()}
        time.sleep(args.settle)  # windows: let the last ones fill
    finally:
        for job in jobs.values():
            stop(job)
        for tally in tallies.values():
            tally.close()
    measure(reader, topics, outcome, skip, args.window, {s: t.seen for s, t in tallies.items()})
    outcome.batches = batch_costs(work)
    return outcome


def _streams(kind: str, queries: str) -> set[str]:
    """The streams a job of `queries` writes."""
    writes = {"realtime": {"risk", "scores"}, "risk": {"risk"}, "scores": {"scores"}}
    return set().union(*(writes.get(q, {q}) for q in queries.split(",")))


def produce(env: dict[str, str], rate: float, duration: float, seed: int) -> None:
    """`loans-produce`, as the producer principal (applications and their outcomes)."""
    subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "kafka_producer.cli", "--rate", str(rate), "--duration", str(duration),
         "--history", "none", "--no-create-topics", "--seed", str(seed)],
        cwd=ROOT, env=env | {"PYTHONPATH": str(ROOT), "LOANS_METRICS_PRODUCER_PORT": "0"}, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def warm_up(
    kafka: KafkaSettings,
    topics: TopicSettings,
    env: dict[str, str],
    jobs: dict[str, subprocess.Popen[bytes]],
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
        if any(j.poll() is not None for j in jobs.values()) or time.monotonic() > deadline:
            raise SystemExit(
                f"warm-up: the job did not answer within {args.warmup:.0f} s "
                f"(exit {[j.poll() for j in jobs.values()]})"
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


def batch_costs(events: Path) -> dict[str, str]:  # `events`: the run's folder of event logs
    """Per query, from the Spark event log: micro-batches with input, their mean rows and seconds,
    and where the time went (Spark's durationMs, mean per batch, parts of 20 ms or more)."""
    progress: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in (p for p in events.glob("events-*/*") if p.is_file()):
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
    streams = ["risk", "risk seen", "scores", "scores seen", "fraud", *WINDOWED]
    print(f"\n{'design':<26}{'rate/s':>8}{'held/s':>8}{'drain s':>8}  "
          + "".join(f"{s + ' p50/p95/p99 s':>27}" for s in streams) + "  kept up")  # fmt: skip
    for o in outcomes:
        drained = f"{o.drained_s:.1f}" if o.drained_s is not None else "-"
        cells = "".join(f"{'/'.join(f'{x:.2f}' for x in o.latency.get(s, [])) or '-':>27}" for s in streams)
        print(f"{o.design:<26}{o.rate:>8,.0f}{o.held:>8,.0f}{drained:>8}  {cells}  "
              f"{'yes' if o.kept_up(p99_limit) else 'no'}")  # fmt: skip
    for o in outcomes:
        cores = ", ".join(f"{n} {c:.2f}" for n, c in o.cores.items())
        per = sum(o.cores.values()) / (o.rate / 1000)
        print(f"  {o.design} {o.rate:,.0f}/s: CPU {cores} cores ({per:.2f} cores per 1,000/s)")
        print(f"    windows complete {o.complete}; records {o.records}")
        for name, summary in o.batches.items():
            print(f"    {name:<8} {summary}")
    for design in dict.fromkeys(o.design for o in outcomes):
        best = max((o.rate for o in outcomes if o.design == design and o.kept_up(p99_limit)), default=0)
        print(f"highest rate kept up with ({design}): {best:,.0f} applications/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=float, nargs="+", default=[1000])
    parser.add_argument(
        "--designs", nargs="+", default=["jvm", "baseline"], choices=["jvm", "baseline", "cluster"]
    )
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
    parser.add_argument(
        "--per-query", action="store_true", help="each query alone at the first rate: its CPU and latency"
    )
    args = parser.parse_args(argv)
    configure("INFO")
    stack = start_stack()
    outcomes: list[Outcome] = []
    chosen: list[Design] = []
    try:
        for design in (chosen := designs(args.designs, args.baseline_ref)):
            model = train_champion(stack, design)
            if args.per_query:
                for query in (*JOB_QUERIES[design.kind], "monitor"):  # monitor: beside what scores
                    alone = JOB_QUERIES[design.kind][0] if query == "monitor" else query
                    run = run_rate(stack, model, design, args.rates[0], args, alone, query == "monitor")
                    outcomes.append(run)
                    report([outcomes[-1]], args.p99_limit)
                continue
            for rate in args.rates:
                outcome = run_rate(stack, model, design, rate, args)
                outcomes.append(outcome)
                report([outcome], args.p99_limit)
                if not outcome.kept_up(args.p99_limit) and not args.all_rates:
                    break  # higher rates will not do better
        report(outcomes, args.p99_limit)
    finally:
        stack.broker.stop()
        stack.mlflow.stop()
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False)  # noqa: S607
        for design in (d for d in chosen if d.command[1] == "stack"):
            subprocess.run([sys.executable, "-m", "stack", "spark-down"], env=os.environ | design.env,  # noqa: S603
                           cwd=ROOT, check=False)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
