"""Exactly-once Kafka outputs for read_committed consumers: each micro-batch in one Kafka transaction.

Spark's Kafka sink is at-least-once: a micro-batch replayed after a crash is written again. A
micro-batch query (foreachBatch) writes through `TransactionalSink` instead:
- one stable `transactional.id` per query and checkpoint (`<prefix>.<query>.<writer id>`; the id is
  kept in the query's checkpoint folder (`sparky.session.stable_id`), so a restart on the same
  checkpoint reuses it, a new checkpoint gets a new one);
- the batch's records and a marker `{query, batch_id, records}` on the commits topic are committed
  in ONE transaction, so a read_committed consumer sees all of a batch or none of it;
- on start the producer fences any earlier instance of the same query (Kafka aborts its open
  transaction) and reads the query's last committed marker back; a replayed batch at or below it
  is skipped (Spark replays a batch with the same offsets, so skipping it loses nothing).
The records are collected to the driver as Arrow and produced by confluent-kafka: a micro-batch of
this job is thousands of small records, not millions.

The real-time query (risk and scores) has no micro-batches to commit: `start_rows` writes it through
the JVM writer `loanstream.TransactionalRows` (sparky/jvm), which commits every
LOANS_SPARK_REALTIME_COMMIT_MS the records and the input offsets they came from, per output, in one
transaction, and skips input below them; `resume` starts it from those offsets.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial, reduce
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from pyspark.sql import DataFrame
from pyspark.sql.streaming import StreamingQuery

from core.settings import KafkaSettings, SparkJobSettings
from sparky.session import remove
from sparky.sink import pool

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransactionalSink:
    """Writes a query's micro-batches (`key`, `value`, `topic` rows) exactly once."""

    def __init__(self, kafka: KafkaSettings, commits: str, query: str, writer_id: str) -> None:
        self.kafka, self.commits, self.query = kafka, commits, query
        self.marker_key = f"{query}.{writer_id}"
        self.producer = Producer(
            kafka.producer_config(
                f"{query}-tx",
                {
                    "transactional.id": transactional_id(kafka, self.marker_key),
                    "transaction.timeout.ms": 60_000,
                    "linger.ms": 5,
                },
            )
        )
        self.producer.init_transactions(60)  # fences an earlier instance; its open transaction aborts
        self.last = last_committed(kafka, commits, self.marker_key)
        log.info(
            "%s: transactional writes as %s; last committed micro-batch %s",
            query, self.marker_key, "none" if self.last is None else self.last,
        )  # fmt: skip

    def write(self, frames: Sequence[DataFrame], batch_id: int) -> int:
        """Write `frames` and the marker of `batch_id` in one transaction; return the records written
        (0 for a replay of a committed batch, which is skipped: its plan still runs, to Spark's noop
        sink, so a stateful query's state stores commit the batch as Spark requires)."""
        batch = reduce(DataFrame.union, frames)
        if self.last is not None and batch_id <= self.last:
            log.info(
                "%s: micro-batch %d was committed before (last %d): skipped", self.query, batch_id, self.last
            )
            batch.write.format("noop").mode("overwrite").save()
            return 0
        table = batch.toArrow()
        keys, values, topics = (table.column(c).to_pylist() for c in ("key", "value", "topic"))
        marker = {"query": self.query, "batch_id": batch_id, "records": len(keys)}
        self.producer.begin_transaction()
        try:
            for key, value, topic in zip(keys, values, topics, strict=True):
                self.produce(topic, value, key)
            self.produce(self.commits, json.dumps(marker), self.marker_key)
            self.producer.commit_transaction(60)
        except BaseException:
            self.abort()
            raise
        self.last = batch_id
        return len(keys)

    def produce(self, topic: str, value: str | None, key: str | None) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key)
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self.producer.poll(0.1)

    def abort(self) -> None:
        try:
            self.producer.abort_transaction(30)
        except KafkaException as exc:  # the next instance's init_transactions aborts it anyway
            log.warning("%s: could not abort the open transaction: %s", self.query, exc)


def transactional_id(kafka: KafkaSettings, marker_key: str) -> str:
    """The transactional id of a micro-batch query's writer (`marker_key`: `<query>.<writer id>`)."""
    return f"{kafka.prefix}.{marker_key}"


def last_committed(kafka: KafkaSettings, commits: str, marker_key: str, timeout_s: float = 60) -> int | None:
    """The highest batch_id committed under `marker_key` on the commits topic (read_committed), or
    None when there is none."""
    # the group is never joined (assign), but librdkafka looks its coordinator up: keep it under the
    # client id, where the job's principal may use groups (stack.acl)
    group = f"{kafka.prefix}-{marker_key}-recover"
    consumer = Consumer(kafka.consumer_config(group, {"enable.auto.commit": False}))
    try:
        meta = consumer.list_topics(commits, timeout=10).topics[commits]
        if meta.error is not None:
            raise KafkaException(meta.error)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(commits, p), timeout=10)[1]
            for p in meta.partitions
        }
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(commits, p, 0) for p in todo])
        last, deadline = None, time.monotonic() + timeout_s
        while todo and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                if (error := m.error()) is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(error)
                    continue
                if m.key() == marker_key.encode():
                    last = max(last or -1, int(json.loads(m.value() or b"{}")["batch_id"]))
            todo = {p for p in todo if consumer.position([TopicPartition(commits, p)])[0].offset < ends[p]}
        if todo:
            raise KafkaException(f"could not read {commits} to its end in {timeout_s:.0f} s")
        return last
    finally:
        consumer.close()


OUTPUTS = ("risk", "scores")  # what the real-time query writes, each output counted in its own group


