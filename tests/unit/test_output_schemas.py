"""Each output stream's record, as the job builds it, has its contract's schema (`core.records`),
derived by `sparky.schema`: the same field names in the same order and the same types (nullability
aside: Spark infers it from the expressions). scores is checked where a model runs in Spark
(tests/integration/test_parity.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StructType

from core.events import LoanApplication
from core.records import DeadLetter
from core.streams import BY_NAME
from sparky.analyses import fraud, risk, windows
from sparky.queries import WINDOWED
from sparky.schema import to_struct_type
from sparky.source import PROVENANCE, Parser, valid_events
from tests.unit.test_analyses import DEFAULTS, JOB, event, frame


def shape(struct: DataType) -> list[tuple[str, str]]:
    """Field names and types, nullability aside."""
    assert isinstance(struct, StructType)
    return [(f.name, f.dataType.simpleString()) for f in struct.fields]


def built(rows: DataFrame, columns: list[Any]) -> list[tuple[str, str]]:
    return shape(rows.select(F.struct(*columns).alias("record")).schema["record"].dataType)


def contract(stream: str) -> list[tuple[str, str]]:
    return shape(to_struct_type(BY_NAME[stream].record))


def raw(spark: SparkSession, *values: bytes) -> DataFrame:
    rows = [(b"k", v, "loan.applications", 0, i) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, "key binary, value binary, topic string, partition int, offset long")


def test_risk(spark: SparkSession) -> None:
    assert built(frame(spark, event()), risk.columns(JOB)) == contract("risk")


@pytest.mark.parametrize("dimension", WINDOWED, ids=lambda d: d.stream)
def test_each_windowed_stream(spark: SparkSession, dimension: windows.Dimension) -> None:
    aggregated = windows.build(frame(spark, event(), event()), JOB, WINDOWED)
    rows = aggregated.where(F.col("stream") == dimension.stream)
    assert built(rows, dimension.record()) == contract(dimension.stream)


def test_fraud_and_its_duplicate_letters(spark: SparkSession) -> None:
    payload = LoanApplication.model_validate({"application_id": "app-1", **DEFAULTS}).model_dump_json()
    parsed = Parser(LoanApplication, JOB)(raw(spark, payload.encode(), payload.encode()))
    rows = fraud.wide(fraud.signals(valid_events(parsed, provenance=True), JOB))
    assert built(rows, fraud.flagging(JOB).outputs) == contract("fraud")
    letters = fraud.duplicate_letters("loan.applications", JOB.dedup_horizon, 20_000)
    assert built(rows, letters) == contract("dlq")


def test_dead_letters_of_the_parser(spark: SparkSession) -> None:
    parser = Parser(LoanApplication, JOB)
    letters = parser.dead_letters(parser(raw(spark, b"{not json", b"\xff")))
    assert shape(letters.schema) == contract("dlq")
    assert letters.count() == 2


def test_provenance_is_what_a_later_dead_letter_needs() -> None:
    assert set(PROVENANCE) - {"source_key"} <= set(DeadLetter.model_fields)
