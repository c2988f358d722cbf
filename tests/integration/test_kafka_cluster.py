"""Past one machine, on this one: a 3-node KRaft cluster (`make up KAFKA_BROKERS=3`) and the job
spark-submitted to a Spark standalone cluster of a master and 2 workers (`make spark-app-cluster`:
the project's code shipped as its wheel). Topics are replicated three times with
min.insync.replicas=2; mid-stream the broker leading the applications' first partition is SIGKILLed
and restarted 20 s later; the project's producer (acks=all, idempotent) reports no failure, and
every application reaches loan.risk and loan.scores (scores exactly once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka.admin import ConfigResource

from core.ports import free_port, port_free
from core.settings import KafkaSettings, MlflowSettings, PathSettings, TopicSettings
from kafka_producer.topics import admin_client, ensure_topics
from models.registry.versions import promote
from models.training.train import TrainingSource, TrainOptions, train
from stack import jars
from stack.kafka import KafkaCluster
from stack.mlflow_server import MlflowServer
from stack.spark import SparkStandalone
from tests.integration.jobs import RunningJob, assert_risked_and_scored_once, steady_applications

# make test-slow, by itself: it times an outage, which a test sharing the cores would stretch
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.alone]


def free_port_pairs(nodes: int) -> int:
    """A port p with p .. p + 2 * nodes - 1 all free (each node's client and controller ports)."""
    for _ in range(100):
        base = free_port()
        if base + 2 * nodes < 65536 and all(port_free("127.0.0.1", base + k) for k in range(2 * nodes)):
            return base
    raise RuntimeError("no run of free ports")


@dataclass
class Cluster:
    kafka: KafkaCluster
    settings: KafkaSettings
    ml: MlflowSettings
    topics: TopicSettings
    stack_env: dict[str, str]  # `loans-stack` pointed at this cluster's folder and ports

    def status(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stack", "status"],
            capture_output=True, text=True, env=self.stack_env, check=False, timeout=120,
        )  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("cluster")
    jar_dir = jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka")
    base = free_port_pairs(3)
    kafka = KafkaCluster.local(home, jar_dir, "127.0.0.1", base, base + 1, "384m", "", size=3)
    mlflow = MlflowServer(home / "mlflow", port=free_port())
    (home / "mlflow").mkdir()
    kafka.start(timeout_s=120)
    mlflow.start(timeout_s=90)
    try:
        c = Cluster(
            kafka,
            KafkaSettings(bootstrap_servers=kafka.bootstrap),
            MlflowSettings(tracking_uri=mlflow.uri, model_name="cluster"),
            TopicSettings(),
            os.environ | {
                "LOANS_PATHS_HOME": str(home), "LOANS_STACK_SECURE": "false",
                "LOANS_STACK_KAFKA_PORT": str(base), "LOANS_STACK_KAFKA_CONTROLLER_PORT": str(base + 1),
                "LOANS_STACK_MLFLOW_PORT": str(mlflow.port),
            },
        )  # fmt: skip
        ensure_topics(c.settings, c.topics)
        train(c.ml, TrainingSource.synthetic(rows=4000, seed=1), TrainOptions.quick())
        assert promote(c.ml, force=True).promoted
        yield c
    finally:
        mlflow.stop()
        kafka.stop()


@pytest.fixture(scope="module")
def job(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningJob]:
    """`make spark-app-cluster` against the 3 nodes: a standalone master + 2 workers (3 slots each)."""
    work = tmp_path_factory.mktemp("cluster-job")
    (work / "jars").symlink_to(PathSettings().jars.resolve())
    standalone = SparkStandalone(work / "spark", port=free_port(), ui_port=free_port_pairs(2))
    env = os.environ | {
        "LOANS_PATHS_HOME": str(work),
        "LOANS_STACK_SPARK_MASTER_PORT": str(standalone.port),
        "LOANS_STACK_SPARK_UI_PORT": str(standalone.ui_port),
        "LOANS_KAFKA_BOOTSTRAP_SERVERS": cluster.kafka.bootstrap,  # every node: any one may be down
        "LOANS_MLFLOW_TRACKING_URI": cluster.ml.tracking_uri,
        "LOANS_MLFLOW_MODEL_NAME": cluster.ml.model_name,
        "LOANS_SPARK_QUERIES": "realtime",
        "LOANS_SPARK_REALTIME_BATCH": "5 seconds",
        "LOANS_SPARK_RESTART_BACKOFF_S": "3",
        "LOANS_SPARK_CHECKPOINT_DIR": str(work / "checkpoints"),
        "LOANS_SPARK_LAKE_DIR": str(work / "lake"),
    }
    log = work / "job.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "stack", "spark-app", "--progress-every", "5"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while "started 1 queries: realtime" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, (
                f"the job did not start; log: {log}"
            )
            time.sleep(2)
        assert standalone.alive_workers() == 2
        with urllib.request.urlopen(f"{standalone.ui}/json/", timeout=10) as resp:  # noqa: S310 - our URI
            apps = json.load(resp)["activeapps"]
        assert [(a["name"], a["cores"]) for a in apps] == [("loan-stream", 6)]  # the job, on both workers
        yield RunningJob(log, process)
        assert process.poll() is None, f"the job exited; log: {log}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
        standalone.stop()


def test_topics_are_replicated_three_times_with_two_in_sync(cluster: Cluster) -> None:
    admin = admin_client(cluster.settings)
    meta = admin.list_topics(timeout=10)
    assert len(meta.brokers) == 3
    for name in cluster.topics.all():
        assert all(len(p.replicas) == 3 for p in meta.topics[name].partitions.values()), name
    resource = ConfigResource(ConfigResource.Type.TOPIC, cluster.topics.applications)
    config = admin.describe_configs([resource])[resource].result()
    assert config["min.insync.replicas"].value == "2"
    assert cluster.kafka.under_replicated() == 0
    status = cluster.status()  # make status: each node, and replication
    assert status.returncode == 0, status.stdout + status.stderr
    assert [line.split()[:4] for line in status.stdout.splitlines() if line.startswith("kafka node")] == [
        ["kafka", "node", str(i), "healthy"] for i in (1, 2, 3)
    ]
    assert "replication    ok" in status.stdout


def test_broker_sigkilled_mid_stream_loses_nothing(cluster: Cluster, job: RunningJob) -> None:
    kafka, topics = cluster.settings, cluster.topics
    meta = admin_client(kafka).list_topics(topics.applications, timeout=10)
    leader = meta.topics[topics.applications].partitions[0].leader
    victim = next(n for n in cluster.kafka.nodes if n.node_id == leader)
    with steady_applications(kafka, topics.applications, seed=3) as sent:
        time.sleep(15)
        pid = victim.process.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while cluster.kafka.under_replicated() == 0:  # the controller fences the dead node
            assert time.monotonic() < deadline, "no partition lost a replica"
            time.sleep(2)
        status = cluster.status()
        assert status.returncode == 1 and "UNDER-REPLICATED" in status.stdout
        assert f"kafka node {victim.node_id}   stopped" in status.stdout
        victim.start(timeout_s=120)
        time.sleep(10)
    assert len(sent) >= 300
    assert_risked_and_scored_once(kafka, topics, sent, job)
    deadline = time.monotonic() + 90
    while cluster.kafka.under_replicated() != 0:  # the restarted node catches up (None: no metadata)
        assert time.monotonic() < deadline, "replicas never caught up"
        time.sleep(3)
