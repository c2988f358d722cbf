"""Real services: messages through the local Kafka broker, a metric through the MLflow server."""

from __future__ import annotations

import json
import uuid

import mlflow
import pytest
from confluent_kafka import Producer
from mlflow.tracking import MlflowClient

from core.settings import KafkaSettings, MlflowSettings, TopicSettings
from demo import kafka_round_trip
from kafka_consumer.read import keyed_json, read_topic
from kafka_producer.topics import admin_client, ensure_topics

pytestmark = pytest.mark.integration


def test_produce_and_consume_real_messages(kafka: KafkaSettings, topics: TopicSettings) -> None:
    topic = topics.applications
    assert ensure_topics(kafka, topics, [topic]) == [topic]
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True, "acks": "all"}
    )
    sent = {f"app-{i}": {"i": i, "amount": 1000 + i} for i in range(50)}
    for key, value in sent.items():
        producer.produce(topic, json.dumps(value).encode(), key.encode())
    assert producer.flush(30) == 0

    got = keyed_json(read_topic(kafka, topic, len(sent), timeout_s=30, settle_s=0))
    assert got == sent


def test_topic_creation_is_idempotent_and_uses_settings(kafka: KafkaSettings, topics: TopicSettings) -> None:
    first = ensure_topics(kafka, topics)
    assert sorted(first) == sorted(topics.all())
    assert ensure_topics(kafka, topics) == []
    meta = admin_client(kafka).list_topics(timeout=10)
    assert all(len(meta.topics[t].partitions) == topics.partitions for t in topics.all())


def test_demo_round_trip_reads_back_every_message(kafka: KafkaSettings, topics: TopicSettings) -> None:
    assert kafka_round_trip(kafka, topics, 25) == 25


def test_mlflow_experiment_metric_round_trip(mlflow_settings: MlflowSettings) -> None:
    mlflow.set_tracking_uri(mlflow_settings.tracking_uri)
    name = f"it-{uuid.uuid4().hex[:8]}"
    experiment_id = mlflow.create_experiment(name)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("auc", 0.731)
        mlflow.log_param("model", "smoke")
    client = MlflowClient(mlflow_settings.tracking_uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None and experiment.experiment_id == experiment_id
    stored = client.get_run(run.info.run_id).data
    assert stored.metrics["auc"] == pytest.approx(0.731)
    assert stored.params["model"] == "smoke"
