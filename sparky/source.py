"""Kafka input and validation: every message is either a valid event or a dead letter with a reason.

Validation is derived from the pydantic contract (no rule is written twice): required fields,
enums, numeric bounds and patterns from the model's `Field(...)` constraints, plus an empty value,
an oversized payload and bytes that are not UTF-8, as one cheap per-row test (`ok`). Valid rows
are parsed once; only the rows that fail are explained, by the contract itself in a Python worker
(`sparky.reasons`). Dead letters carry the message's raw bytes to Python as binary (never as a
string: bytes that are not UTF-8 cannot cross into Arrow as text), and out as escaped text plus,
when they are not UTF-8, base64.
"""

from __future__ import annotations

import logging
import operator
import re
from collections.abc import Iterable, Iterator
from functools import reduce
from typing import Any, get_type_hints

import pandas as pd
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    FloatType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from core.records import DeadLetter
from core.settings import KafkaSettings, SparkJobSettings
from sparky.reasons import KEY_MAX_BYTES, dead_letter
from sparky.schema import enum_values, required_fields, spark_type, to_struct_type, typed

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
PAYLOAD_KEEP = 20_000  # bytes of an invalid payload kept in the dead letter
DEAD_LETTER_INPUT = (
    "key",
    "key_bytes",
    "source_topic",
    "source_partition",
    "source_offset",
    "raw",
    "payload_bytes",
)
# what the Python half of a dead letter gives: the contract's fields but the time it failed at
DEAD_LETTER_SCHEMA = StructType(
    [StructField(f.name, f.dataType) for f in to_struct_type(DeadLetter).fields if f.name != "failed_at"]
)


def read_kafka(
    spark: SparkSession,
    kafka: KafkaSettings,
    topics: list[str],
    job: SparkJobSettings,
    starting_offsets: str | None = None,
    realtime: bool = False,
) -> DataFrame:
    """A streaming DataFrame of the raw Kafka records of `topics` (key, value, topic, partition,
    offset), from `starting_offsets` (default `job.starting_offsets`) when its checkpoint is new. A
    real-time query reads as records come, so it takes no `maxOffsetsPerTrigger`."""
    reader = (
        spark.readStream.format("kafka")
        .options(**kafka.spark_options())
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", starting_offsets or job.starting_offsets)
        .option("failOnDataLoss", str(job.fail_on_data_loss).lower())
        .option("kafka.isolation.level", "read_committed")  # the job's own outputs are transactional
        .option("groupIdPrefix", f"{kafka.prefix}-source")  # under its principal's own group prefix
    )
    if not realtime:
        reader = reader.option("maxOffsetsPerTrigger", job.max_offsets_per_trigger)
    return reader.load()


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
                        ~value.rlike(_java(pattern)),
                        F.concat(F.lit(f"field {name}="), value, F.lit(f" does not match {pattern}")),
                    )
                )
    return checks


DATE_TEXT = '\\d{4}-\\d\\d-\\d\\d"'  # the whole JSON string (core.events.ISO_DATE)
TIME_TEXT = "\\d{4}-\\d\\d-\\d\\d[Tt ]\\d\\d:\\d\\d"  # how it starts (core.events.ISO_TIME)


def _hostile(model: type[BaseModel], event: Column, text: Column, job: SparkJobSettings) -> list[Column]:
    """What `from_json` lets through but the contract refuses; true when the row is bad: NaN or
    infinite numbers; an object, array, number, NaN or boolean where the contract has a string, a date or
    a time (Spark keeps its JSON text, or reads a number as epoch seconds); for a model with
    TIME_CHECKED, an event_time beyond LOANS_SPARK_MAX_FUTURE (from the micro-batch's time) or
    before LOANS_SPARK_OLDEST_EVENT."""
    hints = get_type_hints(model)
    types = {name: spark_type(hints[name]) for name in model.model_fields}
    bad = [
        F.isnan(event[name]) | (F.abs(event[name]) == F.lit(float("inf")))
        for name, tp in types.items()
        if isinstance(tp, (DoubleType, FloatType))
    ]
    texts = (StringType, DateType, TimestampType)  # JSON strings in the contract
    if strings := [re.escape(name) for name, tp in types.items() if isinstance(tp, texts)]:
        bad.append(text.rlike(f'"({"|".join(strings)})"\\s*:\\s*[\\[{{tfNI0-9-]'))
    for name, tp in types.items():  # a date or time as JSON text, in the contract's own format
        shapes: dict[type, str] = {DateType: DATE_TEXT, TimestampType: TIME_TEXT}
        shape = shapes.get(type(tp))
        if shape is not None:
            key = f'"{re.escape(name)}"\\s*:\\s*"'
            bad.append(text.rlike(key) & ~text.rlike(key + shape))
    if getattr(model, "TIME_CHECKED", False):
        when = event["event_time"]
        bad.append(when > F.expr(f"current_timestamp() + INTERVAL {job.max_future}"))
        bad.append(when < F.lit(job.oldest_event))
    return bad


