"""Reading a topic with confluent-kafka, read_committed: the consumer's settings, a topic check with a
clear error, a follow/idle loop for `loans-consume`, and `read_topic` for tests and tools.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message

from core.errors import ServiceError
from core.settings import KafkaSettings

log = logging.getLogger(__name__)

IDLE_S = 5.0  # --no-follow stops after this long without a message
ASSIGN_TIMEOUT_S = 30.0  # --no-follow gives up if the group never gets its partitions
CONNECT_TIMEOUT_S = 5.0


def consumer_config(kafka: KafkaSettings, group: str | None, from_beginning: bool) -> dict[str, Any]:
    """A fresh throw-away group without commits unless `group` is given; read_committed."""
    return kafka.consumer_config(
        group or f"loans-consume-{uuid.uuid4().hex[:12]}",
        {
            "client.id": f"{kafka.client_id}-consume",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": group is not None,
            "logger": logging.getLogger("librdkafka"),
        },
    )


def check_topic(consumer: Consumer, kafka: KafkaSettings, topic: str) -> None:
    """Raise `ServiceError` when the broker does not answer or `topic` does not exist."""
    try:
        names = consumer.list_topics(timeout=CONNECT_TIMEOUT_S).topics
    except KafkaException as exc:
        raise ServiceError(
            f"cannot reach Kafka at {kafka.bootstrap_servers} within {CONNECT_TIMEOUT_S:.0f} s "
            f"({exc.args[0].str()}); is it up (make up)?"
        ) from exc
    if topic not in names:
        raise ServiceError(
            f"topic {topic} does not exist yet; start the Spark job (make spark-app-single) "
            "or create topics (make up)"
        )


def read(consumer: Consumer, topic: str, follow: bool, limit: int | None) -> Iterator[Message]:
    """Subscribe and yield messages; without `follow`, stop after `IDLE_S` with none once assigned."""
    assigned, last = False, time.monotonic()

    def on_assign(_consumer: Consumer, _partitions: list[Any]) -> None:
        nonlocal assigned, last
        assigned, last = True, time.monotonic()

    consumer.subscribe([topic], on_assign=on_assign)
    count = 0
    while limit is None or count < limit:
        msg = consumer.poll(0.5)
        if msg is None:
            if not follow and time.monotonic() - last >= (IDLE_S if assigned else ASSIGN_TIMEOUT_S):
                return
            continue
        if err := msg.error():
            if err.fatal():
                raise ServiceError(f"consuming {topic} failed: {err.str()}")
            log.warning("%s: %s", topic, err.str())
            continue
        last, count = time.monotonic(), count + 1
        yield msg


def read_topic(
    kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 60.0, settle_s: float = 2.0
) -> list[Message]:
    """Every message on `topic` from its start: poll until `expected` have arrived, then `settle_s`
    longer to catch any extra (duplicates), or until `timeout_s` passes."""
    consumer = Consumer(consumer_config(kafka, None, from_beginning=True))
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            messages += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
            if len(messages) >= expected:
                deadline = min(deadline, time.monotonic() + settle_s)
    finally:
        consumer.close()
    return messages


def keyed_json(messages: list[Message]) -> dict[str, Any]:
    """`{key: parsed JSON value}` of the messages that have both (the last one wins per key)."""
    return {key.decode(): json.loads(value) for m in messages if (key := m.key()) and (value := m.value())}