def groups(kafka: KafkaSettings, query: str, writer_id: str) -> dict[str, str]:
    """Output -> the group whose offsets say how far the JVM writer has written it (as
    TransactionalRows.group names them)."""
    return {output: f"{kafka.prefix}-{query}-{writer_id}-{output}" for output in OUTPUTS}


def resume(kafka: KafkaSettings, topic: str, named: dict[str, str], outputs: list[str], default: str) -> str:
    """Where a real-time query starts, as Spark's `startingOffsets` JSON: per partition of `topic`,
    the lowest offset the groups of `outputs` have committed (`named`: output -> group), so an output
    that is behind (scores, when a champion appears) catches up and the writer skips what the others
    already wrote. A group with no offsets at all (a new job) gets the `default` position
    ("earliest" or "latest") committed first, so an output that starts later starts where the job
    did; a partition none has seen starts at its beginning."""
    consumer = Consumer(kafka.consumer_config(f"{kafka.prefix}-resume", {"enable.auto.commit": False}))
    try:
        meta = _retried(lambda: consumer.list_topics(topic, timeout=10)).topics[topic]
        if meta.error is not None:
            raise KafkaException(meta.error)
        ends = {
            p: _retried(partial(_watermarks, consumer, TopicPartition(topic, p))) for p in meta.partitions
        }
    finally:
        consumer.close()
    start = {p: (low if default == "earliest" else high) for p, (low, high) in ends.items()}
    lowest: dict[int, int] = {}
    for output in outputs:
        found = _committed(kafka, named[output], topic, list(ends), start)
        for p, offset in found.items():
            lowest[p] = min(lowest.get(p, offset), offset)
    return json.dumps({topic: {str(p): lowest.get(p, -2) for p in sorted(ends)}})


def _watermarks(consumer: Consumer, partition: TopicPartition) -> tuple[int, int]:
    return consumer.get_watermark_offsets(partition, timeout=10)


def _committed(
    kafka: KafkaSettings, group: str, topic: str, partitions: list[int], start: dict[int, int]
) -> dict[int, int]:
    """`group`'s committed offsets of `topic`; for a group with none, `start` committed and returned."""
    consumer = Consumer(kafka.consumer_config(group, {"enable.auto.commit": False}))
    try:
        asked = [TopicPartition(topic, p) for p in partitions]
        # a run killed inside a transaction leaves its offsets unstable until the broker aborts it
        # (transaction.timeout.ms, 60 s): the fetch times out meanwhile, and is asked again
        committed = _retried(lambda: consumer.committed(asked, timeout=30), UNSTABLE_S, UNSTABLE)
        found = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
        if not found:
            offsets = [TopicPartition(topic, p, o) for p, o in start.items()]
            _retried(lambda: consumer.commit(offsets=offsets, asynchronous=False))
            log.info("%s: none written yet; starts at %s", group, start)
            return dict(start)
        return found
    finally:
        consumer.close()


RETRIABLE = {  # a group coordinator moving or loading; a new topic's partition leaders not yet known
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


UNSTABLE = {KafkaError._TIMED_OUT, KafkaError.UNSTABLE_OFFSET_COMMIT}  # offsets in an open transaction
UNSTABLE_S = 150.0  # outlasts the writers' transaction.timeout.ms (60 s) and a slow abort


def _retried(call: Callable[[], T], timeout_s: float = 60, also: set[int] | None = None) -> T:
    """`call()`, again while the cluster is still settling (a group coordinator moving or loading, a
    new topic without its leaders yet; `also`: other errors to wait out), for up to `timeout_s`."""
    deadline, said = time.monotonic() + timeout_s, False
    while True:
        try:
            return call()
        except KafkaException as exc:
            code = exc.args[0].code()
            if code not in RETRIABLE | (also or set()) or time.monotonic() > deadline:
                raise
            if code in UNSTABLE and not said:
                log.info("waiting for an earlier run's open transaction to end (%s)", exc.args[0].str())
                said = True
            time.sleep(0.5)


def start_rows(
    df: DataFrame, name: str, kafka: KafkaSettings, source: str, writer_id: str, job: SparkJobSettings
) -> StreamingQuery:
    """Real-time query `name` writing `df`'s rows (`records`, each `key`, `value`, `topic`, `output`;
    `source_partition`, `source_offset` of the input topic `source`) exactly once for read_committed
    readers: through the JVM writer `loanstream.TransactionalRows` (sparky/jvm; Spark's foreach in
    the executors), transactions committed every LOANS_SPARK_REALTIME_COMMIT_MS with the input
    offsets they cover, per output. Those offsets, not Spark's, are where it starts again
    (`resume`), so its Spark checkpoint is a new one each start. pyspark's own foreach would run the
    writer in Python, but it pickles rows to the worker in batches that grow to ~1 MB: seconds of
    delay at this job's rates, measured."""
    jvm = df.sparkSession._jvm  # noqa: SLF001 (the writer is a JVM object)
    assert jvm is not None  # noqa: S101 (a classic session)
    writer = jvm.loanstream.TransactionalRows(
        kafka.java_config(), kafka.prefix, name, writer_id, source, job.realtime_commit_ms
    )  # fmt: skip
    checkpoint = job.location(name, "spark")
    remove(df.sparkSession, checkpoint)
    with pool(df, name):
        out = (
            df.writeStream.queryName(name)
            .outputMode("update")
            .option("checkpointLocation", checkpoint)
            .trigger(**{"realTime": job.realtime_batch})  # (not in pyspark's type stubs yet)
        )
        out._jwrite = out._jwrite.foreach(writer)  # noqa: SLF001 (the Scala API takes a JVM writer)
        return out.start()
