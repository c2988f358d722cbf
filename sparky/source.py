"""Kafka input and validation: every message is either a valid event or a dead letter with a reason.

Validation is derived from the pydantic contract (no rule is written twice): required fields,
enums, numeric bounds and patterns from the model's `Field(...)` constraints, plus an empty value
and an oversized payload, as one cheap per-row test (`ok`). Valid rows are parsed once; only the
rows that fail are explained, by the contract itself in a Python worker (`sparky.reasons`).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Iterator
from functools import reduce
from typing import get_type_hints

import pandas as pd
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from core.settings import KafkaSettings, SparkJobSettings
from sparky.reasons import explain
from sparky.schema import enum_values, required_fields, to_struct_type

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
PAYLOAD_KEEP = 20_000  # characters of an invalid payload kept in the dead letter
DEAD_LETTER_INPUT = ("key", "source_topic", "source_partition", "source_offset", "payload", "payload_bytes")
DEAD_LETTER_COLUMNS = (*DEAD_LETTER_INPUT[:4], "reason", "payload", "payload_bytes", "failed_at")
DEAD_LETTER_SCHEMA = (
    "key string, source_topic string, source_partition int, source_offset long, payload string, "
    "payload_bytes int, reason string"
)


def read_kafka(
    spark: SparkSession, kafka: KafkaSettings, topics: list[str], job: SparkJobSettings
) -> DataFrame:
    """A streaming DataFrame of the raw Kafka records of `topics` (key, value, topic, partition, offset)."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", job.starting_offsets)
        .option("maxOffsetsPerTrigger", job.max_offsets_per_trigger)
        .option("failOnDataLoss", "false")
        .load()
    )


def _value_checks(model: type[BaseModel], event: Column) -> list[Column]:
    """Enums, bounds and patterns of the parsed values; null when the rule holds (or no value)."""
    hints = get_type_hints(model)
    checks: list[Column] = []
    for name, field in model.model_fields.items():
        value = event[name]
        if (allowed := enum_values(hints[name])) is not None:
            checks.append(
                F.when(
                    ~value.isin(allowed),
                    F.concat(F.lit(f"field {name}: "), value, F.lit(f" is not one of {', '.join(allowed)}")),
                )
            )
        for rule in field.metadata:
            bound = next((getattr(rule, a) for a in ("ge", "gt", "le", "lt") if hasattr(rule, a)), None)
            failed = {
                Ge: value < F.lit(bound),
                Gt: value <= F.lit(bound),
                Le: value > F.lit(bound),
                Lt: value >= F.lit(bound),
            }.get(type(rule))
            if failed is not None:
                checks.append(
                    F.when(
                        failed,
                        F.concat(
                            F.lit(f"field {name}="),
                            value.cast("string"),
                            F.lit(f" is out of range ({type(rule).__name__.lower()} {bound})"),
                        ),
                    )
                )
            elif pattern := getattr(rule, "pattern", None):
                checks.append(
                    F.when(
                        ~value.rlike(pattern),
                        F.concat(F.lit(f"field {name}="), value, F.lit(f" does not match {pattern}")),
                    )
                )
    return checks


def _all(conditions: Iterable[Column]) -> Column:
    """The AND of `conditions` (true when there are none)."""
    return reduce(operator.and_, conditions, F.lit(True))


class Parser:
    """Raw Kafka rows -> `event` (struct of the model), `ok` (passed validation) and the source
    coordinates. The column expressions are built once (hundreds of calls into the JVM), and only
    the cheap test runs on every row: the expression that names what is wrong is planned and run
    only on rows that failed it (`dead_letters`), so a clean micro-batch never pays for it."""

    def __init__(self, model: type[BaseModel], job: SparkJobSettings, schema: StructType | None = None):
        schema = StructType([*(schema or to_struct_type(model)).fields, StructField(CORRUPT, StringType())])
        text = F.col("value").cast("string")
        size = F.coalesce(F.length(F.col("value")), F.lit(0))
        event = F.col("event")
        stored = F.col("payload_bytes")
        clean = (
            (stored > 0)
            & (stored <= job.max_message_bytes)
            & event[CORRUPT].isNull()
            & _all(event[name].isNotNull() for name in required_fields(model))
            & _all(check.isNull() for check in _value_checks(model, event))
        )
        self.columns = [
            F.col("key").cast("string").alias("key"),
            text.alias("payload"),
            size.alias("payload_bytes"),
            F.col("topic").alias("source_topic"),
            F.col("partition").alias("source_partition"),
            F.col("offset").alias("source_offset"),
            F.from_json(text, schema, {"columnNameOfCorruptRecord": CORRUPT}).alias("event"),
        ]
        self.ok = F.coalesce(clean, F.lit(False)).alias("ok")
        self.model, self.max_bytes = model, job.max_message_bytes

    def __call__(self, raw: DataFrame) -> DataFrame:
        return raw.select(*self.columns).select("*", self.ok)

    def dead_letters(self, parsed: DataFrame) -> DataFrame:
        """Dead-letter records of the rows that failed: source coordinates, reason, the payload (cut
        at PAYLOAD_KEEP characters). Reasons are worked out in Python from the contract (see
        `sparky.reasons`), only for these rows."""
        model, max_bytes = self.model, self.max_bytes

        def explained(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for frame in frames:
                reasons = [
                    explain(model, payload, size, max_bytes)
                    for payload, size in zip(frame["payload"], frame["payload_bytes"], strict=True)
                ]
                yield frame.assign(reason=reasons, payload=frame["payload"].str.slice(0, PAYLOAD_KEEP))

        kept = F.when(F.col("payload_bytes") <= max_bytes, F.col("payload")).otherwise(
            F.substring("payload", 1, PAYLOAD_KEEP)
        )
        rows = (
            parsed.where(~F.col("ok"))
            .select(*DEAD_LETTER_INPUT[:-2], kept.alias("payload"), "payload_bytes")
            .coalesce(1)  # few rows: one Python task, not one per partition
        )
        return rows.mapInPandas(explained, DEAD_LETTER_SCHEMA).withColumn("failed_at", F.current_timestamp())


def parse(
    raw: DataFrame, model: type[BaseModel], job: SparkJobSettings, schema: StructType | None = None
) -> DataFrame:
    """`Parser(model, job, schema)(raw)`, for one-off use (streams and tests)."""
    return Parser(model, job, schema)(raw)


def valid_events(parsed: DataFrame) -> DataFrame:
    """The events that passed validation, as flat columns of the model."""
    return parsed.where(F.col("ok")).select("event.*").drop(CORRUPT)
