"""Faults the job survives without a person, on a private broker and MLflow server that the test
stops and starts under a running `loans-stream`:
- MLflow goes away just after a new champion is promoted: risk and scores keep flowing (the version
  the job holds scores on: its network is on the executors), the new champion is not refused for
  the outage, and once MLflow is back later applications are scored by it; every application
  exactly once (read_committed);
- the broker stops for 30 s mid-run and comes back on the same storage: the job and the project's
  producer resume, and every application reaches loan.risk and loan.scores exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.ports import free_port
from core.settings import KafkaSettings, MlflowSettings, PathSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import read_topic
from kafka_producer.encode import json_lines
from kafka_producer.producer import EventProducer
from kafka_producer.topics import ensure_topics
from models.registry.versions import promote, resolve
from models.training.train import TrainingSource, TrainOptions, train
from stack import jars
from stack.kafka import KafkaBroker
from stack.mlflow_server import MlflowServer
from tests.integration.jobs import RunningJob, assert_risked_and_scored_once, steady_applications, wait_for

# make test-slow, by itself: it times an outage, which a test sharing the cores would stretch
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.alone]


class Stack:
    def __init__(self, home: Path) -> None:
        jar_dir = jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka")
        self.broker = KafkaBroker(home / "kafka", jar_dir, port=free_port(), controller_port=free_port())
        self.mlflow = MlflowServer(home / "mlflow", port=free_port())
        self.kafka = KafkaSettings(bootstrap_servers=self.broker.bootstrap)
        self.ml = MlflowSettings(tracking_uri=self.mlflow.uri, model_name="faults")
        self.topics = TopicSettings(partitions=1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("faults")
    (home / "kafka").mkdir()
    (home / "mlflow").mkdir()
    s = Stack(home)
    s.broker.start(timeout_s=90)
    s.mlflow.start(timeout_s=90)
    try:
        ensure_topics(s.kafka, s.topics)
        train(s.ml, TrainingSource.synthetic(rows=4000, seed=1), TrainOptions.quick())
        assert promote(s.ml, force=True).promoted
        yield s
    finally:
        s.mlflow.stop()
        s.broker.stop()


@pytest.fixture(scope="module")
def job(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningJob]:
    work = tmp_path_factory.mktemp("faults-job")
    env = os.environ | {
        "LOANS_KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
        "LOANS_MLFLOW_TRACKING_URI": stack.ml.tracking_uri,
        "LOANS_MLFLOW_MODEL_NAME": stack.ml.model_name,
        "LOANS_TOPICS_PARTITIONS": "1",
        "LOANS_SPARK_MASTER": "local[3]",
        "LOANS_SPARK_QUERIES": "realtime",
        "LOANS_SPARK_REALTIME_BATCH": "5 seconds",
        "LOANS_SPARK_RESTART_BACKOFF_S": "3",
        "LOANS_SPARK_CHAMPION_POLL_S": "1",
        "LOANS_SPARK_CHECKPOINT_DIR": str(work / "checkpoints"),
        "LOANS_SPARK_LAKE_DIR": str(work / "lake"),
    }
    log = work / "job.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sparky.cli", "--progress-every", "5"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield RunningJob(log, process)
        assert process.poll() is None, f"the job exited; log: {log}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)


def produce(kafka: KafkaSettings, topics: TopicSettings, n: int, seed: int) -> list[str]:
    apps = ApplicationGenerator(seed=seed).batch(n, datetime.now(UTC), 0.01).applications
    producer = EventProducer(kafka)
    producer.send(topics.applications, [a.encode() for a in apps["application_id"]], json_lines(apps))
    producer.close()
    return list(apps["application_id"])


def test_mlflow_outage_risk_and_scores_flow_on_and_the_new_champion_follows(
    stack: Stack, job: RunningJob
) -> None:
    kafka, topics = stack.kafka, stack.topics
    first = produce(kafka, topics, 100, seed=1)
    assert set(first) <= set(wait_for(kafka, topics.output("scores"), first, 180)), f"log: {job}"
    train(stack.ml, TrainingSource.synthetic(rows=4000, seed=2), TrainOptions.quick())
    assert promote(stack.ml, force=True).promoted  # a new champion the job may not have loaded ...
    new = resolve(stack.ml, "champion")
    assert new is not None
    stack.mlflow.stop()  # ... in a registry that is gone now
    try:
        during = produce(kafka, topics, 100, seed=2)
        for stream in ("risk", "scores"):  # scored on by the version the job holds
            assert set(during) <= set(wait_for(kafka, topics.output(stream), during, 90)), f"{stream} stopped"
        time.sleep(5)
    finally:
        stack.mlflow.start(timeout_s=90)
    time.sleep(10)  # the job asks the registry again (LOANS_SPARK_CHAMPION_POLL_S)
    after = produce(kafka, topics, 100, seed=4)  # seed 3: the broker test's ids (a seed fixes the ids)
    scores = wait_for(kafka, topics.output("scores"), first + during + after, 240)
    assert set(first + during + after) <= set(scores), f"not every application was scored; log: {job}"
    assert max(scores.values()) == 1, "an application was scored twice"
    records = [
        json.loads(m.value() or b"{}") for m in read_topic(kafka, topics.output("scores"), 10**9, 5, 0)
    ]
    versions = {r["model_version"] for r in records if r["application_id"] in set(after)}
    assert versions == {new.version}, f"after the outage: {versions}; log: {job}"
    assert "not reachable" in job.read_text(), "the outage never reached the job"


def test_broker_down_30_s_then_back_loses_nothing(stack: Stack, job: RunningJob) -> None:
    """The project's producer sends 10 applications a second throughout; the broker stops for 30 s."""
    kafka, topics = stack.kafka, stack.topics
    with steady_applications(kafka, topics.applications, seed=3) as sent:
        time.sleep(10)
        stack.broker.stop()
        time.sleep(30)
        stack.broker.start(timeout_s=90)
        time.sleep(10)
    assert_risked_and_scored_once(kafka, topics, sent, job)
