"""Session fixtures for real services: a Kafka broker and an MLflow server (never mocks).

Kafka: `LOANS_KAFKA_BOOTSTRAP_SERVERS` if set; else a testcontainers broker when `LOANS_TEST_DOCKER=1`
and a Docker engine answers; else the same local KRaft broker `make up` runs, on free ports in a
temp folder. MLflow: `LOANS_MLFLOW_TRACKING_URI` if set, else a local server on a free port.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The fixtures' brokers are open unless a test secures its own (test_security): the protocol a
# developer's `make up` wrote to .loans/secrets.env (SASL) must not reach them.
os.environ["LOANS_KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
# ...and the services the tests start serve no metrics on the fixed ports unless a test gives one
os.environ["LOANS_METRICS_JOB_PORT"] = os.environ["LOANS_METRICS_PRODUCER_PORT"] = "0"

from core.ports import free_port
from core.settings import KafkaSettings, MlflowSettings, PathSettings, TopicSettings  # noqa: E402
from stack import jars
from stack.kafka import KafkaBroker
from stack.mlflow_server import MlflowServer


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if servers := os.environ.get("LOANS_KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
        return
    if os.environ.get("LOANS_TEST_DOCKER") == "1":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    jar_dir = jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka")
    broker = KafkaBroker(
        tmp_path_factory.mktemp("kafka"), jar_dir, port=free_port(), controller_port=free_port()
    )
    broker.start(timeout_s=90)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap)


def unique_topics(letter: str = "t", partitions: int = 1) -> TopicSettings:
    """Topic settings whose every name is unique (`<letter><uuid>.` prefix), for a test or a module."""
    tag = f"{letter}{uuid.uuid4().hex[:8]}"
    return TopicSettings(
        applications=f"{tag}.applications",
        history=f"{tag}.history",
        truth=f"{tag}.truth",
        dlq=f"{tag}.dlq",
        output_prefix=tag,
        partitions=partitions,
    )


@pytest.fixture(scope="session")
def fresh_topics() -> Callable[..., TopicSettings]:
    """`unique_topics`, for fixtures of a wider scope than one test."""
    return unique_topics


@pytest.fixture
def topics() -> TopicSettings:
    """Topic settings whose every name is unique to this test (a uuid prefix), 1 partition each."""
    return unique_topics()


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if uri := os.environ.get("LOANS_MLFLOW_TRACKING_URI"):
        yield uri
        return
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), port=free_port())
    server.start(timeout_s=120)
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_settings(mlflow_uri: str) -> MlflowSettings:
    return MlflowSettings(tracking_uri=mlflow_uri)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local Spark session for the whole run: 3 task slots (a real-time query holds one per input
    partition for its whole batch, and the job's other queries need some), 1 shuffle partition, UTC,
    no UI, with the Kafka connector (jars must be given when the JVM starts, so every Spark test
    shares them)."""
    from pyspark.sql import SparkSession

    from sparky.session import ROCKSDB, connector_jars

    jars.ensure(jars.SPARK_POM, PathSettings().jars / "spark", provided=jars.spark_provided())  # make install
    session = (
        SparkSession.builder.master("local[3]")
        .config("spark.jars", ",".join(str(j) for j in connector_jars(PathSettings())))
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .appName("loan-stream-tests")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.streaming.stateStore.providerClass", ROCKSDB)  # as the job's (transformWithState)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    try:
        yield session
    finally:
        session.stop()
