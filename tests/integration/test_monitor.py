"""The monitor stream through real Kafka, Spark and MLflow: two windows of applications and their
outcomes, one like the training population and one with FICO shifted down, scored by the real-time
query; per window and version loan.monitor carries the volume, the drift alarm (raised for the
shifted window only), before any outcome the AUC the scores promise, and, from the outcomes sent
later on loan.truth, the AUC scikit-learn computes on the same rows, from the scores the job
published (nothing scored twice)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from sklearn.metrics import roc_auc_score

from core.settings import KafkaSettings, MlflowSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import keyed_json, read_topic
from kafka_producer.producer import EventProducer
from kafka_producer.publish import send_frame
from kafka_producer.topics import ensure_topics
from models.metrics import expected_auc
from models.registry.versions import load_scorer, promote, resolve
from models.training.train import TrainingSource, TrainOptions, train
from sparky.context import Context
from sparky.supervisor import Supervisor

pytestmark = pytest.mark.integration

N = 400  # applications per window


@pytest.fixture
def ml(mlflow_uri: str) -> MlflowSettings:
    settings = MlflowSettings(tracking_uri=mlflow_uri, model_name=f"m-{uuid.uuid4().hex[:8]}")
    train(settings, TrainingSource.synthetic(rows=4000, seed=3), TrainOptions.quick())
    assert promote(settings, force=True).promoted
    return settings


@pytest.fixture
def running(
    spark: SparkSession, kafka: KafkaSettings, topics: TopicSettings, ml: MlflowSettings, tmp_path: Path
) -> Iterator[Supervisor]:
    ensure_topics(kafka, topics)
    settings = SparkJobSettings(
        checkpoint_dir=tmp_path / "chk", lake_dir=tmp_path / "lake", starting_offsets="earliest",
        queries="realtime,monitor", realtime_batch="10 seconds", monitor_window="1 minute",
        monitor_trigger="2 seconds", champion_poll_s=1,
    )  # fmt: skip
    job = Supervisor(Context(spark, kafka, topics, settings, ml))
    job.start()
    try:
        yield job
    finally:
        job.stop()


def population(seed: int, start: datetime, fico_shift: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    batch = ApplicationGenerator(seed=seed).batch(N, start, 50 / N)  # 50 s: inside one window
    apps = batch.applications
    if fico_shift:
        for column in ("fico_range_low", "fico_range_high"):
            apps[column] = (apps[column] + fico_shift).clip(300, 850)
    return apps, batch.truth


def test_monitor_drift_alarm_and_auc_against_outcomes(
    running: Supervisor, kafka: KafkaSettings, topics: TopicSettings, ml: MlflowSettings
) -> None:
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    calm = population(11, minute + timedelta(seconds=5))
    shifted = population(12, minute + timedelta(minutes=1, seconds=5), fico_shift=-60)
    producer = EventProducer(kafka)
    for apps, _ in (calm, shifted):  # the outcomes come later, as a lender learns them
        send_frame(producer, topics.applications, apps, "application_id")
    assert producer.close(30).failed == 0
    version = resolve(ml, "champion").version  # type: ignore[union-attr]

    def windows(outcomes: int) -> dict[str, dict]:
        deadline, found = time.monotonic() + 240, {}
        while time.monotonic() < deadline:
            records = keyed_json(read_topic(kafka, topics.output("monitor"), 10**6, timeout_s=3, settle_s=0))
            found = {r["window_start"][:16]: r for r in records.values() if r["model_version"] == version}
            if len(found) == 2 and all(
                r["scored"] == N and r["outcomes"] == outcomes for r in found.values()
            ):
                break
            time.sleep(2)
        assert len(found) == 2, found
        return found

    before = windows(outcomes=0)  # the estimate, before any outcome
    producer = EventProducer(kafka)
    for _, truth in (calm, shifted):
        send_frame(producer, topics.truth, truth, "application_id")
    assert producer.close(30).failed == 0
    found = windows(outcomes=N)
    first, second = (found[k] for k in sorted(found))

    scorer = load_scorer(ml, resolve(ml, "champion"))  # type: ignore[arg-type]
    for record, (apps, truth), early in (
        (first, calm, before[min(before)]),
        (second, shifted, before[max(before)]),
    ):
        assert record["applications"] == record["scored"] == record["outcomes"] == N, record
        assert record["model_alias"] == "champion" and not record.get("shadow")
        p = np.round(scorer.score(apps)["probability"].to_numpy(), 6)  # as loan.scores publishes it
        y = truth["will_default"].to_numpy(int)
        assert early.get("auc") is None and early["estimated_auc"] == pytest.approx(expected_auc(p), abs=1e-9)
        assert record["estimated_auc"] == pytest.approx(early["estimated_auc"], abs=1e-12)
        assert record["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
        assert record["default_rate"] == pytest.approx(y.mean())
        assert record["mean_score"] == pytest.approx(p.mean(), abs=1e-9)
    assert not first["drift_alarm"], first
    assert second["drift_alarm"], second
    assert second["score_psi"] > first["score_psi"]
    assert np.isclose(first["approve_rate"] + first["review_rate"] + first["decline_rate"], 1.0)
