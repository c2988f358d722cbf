"""What the tests that run `loans-stream` as a process share: the running job, a steady stream of
applications from the project's producer, and reading which applications reached an output topic."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.settings import KafkaSettings, TopicSettings
from generator.applications import ApplicationGenerator
from kafka_consumer.read import read_topic
from kafka_producer.encode import json_lines
from kafka_producer.producer import EventProducer


@dataclass
class RunningJob:
    log: Path
    process: subprocess.Popen[bytes]

    def read_text(self) -> str:
        return self.log.read_text()

    def kill_python_workers(self) -> int:
        """SIGKILL the job's PySpark Python workers (its JVM starts new ones, which load the model
        again); return how many."""
        table = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout  # noqa: S607
        children: dict[int, list[int]] = defaultdict(list)
        args: dict[int, str] = {}
        for line in table.splitlines():
            fields = line.split(None, 2)
            children[int(fields[1])].append(int(fields[0]))
            args[int(fields[0])] = fields[2] if len(fields) > 2 else ""
        todo, workers = [self.process.pid], list[int]()
        while todo:
            for child in children[todo.pop()]:
                todo.append(child)
                if "pyspark.daemon" in args[child] or "pyspark.worker" in args[child]:
                    workers.append(child)
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
        return len(workers)

    def __str__(self) -> str:
        return str(self.log)


def keys(kafka: KafkaSettings, topic: str) -> Counter[str]:
    return Counter((m.key() or b"").decode() for m in read_topic(kafka, topic, 10**9, 5, settle_s=0))


def wait_for(kafka: KafkaSettings, topic: str, ids: list[str], timeout_s: float) -> Counter[str]:
    deadline = time.monotonic() + timeout_s
    while not set(ids) <= set(got := keys(kafka, topic)) and time.monotonic() < deadline:
        time.sleep(3)
    return got


@contextlib.contextmanager
def steady_applications(
    kafka: KafkaSettings, topic: str, seed: int, per_second: int = 10
) -> Iterator[list[str]]:
    """The project's producer sends `per_second` applications a second to `topic` on a thread while
    the block runs; yields the ids sent so far. Leaving the block closes the producer, which raises
    if anything was not delivered."""
    gen, producer, stop = ApplicationGenerator(seed=seed), EventProducer(kafka), threading.Event()
    sent: list[str] = []

    def send_every_second() -> None:
        while not stop.is_set():
            apps = gen.batch(per_second, datetime.now(UTC), 0.01).applications
            producer.send(topic, [a.encode() for a in apps["application_id"]], json_lines(apps))
            sent.extend(apps["application_id"])
            stop.wait(1)

    sender = threading.Thread(target=send_every_second)
    sender.start()
    try:
        yield sent
    finally:
        stop.set()
        sender.join()
    producer.close()


def assert_risked_and_scored_once(
    kafka: KafkaSettings, topics: TopicSettings, sent: list[str], job: RunningJob
) -> None:
    """Every application in `sent` reached loan.risk and loan.scores, none scored twice."""
    for stream in ("risk", "scores"):
        got = wait_for(kafka, topics.output(stream), sent, 300)
        missing = len(set(sent) - set(got))
        assert not missing, f"{stream}: {missing} of {len(sent)} missing; log: {job}"
        if stream == "scores":
            assert max(got[i] for i in sent) == 1, "an application was scored twice"
