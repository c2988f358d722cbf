"""The scores stream through real Kafka, Spark and MLflow: with no champion the real-time query writes
risk alone; once one is promoted the waiting applications are scored (from where the job started);
when the alias moves, later applications are scored by the new version (the real-time query starts
again from its writer's offsets), and each record says which; a challenger scores in shadow."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Producer
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from core.settings import KafkaSettings, MlflowSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import keyed_json, read_topic
from kafka_producer.encode import json_lines
from kafka_producer.topics import ensure_topics
from models.registry.versions import load_scorer, promote, resolve
from models.training.train import TrainingSource, TrainOptions, train
from sparky.context import Context
from sparky.supervisor import Supervisor

pytestmark = pytest.mark.integration

N = 120


def send(kafka: KafkaSettings, topic: str, apps: pd.DataFrame) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for line, app_id in zip(json_lines(apps), apps["application_id"], strict=True):
        producer.produce(topic, line, app_id.encode())
    assert producer.flush(30) == 0


def scored(job: Supervisor, ids: set[str], timeout_s: float) -> dict[str, dict]:
    """The latest loan.scores record of each of `ids`, read until all are there or the deadline; the
    job follows the registry as `Supervisor.run` does between its checks."""
    kafka, topics = job.ctx.kafka, job.ctx.topics
    deadline = time.monotonic() + timeout_s
    while True:
        job.follow_models()
        records = keyed_json(read_topic(kafka, topics.output("scores"), 10**9, timeout_s=3, settle_s=0))
        found = {k: v for k, v in records.items() if k in ids}
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(2)


def champion(settings: MlflowSettings, seed: int) -> str:
    train(settings, TrainingSource.synthetic(rows=4000, seed=seed), TrainOptions.quick())
    result = promote(settings, force=True)
    assert result.promoted, result.reason
    ref = resolve(settings, "champion")
    assert ref is not None
    return ref.version


@pytest.fixture
def running(
    spark: SparkSession, kafka: KafkaSettings, topics: TopicSettings, mlflow_uri: str, tmp_path: Path
) -> Iterator[Supervisor]:
    ensure_topics(kafka, topics)
    settings = SparkJobSettings(
        checkpoint_dir=tmp_path / "chk", lake_dir=tmp_path / "lake", starting_offsets="earliest",
        queries="realtime", realtime_batch="10 seconds", champion_poll_s=1,
    )  # fmt: skip
    ml = MlflowSettings(tracking_uri=mlflow_uri, model_name=f"t-{uuid.uuid4().hex[:8]}")
    job = Supervisor(Context(spark, kafka, topics, settings, ml))
    job.start()
    try:
        yield job
    finally:
        job.stop()


def test_scores_wait_for_a_champion_then_follow_the_alias(
    running: Supervisor, kafka: KafkaSettings, topics: TopicSettings
) -> None:
    job = running
    mlflow = job.ctx.mlflow
    assert mlflow is not None
    gen = ApplicationGenerator(seed=5)
    first = gen.batch(N, datetime(2026, 4, 1, 9, 0, tzinfo=UTC), 0.5).applications
    send(kafka, topics.applications, first)
    risk = keyed_json(read_topic(kafka, topics.output("risk"), N, timeout_s=180, settle_s=1))
    assert set(first["application_id"]) <= set(risk)  # the rest of the job runs without a champion
    assert not read_topic(kafka, topics.output("scores"), 1, timeout_s=2, settle_s=0)  # ... scores wait
    job.follow_models()
    assert job.ctx.models.champion is None
    assert job.champion is not None and "has no 'champion' alias" in job.champion.why_not

    v1 = champion(mlflow, seed=1)
    before = scored(job, set(first["application_id"]), timeout_s=180)
    assert len(before) == N, f"only {len(before)} of {N} waiting applications were scored"
    assert {r["model_version"] for r in before.values()} == {v1}
    scorer = load_scorer(mlflow, resolve(mlflow, "champion"))  # type: ignore[arg-type]
    p, decisions, _, reasons = scorer.explain(first)
    own = dict(zip(first["application_id"], zip(p, decisions, reasons, strict=True), strict=True))
    for app_id, record in before.items():  # the stream gives the model's own answer and reasons
        assert record.get("error") is None  # the JSON sink leaves null fields out
        probability, decision, why = own[app_id]
        assert np.isclose(record["default_probability"], probability, atol=1e-6)
        assert record["decision"] == decision
        assert [r["code"] for r in record.get("reasons", [])] == [r["code"] for r in why]
        if decision == "decline":
            assert record["reasons"], f"a decline without a reason: {record}"
    assert any(r["decision"] == "decline" for r in before.values())

    v2 = champion(mlflow, seed=2)
    assert v2 != v1
    job.follow_models()  # what the job's loop does every LOANS_SPARK_CHAMPION_POLL_S
    assert job.ctx.models.champion is not None and job.ctx.models.champion.ref.version == v2
    second = gen.batch(N, datetime(2026, 4, 1, 10, 0, tzinfo=UTC), 0.5).applications
    send(kafka, topics.applications, second)
    after = scored(job, set(second["application_id"]), timeout_s=180)
    assert len(after) == N
    assert {r["model_version"] for r in after.values()} == {v2}  # swapped: later applications by v2
    assert all(r["model_name"] == mlflow.model_name for r in after.values())

    # shadow: a challenger alias is scored beside the champion on the same traffic, flagged shadow
    MlflowClient(mlflow.tracking_uri).set_registered_model_alias(mlflow.model_name, "challenger", v1)
    job.follow_models()
    assert job.ctx.models.challenger is not None and job.ctx.models.challenger.ref.version == v1
    third = gen.batch(N, datetime(2026, 4, 1, 11, 0, tzinfo=UTC), 0.5).applications
    send(kafka, topics.applications, third)
    ids, deadline = set(third["application_id"]), time.monotonic() + 180
    mine: list[dict] = []
    while len(mine) < 2 * N and time.monotonic() < deadline:
        time.sleep(2)
        messages = read_topic(kafka, topics.output("scores"), 10**9, 3, 0)
        mine = [r for m in messages if (r := json.loads(m.value() or b"{}"))["application_id"] in ids]
    by_role = {flag: {r["application_id"]: r for r in mine if r["shadow"] is flag} for flag in (False, True)}
    assert len(mine) == 2 * N and all(len(records) == N for records in by_role.values())
    assert {(r["model_version"], r["model_alias"]) for r in by_role[False].values()} == {(v2, "champion")}
    assert {(r["model_version"], r["model_alias"]) for r in by_role[True].values()} == {(v1, "challenger")}
    p1, *_ = scorer.explain(third)  # the shadow records are v1's own answers
    own_v1 = dict(zip(third["application_id"], p1, strict=True))
    assert all(np.isclose(r["default_probability"], own_v1[k], atol=1e-6) for k, r in by_role[True].items())
