"""Kafka input and validation: every message is either a valid event or a dead letter with a reason.

Validation is derived from the pydantic contract (no rule is written twice): required fields,
types (a present value that `from_json` could not convert), enums, numeric bounds and patterns
from the model's `Field(...)` constraints, plus an empty value and an oversized payload.
Valid rows are parsed once; a row is re-read as a string map only when something is wrong, to name it.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable
from enum import StrEnum
from functools import reduce
from typing import get_args, get_type_hints

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from core.settings import KafkaSettings, SparkJobSettings
from sparky.schema import required_fields, spark_type, to_struct_type

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
PAYLOAD_KEEP = 20_000  # characters of an invalid payload kept in the dead letter


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


def _enum_values(tp: object) -> list[str] | None:
    for candidate in (tp, *get_args(tp)):
        if isinstance(candidate, type) and issubclass(candidate, StrEnum):
            return [e.value for e in candidate]
    return None


def _type_checks(model: type[BaseModel], event: Column, raw: Column) -> list[Column]:
    """Missing required fields and present values of the wrong type (needs the raw string map)."""
    hints = get_type_hints(model)
    checks: list[Column] = []
    for name, field in model.model_fields.items():
        value, given = event[name], raw[name]
        expected = spark_type(hints[name]).simpleString()
        if field.is_required():
            checks.append(F.when(given.isNull(), F.lit(f"missing required field {name}")))
        checks.append(
            F.when(
                given.isNotNull() & value.isNull(),
                F.concat(F.lit(f"field {name}: expected {expected}, got "), F.to_json(F.array(given))),
            )
        )
    return checks


def _value_checks(model: type[BaseModel], event: Column) -> list[Column]:
    """Enums, bounds and patterns of the parsed values; null when the rule holds (or no value)."""
    hints = get_type_hints(model)
    checks: list[Column] = []
    for name, field in model.model_fields.items():
        value = event[name]
        if (allowed := _enum_values(hints[name])) is not None:
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
        self.reason = _reason(model, job).alias("reason")

    def __call__(self, raw: DataFrame) -> DataFrame:
        return raw.select(*self.columns).select("*", self.ok)

    def dead_letters(self, parsed: DataFrame) -> DataFrame:
        """Dead-letter records of the rows that failed: source coordinates, reason, the payload (cut
        at PAYLOAD_KEEP characters)."""
        return (
            parsed.where(~F.col("ok"))
            .select("*", self.reason)
            .select(
                "key",
                "source_topic",
                "source_partition",
                "source_offset",
                "reason",
                F.substring("payload", 1, PAYLOAD_KEEP).alias("payload"),
                "payload_bytes",
                F.current_timestamp().alias("failed_at"),
            )
        )


def _reason(model: type[BaseModel], job: SparkJobSettings) -> Column:
    """What is wrong with a row that failed the cheap test: size, JSON, then each field."""
    as_map = F.from_json(F.col("payload"), "map<string,string>")
    return (
        F.when(F.col("payload_bytes") == 0, F.lit("empty value"))
        .when(
            F.col("payload_bytes") > job.max_message_bytes,
            F.concat(
                F.lit("payload of "),
                F.col("payload_bytes").cast("string"),
                F.lit(f" bytes exceeds LOANS_SPARK_MAX_MESSAGE_BYTES={job.max_message_bytes}"),
            ),
        )
        .when(as_map.isNull(), F.lit("not a JSON object"))
        .otherwise(
            F.coalesce(
                F.nullif(
                    F.concat_ws(
                        "; ",
                        *_type_checks(model, F.col("event"), as_map),
                        *_value_checks(model, F.col("event")),
                    ),
                    F.lit(""),
                ),
                F.lit("malformed record"),
            )
        )
    )


def parse(
    raw: DataFrame, model: type[BaseModel], job: SparkJobSettings, schema: StructType | None = None
) -> DataFrame:
    """`Parser(model, job, schema)(raw)`, for one-off use (streams and tests)."""
    return Parser(model, job, schema)(raw)


def valid_events(parsed: DataFrame) -> DataFrame:
    """The events that passed validation, as flat columns of the model."""
    return parsed.where(F.col("ok")).select("event.*").drop(CORRUPT)
