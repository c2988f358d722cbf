"""Exactly once, through the real broker, Spark and MLflow: `loans-stream` is killed with SIGKILL at
three points (right after one of the real-time query's Kafka transactions committed, risk and scores
in it, while it catches up on a backlog; in the middle of a fraud write; in the middle of a
dead-letter write) and restarted on the same checkpoints each time. Read read_committed afterwards,
every application is in loan.risk and loan.scores exactly once (scores: one model version), every
flagged application once in loan.fraud, every malformed message once in loan.dlq, and nothing is
missing, although the applications and malformed messages sent before the job's first start were
there first (fresh checkpoints start from the earliest offset). The at-least-once designs this
replaced are measured by bench/pipeline.py against a git revision, not kept in the code. The topics have
the default three partitions. While the last start runs, the job's processes are read for the ports
they listen on: every one (Spark UI, driver RPC, block manager, metrics) on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from core.settings import KafkaSettings, MlflowSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import read_topic
from kafka_producer.encode import json_lines
from kafka_producer.topics import ensure_topics
from models.registry.versions import promote
from models.training.train import TrainingSource, TrainOptions, train
from tests.integration.jobs import descendants, listening, loopback

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow

KILLS = ("realtime:after-commit", "fraud:mid-write", "archive:mid-write")
BAD = [b"{oops", b"", b'{"channel": "web"}', b"\xff\xfe not utf-8"]


class Sender:
    def __init__(self, kafka: KafkaSettings, topics: TopicSettings) -> None:
        self.producer = Producer(kafka.producer_config("test"))
        self.topic, self.gen, self.bad = (
            topics.applications,
            ApplicationGenerator(seed=5, fraud_share=0.2, rings=3),
            0,
        )
        self.ids: list[str] = []

    def apps(self, n: int) -> None:
        batch = self.gen.batch(n, datetime.now(UTC), 0.01).applications
        for line, app_id in zip(json_lines(batch), batch["application_id"], strict=True):
            self.producer.produce(self.topic, line, app_id.encode())
        self.ids += batch["application_id"].tolist()
        assert self.producer.flush(30) == 0

    def malformed(self) -> None:
        for i, value in enumerate(BAD):
            self.producer.produce(self.topic, value, f"bad-{self.bad + i}".encode())
        self.bad += len(BAD)
        assert self.producer.flush(30) == 0


def start(env: dict[str, str], log: Path, failpoint: str = "") -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        out.write(f"\n==== start, failpoint {failpoint or 'none'}\n".encode())
        job = ["-m", "tests.integration.failpoints", failpoint] if failpoint else ["-m", "sparky.cli"]
        return subprocess.Popen(
            [sys.executable, *job, "--progress-every", "5"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def died(job: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether the job killed itself at its failpoint within `timeout_s` (else it is killed here)."""
    try:
        job.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        return False
    time.sleep(3)  # the JVM ends once its Python driver is gone
    return job.returncode == -signal.SIGKILL


def committed(checkpoints: Path, query: str, topic: str) -> int:
    """How many records of `topic` (all its partitions) `query`'s committed micro-batches reached, from
    its checkpoint: a micro-batch query has written everything below them (its Kafka transaction
    commits first)."""
    commits = [int(p.name) for p in (checkpoints / query / "commits").glob("[0-9]*")]
    if not commits:
        return 0
    lines = (checkpoints / query / "offsets" / str(max(commits))).read_text().splitlines()[2:]
    ends = (json.loads(line).get(topic, {}) for line in lines)
    return max((sum(int(offset) for offset in end.values()) for end in ends), default=0)


def read(kafka: KafkaSettings, topic: str, expected: int) -> list[dict]:
    return [json.loads(m.value() or b"{}") for m in read_topic(kafka, topic, expected, 60, settle_s=3)]


