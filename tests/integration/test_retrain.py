"""Retraining from the lake the real job writes: history, live applications and their outcomes go
through Kafka and the job's archive query into the lake; `loans-retrain` trains on it, registers a
candidate and promotes it only through the gate (real broker, Spark and MLflow)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from core import lake
from core.errors import DataError
from core.settings import KafkaSettings, MlflowSettings, SparkJobSettings, TopicSettings
from generator.applications import ApplicationGenerator
from generator.history import synthetic_history
from kafka_producer.producer import EventProducer
from kafka_producer.publish import send_frame
from kafka_producer.topics import ensure_topics
from models.cli import retrain_main
from models.training.data import TrainingSource, load
from sparky.context import Context
from sparky.supervisor import Supervisor

pytestmark = pytest.mark.integration
HISTORY, LIVE = 3_000, 800


def archived(path: Path, key: str) -> int:
    try:
        return len(lake.read(path, key))
    except DataError:
        return 0


@pytest.fixture(scope="module")
def written_lake(
    spark: SparkSession, kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory,
    fresh_topics: Callable[..., TopicSettings],
) -> Path:  # fmt: skip
    """A lake written by the job's archive query from what the producer's code sent."""
    topics = fresh_topics("r")
    ensure_topics(kafka, topics)
    batch = ApplicationGenerator(seed=31).batch(LIVE, datetime.now(UTC) - timedelta(hours=1), 0.5)
    producer = EventProducer(kafka)
    send_frame(producer, topics.history, synthetic_history(5, HISTORY), "id")
    send_frame(producer, topics.applications, batch.applications, "application_id")
    send_frame(producer, topics.truth, batch.truth, "application_id")
    assert producer.close(30).failed == 0
    work = tmp_path_factory.mktemp("retrain")
    settings = SparkJobSettings(
        checkpoint_dir=work / "chk", lake_dir=work / "lake", queries="archive,outcomes",
        archive_trigger="1 second", starting_offsets="earliest",
    )  # fmt: skip
    job = Supervisor(Context(spark, kafka, topics, settings))
    job.start()
    root, deadline = work / "lake", time.monotonic() + 180
    wanted = {
        "history": ("id", HISTORY),
        "applications": ("application_id", LIVE),
        "truth": ("application_id", LIVE),
    }
    try:
        while time.monotonic() < deadline:
            if all(archived(root / f, key) >= n for f, (key, n) in wanted.items()):
                break
            time.sleep(2)
    finally:
        job.stop()
    assert {f: archived(root / f, key) for f, (key, _) in wanted.items()} == {
        f: n for f, (_, n) in wanted.items()
    }
    return root


def test_training_reads_the_layout_the_job_writes(written_lake: Path) -> None:
    frame = load(TrainingSource.lake(written_lake))
    assert len(frame) == HISTORY + LIVE  # history (all terminal) + every live application with its outcome
    live = frame[frame["id"].str.startswith("app-")]
    assert len(live) == LIVE and set(live["loan_status"]) == {"Charged Off", "Fully Paid"}


def test_retrain_registers_a_candidate_and_the_gate_refuses_a_worse_one(
    written_lake: Path, mlflow_settings: MlflowSettings, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    name = f"retrain-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("LOANS_MLFLOW_TRACKING_URI", mlflow_settings.tracking_uri)
    monkeypatch.setenv("LOANS_MLFLOW_MODEL_NAME", name)
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)

    assert retrain_main(["--path", str(written_lake), "--quick", "--device", "cpu"]) == 0
    first = capsys.readouterr().out
    assert "promoted: no champion yet" in first and "retraining took" in first
    champion = client.get_model_version_by_alias(name, "champion").version
    assert client.get_model_version_by_alias(name, "candidate").version == champion

    # the same data and seed again: a candidate no better than the champion (a worse one is refused
    # the same way: tests/integration/test_promotion.py)
    assert retrain_main(["--path", str(written_lake), "--quick", "--device", "cpu"]) == 1
    second = capsys.readouterr().out
    assert "not promoted, the champion stays: refused" in second, second
    candidate = client.get_model_version_by_alias(name, "candidate").version
    assert candidate != champion  # registered ...
    assert client.get_model_version_by_alias(name, "champion").version == champion  # ... and refused