def _java(pattern: str) -> str:
    """`pattern` as the contract (pydantic, Rust regex) means it, for Java: `$` is the very end
    (Java's `$` also matches before a final newline)."""
    return pattern[:-1] + "\\z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern


def _all(conditions: Iterable[Column]) -> Column:
    """The AND of `conditions` (true when there are none)."""
    return reduce(operator.and_, conditions, F.lit(True))


def _any(conditions: Iterable[Column]) -> Column:
    """The OR of `conditions`, nulls as false (false when there are none)."""
    return reduce(operator.or_, (F.coalesce(c, F.lit(False)) for c in conditions), F.lit(False))


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
        stored, key, key_bytes = F.col("payload_bytes"), F.col("key"), F.col("key_bytes")
        key_ok = key.isNull() | (
            (key_bytes <= KEY_MAX_BYTES)
            & F.is_valid_utf8(key)
            & ~key.cast("string").rlike("[\\x00-\\x1f\\x7f]")
        )
        clean = (
            key_ok
            & (stored > 0)
            & (stored <= job.max_message_bytes)
            & F.is_valid_utf8(F.col("payload"))
            & event[CORRUPT].isNull()
            & _all(event[name].isNotNull() for name in required_fields(model))
            & _all(check.isNull() for check in _value_checks(model, event))
            & ~_any(_hostile(model, event, F.col("payload"), job))
        )
        self.columns = [
            F.substring(F.col("key"), 1, KEY_MAX_BYTES).alias("key"),  # cut: a hostile key travels on
            F.octet_length(F.col("key")).alias("key_bytes"),
            F.col("value").alias("raw"),
            text.alias("payload"),
            size.alias("payload_bytes"),
            F.col("topic").alias("source_topic"),
            F.col("partition").alias("source_partition"),
            F.col("offset").alias("source_offset"),
            F.from_json(text, schema, {"columnNameOfCorruptRecord": CORRUPT}).alias("event"),
        ]
        self.ok = F.coalesce(clean, F.lit(False)).alias("ok")
        self.model, self.max_bytes, self.context = model, job.max_message_bytes, job.time_bounds()

    def __call__(self, raw: DataFrame) -> DataFrame:
        return raw.select(*self.columns).select("*", self.ok)

    def dead_letters(self, parsed: DataFrame) -> DataFrame:
        """Dead-letter records (DeadLetter) of the rows that failed: source coordinates, reason, the
        payload (cut at PAYLOAD_KEEP bytes). Reasons are worked out in Python from the contract (see
        `sparky.reasons`), only for these rows."""
        model, max_bytes, context = self.model, self.max_bytes, self.context

        def explained(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for frame in frames:
                rows = zip(
                    frame["key"], frame["key_bytes"], frame["raw"], frame["payload_bytes"], strict=True
                )
                letters = [
                    dead_letter(model, k, raw, int(n), max_bytes, PAYLOAD_KEEP, context, _int(kn))
                    for k, kn, raw, n in rows
                ]
                out = pd.DataFrame(letters, columns=["key", "reason", "payload", "payload_base64"])
                for column in (
                    "key_bytes",
                    "source_topic",
                    "source_partition",
                    "source_offset",
                    "payload_bytes",
                ):
                    out[column] = frame[column].to_numpy()
                yield out

        kept = F.when(F.col("payload_bytes") <= max_bytes, F.col("raw")).otherwise(
            F.substring("raw", 1, PAYLOAD_KEEP)
        )
        rows = (
            parsed.where(~F.col("ok"))
            .select(*DEAD_LETTER_INPUT[:5], kept.alias("raw"), "payload_bytes")
            .coalesce(1)  # few rows: one Python task, not one per partition
        )
        return rows.mapInPandas(explained, DEAD_LETTER_SCHEMA).select(
            *typed(DeadLetter, {"failed_at": F.current_timestamp()})
        )


def _int(value: Any) -> int | None:
    """A nullable integer column's value from pandas (NaN or None when null)."""
    return None if value is None or pd.isna(value) else int(value)


def parse(
    raw: DataFrame, model: type[BaseModel], job: SparkJobSettings, schema: StructType | None = None
) -> DataFrame:
    """`Parser(model, job, schema)(raw)`, for one-off use (streams and tests)."""
    return Parser(model, job, schema)(raw)


PROVENANCE = ("source_key", "source_partition", "source_offset", "payload", "payload_bytes")


def valid_events(parsed: DataFrame, provenance: bool = False) -> DataFrame:
    """The events that passed validation, as flat columns of the model; with `provenance`, also
    where each came from and its message (PROVENANCE columns), for a dead letter found later."""
    where = [F.col("key").alias("source_key"), *map(F.col, PROVENANCE[1:])] if provenance else []
    return parsed.where(F.col("ok")).select("event.*", *where).drop(CORRUPT)
