"""Writing to Kafka: one way to turn a DataFrame into keyed JSON messages, streaming or per batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from core.settings import KafkaSettings, SparkJobSettings


def kafka_frame(df: DataFrame, key: Sequence[str]) -> DataFrame:
    """`key` (the key columns joined by `|`) and `value` (the row as JSON) for the Kafka sink."""
    return df.select(
        F.concat_ws("|", *(F.col(k).cast("string") for k in key)).alias("key"),
        F.to_json(F.struct(*df.columns)).alias("value"),
    )


def write_kafka(df: DataFrame, topic: str, key: Sequence[str], kafka: KafkaSettings) -> None:
    """Write a batch DataFrame (e.g. one micro-batch) to `topic`."""
    (
        kafka_frame(df, key)
        .write.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
        .option("kafka.enable.idempotence", "true")
        .option("kafka.acks", "all")
        .option("topic", topic)
        .save()
    )


def start_kafka_sink(
    df: DataFrame,
    name: str,
    topic: str,
    key: Sequence[str],
    mode: str,
    kafka: KafkaSettings,
    job: SparkJobSettings,
) -> StreamingQuery:
    """A streaming query `name` writing `df` to `topic`, checkpointed under checkpoint_dir/name."""
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
    """A streaming query `name` that hands each micro-batch to `handle(batch, batch_id)`."""
    return (
        df.writeStream.queryName(name)
        .foreachBatch(handle)
        .option("checkpointLocation", str(Path(job.checkpoint_dir) / name))
        .trigger(processingTime=job.trigger)
        .start()
    )
