"""Contract: generated events parse through Spark's `from_json` with the derived schema, no nulls."""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from core.events import HistoricalLoan, LoanApplication
from generator.applications import ApplicationGenerator
from generator.history import synthetic_history
from kafka_producer.encode import json_lines
from sparky.schema import HISTORICAL_LOAN, LOAN_APPLICATION, required_fields


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
