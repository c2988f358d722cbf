"""Writing to Kafka: one way to turn rows into keyed JSON messages, streaming or per batch.

Column expressions are built once and reused from batch to batch (`kafka_columns`): on a small
machine each expression the driver builds is a round trip into the JVM, and a micro-batch handler
that rebuilds its projections pays for them on every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from core.settings import KafkaSettings, SparkJobSettings


def kafka_columns(columns: Sequence[str], key: Sequence[str], topic: str | None = None) -> list[Column]:
    """`key` (the key columns joined by `|`), `value` (the named columns as a JSON object) and, when
    given, `topic`: the columns the Kafka sink reads, as reusable expressions."""
    out = [
        F.concat_ws("|", *(F.col(k).cast("string") for k in key)).alias("key"),
        F.to_json(F.struct(*columns)).alias("value"),
    ]
    return [*out, F.lit(topic).alias("topic")] if topic is not None else out


def kafka_frame(df: DataFrame, key: Sequence[str]) -> DataFrame:
    """`key` and `value` (the whole row as JSON) of `df`, for the Kafka sink."""
    return df.select(*kafka_columns(df.columns, key))


def write_frames(frames: Sequence[DataFrame], kafka: KafkaSettings) -> None:
    """Write batch DataFrames of `key`, `value`, `topic` to Kafka in ONE Spark job (the sink reads
    each row's topic), so outputs of one cached micro-batch share one scan of it."""
    (
        reduce(DataFrame.union, frames)
        .write.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
        .option("kafka.enable.idempotence", "true")
        .option("kafka.acks", "all")
        .save()
    )


@contextmanager
def pool(df: DataFrame, name: str) -> Iterator[None]:
    """Queries started inside run their jobs in scheduler pool `name` (infra/spark/fairscheduler.xml):
    a streaming query keeps the pool of the thread that started it."""
    context = df.sparkSession.sparkContext
    context.setLocalProperty("spark.scheduler.pool", name)
    try:
        yield
    finally:
        context.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]


def start_kafka_sink(
    df: DataFrame,
    name: str,
    topic: str,
    key: Sequence[str],
    mode: str,
    kafka: KafkaSettings,
    job: SparkJobSettings,
) -> StreamingQuery:
    """A streaming query `name` writing `df` to `topic`, checkpointed under checkpoint_dir/name, in
    scheduler pool `name`."""
    with pool(df, name):
        return (
            kafka_frame(df, key)
            .writeStream.queryName(name)
            .format("kafka")
            .outputMode(mode)
            .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
            .option("topic", topic)
            .option("checkpointLocation", str(Path(job.checkpoint_dir) / name))
            .trigger(processingTime=job.trigger)
            .start()
        )


def start_batch_sink(
    df: DataFrame, name: str, handle: Callable[[DataFrame, int], None], job: SparkJobSettings
) -> StreamingQuery:
    """A streaming query `name` that hands each micro-batch to `handle(batch, batch_id)`, in scheduler
    pool `name`."""
    with pool(df, name):
        return (
            df.writeStream.queryName(name)
            .foreachBatch(handle)
            .option("checkpointLocation", str(Path(job.checkpoint_dir) / name))
            .trigger(processingTime=job.trigger)
            .start()
        )
