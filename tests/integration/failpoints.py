"""The Spark job with a crash injected, from the test side (`python -m tests.integration.failpoints
<query>:<point> [loans-stream arguments]`): the production code has no switch for it. Points:

- `<query>:mid-write` (a micro-batch query): SIGKILL after the batch's records were sent in its Kafka
  transaction (flushed to the broker, uncommitted) and before its commit marker;
- `<query>:after-commit` (a micro-batch query): SIGKILL right after a transaction with records committed;
- `realtime:after-commit`: SIGKILL as soon as a read_committed reader sees the real-time query's first
  committed loan.risk record, i.e. after one of its transactions committed, while it carries on.

The JVM driver ends with its Python process."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer
from pyspark.sql import DataFrame

from core.settings import KafkaSettings, TopicSettings, load
from kafka_consumer.read import consumer_config
from sparky import cli
from sparky.transactional import TransactionalSink

log = logging.getLogger("failpoints")


def kill(where: str) -> None:
    log.warning("failpoint %s: killing the job", where)
    os.kill(os.getpid(), signal.SIGKILL)


def micro_batch(query: str, point: str) -> None:
    produce, write = TransactionalSink.produce, TransactionalSink.write

    def producing(self: TransactionalSink, topic: str, value: str | None, key: str | None) -> None:
        if point == "mid-write" and self.query == query and topic == self.commits:
            self.producer.flush(10)  # the batch's records are on the broker, uncommitted
            kill(f"{query}:{point}")
        produce(self, topic, value, key)

    def writing(self: TransactionalSink, frames: Sequence[DataFrame], batch_id: int) -> int:
        written = write(self, frames, batch_id)
        if point == "after-commit" and self.query == query and written:
            kill(f"{query}:{point}")
        return written

    TransactionalSink.produce = producing  # type: ignore[method-assign]
    TransactionalSink.write = writing  # type: ignore[method-assign]


def realtime_after_commit() -> None:
    kafka, topics = load(KafkaSettings, service="spark"), load(TopicSettings)
    config: dict[str, Any] = consumer_config(kafka, None, from_beginning=True)
    consumer = Consumer(config)
    consumer.subscribe([topics.output("risk")])

    def watch() -> None:
        while not (message := consumer.poll(0.2)) or message.error():
            time.sleep(0.05)
        kill("realtime:after-commit")

    threading.Thread(target=watch, name="failpoint", daemon=True).start()


def main(argv: list[str]) -> int:
    failpoint, rest = argv[0], argv[1:]
    query, _, point = failpoint.partition(":")
    if failpoint == "realtime:after-commit":
        realtime_after_commit()
    elif point in ("mid-write", "after-commit"):
        micro_batch(query, point)
    else:
        raise SystemExit(f"unknown failpoint {failpoint!r}")
    return cli.main(rest)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