def run_with_kills(
    kafka: KafkaSettings, topics: TopicSettings, mlflow: MlflowSettings, tmp_path: Path
) -> tuple[Sender, dict[str, Counter[str]], list[bool]]:
    ensure_topics(kafka, topics)
    train(mlflow, TrainingSource.synthetic(rows=4000, seed=3), TrainOptions.quick())
    assert promote(mlflow, force=True).promoted
    env = os.environ | {
        "LOANS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LOANS_MLFLOW_TRACKING_URI": mlflow.tracking_uri,
        "LOANS_MLFLOW_MODEL_NAME": mlflow.model_name,
        "LOANS_TOPICS_APPLICATIONS": topics.applications,
        "LOANS_TOPICS_HISTORY": topics.history,
        "LOANS_TOPICS_TRUTH": topics.truth,
        "LOANS_TOPICS_DLQ": topics.dlq,
        "LOANS_TOPICS_OUTPUT_PREFIX": topics.output_prefix,
        "LOANS_SPARK_MASTER": "local[6]",  # the real-time query holds a slot per partition, 3 for the rest
        "LOANS_SPARK_ARCHIVE_TRIGGER": "2 seconds",
        "LOANS_SPARK_MAX_OFFSETS_PER_TRIGGER": "150",  # a backlog takes several micro-batches
        "LOANS_SPARK_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "LOANS_SPARK_LAKE_DIR": str(tmp_path / "lake"),
    }
    log = tmp_path / "job.log"
    send = Sender(kafka, topics)
    send.apps(600)  # before the job ever started
    send.malformed()
    kills = []
    for failpoint in KILLS:
        job = start(env, log, failpoint)
        send.apps(150)
        send.malformed()
        kills.append(died(job, timeout_s=180))
    job = start(env, log)
    try:
        send.apps(150)
        outputs = {stream: topics.output(stream) for stream in ("risk", "scores")}
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            got = len(read_topic(kafka, outputs["scores"], len(send.ids), 5, settle_s=0))
            if got >= len(send.ids) and len(read_topic(kafka, outputs["risk"], len(send.ids), 5, 0)) >= len(
                send.ids
            ):
                break
            time.sleep(5)
        end = len(send.ids) + send.bad  # the applications topic's end offset
        chk = tmp_path / "checkpoints"
        while (
            time.monotonic() < deadline + 120
            and min(committed(chk, query, topics.applications) for query in ("fraud", "archive")) < end
        ):  # the micro-batch queries read in batches of 150: they finish after real time does
            time.sleep(2)
        exposed = {(a, p) for a, p in listening(descendants(job.pid)) if not loopback(a)}
        assert not exposed, f"the job listens beyond loopback: {sorted(exposed)}"
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        job.wait(60)
    records = {
        "risk": read(kafka, topics.output("risk"), len(send.ids)),
        "scores": read(kafka, topics.output("scores"), len(send.ids)),
        "fraud": read(kafka, topics.output("fraud"), 1),
        "dlq": read(kafka, topics.dlq, send.bad),
    }
    counts = {name: Counter(r.get("application_id", "") for r in rows) for name, rows in records.items()}
    counts["dlq"] = Counter(f"{r['source_partition']}:{r['source_offset']}" for r in records["dlq"])
    counts["versions"] = Counter(r["model_version"] for r in records["scores"])
    print(
        f"\nexactly once: {sum(kills)} of {len(KILLS)} kills at "
        f"their failpoint, {len(send.ids)} applications, {send.bad} malformed; "
        + ", ".join(
            f"{name} {sum(c.values())} records / {sum(n - 1 for n in c.values())} duplicates"
            for name, c in counts.items()
            if name != "versions"
        )
        + f"; log {log}"
    )
    return send, counts, kills


@pytest.fixture
def topics(fresh_topics: Callable[..., TopicSettings]) -> TopicSettings:
    """The default three partitions: the real-time query's tasks commit one transaction each, and a
    kill between them is what a single partition cannot show."""
    return fresh_topics("e", TopicSettings().partitions)


@pytest.fixture
def mlflow(mlflow_settings: MlflowSettings) -> MlflowSettings:
    return mlflow_settings.model_copy(update={"model_name": f"eo-{uuid.uuid4().hex[:8]}"})


def test_kills_at_three_points_leave_every_output_exactly_once(
    kafka: KafkaSettings, topics: TopicSettings, mlflow: MlflowSettings, tmp_path: Path
) -> None:
    send, counts, kills = run_with_kills(kafka, topics, mlflow, tmp_path)
    assert kills[:2] == [True, True], "the first two kills must land at their failpoints"
    ids = set(send.ids)
    for stream in ("risk", "scores"):
        assert set(counts[stream]) == ids, f"{stream}: {len(ids - set(counts[stream]))} missing"
        assert max(counts[stream].values()) == 1, f"{stream}: duplicates"
    assert counts["fraud"] and set(counts["fraud"]) <= ids
    assert max(counts["fraud"].values()) == 1, "fraud: duplicates"
    assert len(counts["dlq"]) == send.bad and max(counts["dlq"].values()) == 1
    assert len(counts["versions"]) == 1
