"""The producer's Prometheus metrics, read from its delivery counts when scraped:

loans_producer_sent_total        events handed to librdkafka
loans_producer_delivered_total   events the broker acknowledged (acks=all)
loans_producer_failed_total      events that could not be delivered
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from kafka_producer.producer import DeliveryStats


class ProducerCollector(Collector):
    def __init__(self, stats: DeliveryStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name in ("sent", "delivered", "failed"):
            yield CounterMetricFamily(
                f"loans_producer_{name}", f"events {name}", value=getattr(self.stats, name)
            )


def registry(stats: DeliveryStats) -> CollectorRegistry:
    out = CollectorRegistry()
    out.register(ProducerCollector(stats))
    return out
