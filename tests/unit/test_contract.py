"""Contract: generated events parse through Spark's `from_json` with the derived schema, no nulls."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from core.events import ApplicationTruth, HistoricalLoan, LoanApplication
from core.settings import SparkJobSettings
from generator.applications import ApplicationGenerator
from generator.history import synthetic_history
from kafka_producer.encode import json_lines
from sparky.schema import HISTORICAL_LOAN, LOAN_APPLICATION, required_fields
from sparky.source import Parser

NOW = datetime.now(UTC)


def _parse(spark: SparkSession, lines: list[bytes], schema: object) -> list:
    frame = spark.createDataFrame([(line.decode(),) for line in lines], "value string")
    return frame.select(F.from_json("value", schema).alias("e")).select("e.*").collect()  # type: ignore[arg-type]


def test_applications_round_trip_through_from_json(spark: SparkSession) -> None:
    batch = ApplicationGenerator(seed=11, customers=1_000).batch(400, datetime(2026, 3, 1, tzinfo=UTC), 0.5)
    lines = json_lines(batch.applications)
    rows = _parse(spark, lines, LOAN_APPLICATION)
    assert len(rows) == 400
    for name in required_fields(LoanApplication):
        assert all(row[name] is not None for row in rows), name
    first = LoanApplication.model_validate_json(lines[0])
    assert rows[0]["event_time"] == first.event_time.replace(tzinfo=None)
    assert rows[0]["earliest_cr_line"] == first.earliest_cr_line
    assert rows[0]["int_rate"] == first.int_rate


def test_history_round_trips_through_from_json(spark: SparkSession) -> None:
    lines = json_lines(synthetic_history(seed=5, n=300))
    rows = _parse(spark, lines, HISTORICAL_LOAN)
    for name in required_fields(HistoricalLoan):
        assert all(row[name] is not None for row in rows), name
    assert rows[0]["issue_d"] == HistoricalLoan.model_validate_json(lines[0]).issue_d


HOSTILE_IDS = ["", "a" * 65, "app 1", "app\n1", "app-1\u202e", "ａｐｐ", "../app", "app\x00"]


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=repr)
def test_a_hostile_application_id_is_refused_by_the_contract(bad: str) -> None:
    """An application_id is a key in Kafka, state stores, the lake and every output: 1 to 64 of
    [A-Za-z0-9._:-], starting with a letter or digit; anything else is refused (a dead letter)."""
    good = json.loads(json_lines(ApplicationGenerator(seed=3).batch(1, datetime.now(UTC)).applications)[0])
    LoanApplication.model_validate(good)
    with pytest.raises(ValidationError, match="application_id"):
        LoanApplication.model_validate(good | {"application_id": bad})
    with pytest.raises(ValidationError, match="application_id"):
        ApplicationTruth.model_validate(
            {"application_id": bad, "event_time": NOW, "is_fraud": False, "will_default": False}
        )


def test_spark_sends_a_hostile_application_id_to_the_dead_letters(spark: SparkSession) -> None:
    good = json.loads(json_lines(ApplicationGenerator(seed=3).batch(1, datetime.now(UTC)).applications)[0])
    payloads = [json.dumps(good | {"application_id": bad}).encode() for bad in HOSTILE_IDS] + [
        json.dumps(good).encode()
    ]
    rows = [(None, p, "t", 0, i) for i, p in enumerate(payloads)]
    raw = spark.createDataFrame(rows, "key binary, value binary, topic string, partition int, offset long")
    ok = [r.ok for r in Parser(LoanApplication, SparkJobSettings())(raw).orderBy("source_offset").collect()]
    assert ok == [False] * len(HOSTILE_IDS) + [True]
