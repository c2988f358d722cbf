"""Writing to Kafka: records of a stream (`core.streams`) as keyed JSON messages, streaming or per batch.

A message's value is the stream's record as JSON (Spark's writer, null fields left out), its key the
record's key fields joined by `|`. Column expressions are built once and reused from batch to batch:
on a small machine each expression the driver builds is a round trip into the JVM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from core.settings import KafkaSettings, SparkJobSettings, TopicSettings
from core.streams import Stream

Trigger = Mapping[str, str]  # DataStreamWriter.trigger keywords, e.g. {"processingTime": "5 seconds"}


def message(stream: Stream, record: Sequence[Column]) -> tuple[Column, Column]:
    """`(key, value)` of the record built from `record` (columns named after its fields)."""
    row = F.struct(*record)
    key = F.concat_ws("|", *(row[k].cast("string") for k in stream.key))
    return key, F.to_json(row)


def kafka_columns(stream: Stream, topics: TopicSettings) -> list[Column]:
    """`key`, `value` and `topic` of a DataFrame whose columns include the stream's record fields."""
    key, value = message(stream, [F.col(name) for name in stream.fields])
    return [key.alias("key"), value.alias("value"), F.lit(stream.topic(topics)).alias("topic")]


@contextmanager
def pool(df: DataFrame, name: str) -> Iterator[None]:
    """Queries started inside run their jobs in scheduler pool `name` (sparky/fairscheduler.xml):
    a streaming query keeps the pool of the thread that started it."""
    context = df.sparkSession.sparkContext
    context.setLocalProperty("spark.scheduler.pool", name)
    try:
        yield
    finally:
        context.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]


def start_kafka(
    df: DataFrame,
    name: str,
    kafka: KafkaSettings,
    job: SparkJobSettings,
    trigger: Trigger,
    options: Mapping[str, str] | None = None,
) -> StreamingQuery:
    """A streaming query `name` writing `df` (`key`, `value`, `topic` per row) to Kafka in update mode,
    checkpointed under checkpoint_dir/name, in scheduler pool `name`."""
    with pool(df, name):
        writer = (
            df.writeStream.queryName(name)
            .format("kafka")
            .outputMode("update")
            .options(**kafka.spark_options())
            .option("kafka.enable.idempotence", "true")
            .option("kafka.acks", "all")
            .option("checkpointLocation", job.location(name))
            .options(**(options or {}))
        )
        return writer.trigger(**trigger).start()


def start_batches(
    df: DataFrame,
    name: str,
    handle: Callable[[DataFrame, int], None],
    job: SparkJobSettings,
    trigger: Trigger,
    mode: str = "append",
) -> StreamingQuery:
    """A streaming query `name` that hands each micro-batch to `handle(batch, batch_id)`, in scheduler
    pool `name`."""
    with pool(df, name):
        writer = (
            df.writeStream.queryName(name)
            .outputMode(mode)
            .foreachBatch(handle)
            .option("checkpointLocation", job.location(name))
        )
        return writer.trigger(**trigger).start()
