"""An idempotent, keyed Kafka producer (acks=all) that counts every delivery report.

Delivery callbacks are served by one `poll(0)` per batch (and while the local queue is full),
never one poll per message. A producer that cannot deliver stops: `check()` raises once any
delivery failed, and `close()` raises if anything is still undelivered after the flush.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from core.errors import DeliveryError
from core.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    first_error: str | None = None
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"sent {self.sent:,}  delivered {self.delivered:,}  failed {self.failed:,}  "
            f"rate {self.delivered / elapsed:,.0f}/s"
        )


def producer_config(kafka: KafkaSettings) -> dict[str, Any]:
    return kafka.producer_config(
        "producer",
        {
            "linger.ms": 25,
            "batch.size": 1_000_000,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "message.timeout.ms": kafka.delivery_timeout_ms,
            "logger": logging.getLogger("librdkafka"),  # retry chatter through logging, not raw stderr
        },
    )


class EventProducer:
    """Sends batches of pre-encoded (key, value) messages and keeps `stats` up to date."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.stats = DeliveryStats()
        self._producer = Producer(
            producer_config(kafka), on_delivery=self._on_delivery, error_cb=self._on_error
        )

    def send(self, topic: str, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        """Queue one batch; blocks (serving callbacks) while librdkafka's queue is full."""
        produce = self._producer.produce
        for key, value in zip(keys, values, strict=True):
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    self._producer.poll(0.05)
                    self.check()
        self.stats.sent += len(values)
        self._producer.poll(0)
        self.check()

    def check(self) -> None:
        """Raise `DeliveryError` as soon as any event failed to be delivered."""
        if self.stats.failed:
            raise DeliveryError(
                f"{self.stats.failed:,} events were not delivered to Kafka at "
                f"{self.kafka.bootstrap_servers}: {self.stats.first_error}; is the broker up (make status)?"
            )

    def close(self, timeout_s: float = 60.0) -> DeliveryStats:
        """Flush everything still queued; raise `DeliveryError` unless all of it was delivered."""
        remaining = self._producer.flush(timeout_s)
        self.check()
        if remaining:
            raise DeliveryError(
                f"{remaining:,} events still undelivered after {timeout_s:.0f} s flush to "
                f"{self.kafka.bootstrap_servers}; is the broker up (make status)?"
            )
        return self.stats

    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.stats.delivered += 1
            return
        self.stats.failed += 1
        if self.stats.first_error is None:
            self.stats.first_error = f"{err.str()} (topic {msg.topic()})"

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning(
                "all brokers down at %s; retrying until the delivery timeout", self.kafka.bootstrap_servers
            )
        else:
            log.debug("kafka client error: %s", err.str())
