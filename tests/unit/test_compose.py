"""docker-compose.yaml describes the same stack as `make up`: same ports, same topics."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.settings import StackSettings, TopicSettings


def _compose(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "docker-compose.yaml").read_text())


def test_compose_ports_match_settings(repo_root: Path) -> None:
    services, stack = _compose(repo_root)["services"], StackSettings()
    assert services["kafka"]["ports"] == [f"127.0.0.1:{stack.kafka_port}:{stack.kafka_port}"]  # loopback only
    assert services["mlflow"]["ports"] == [f"127.0.0.1:{stack.mlflow_port}:{stack.mlflow_port}"]


def test_compose_creates_exactly_the_settings_topics(repo_root: Path) -> None:
    env = _compose(repo_root)["services"]["kafka-topics"]["environment"]
    topics = TopicSettings()
    assert env["TOPICS"].split() == topics.all()
    assert env["COMPACTED"].split() == topics.compacted()
    assert int(env["PARTITIONS"]) == topics.partitions
    assert int(env["RETENTION_MS"]) == topics.retention_ms


def test_compose_kafka_is_kraft_and_same_version_as_local_jars(repo_root: Path) -> None:
    kafka = _compose(repo_root)["services"]["kafka"]
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    pom = (repo_root / "infra" / "kafka" / "pom.xml").read_text()
    version = kafka["image"].split(":")[1]
    assert f"<kafka.version>{version}</kafka.version>" in pom
