"""What the tests that run `loans-stream` as a process share: the running job, and reading which
applications reached an output topic."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from core.settings import KafkaSettings
from kafka_consumer.read import read_topic


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
