"""Kafka broker start-up to healthy (answers a metadata request), jars already cached.

Cold: fresh folder, KRaft storage formatted, broker started. Baseline in the same run: a restart
on storage that already exists (no format), and a bare `java -version` (the JVM's own floor).
    uv run python -m bench.stack_startup --runs 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from core.ports import free_port
from core.settings import PathSettings
from stack import jars
from stack.kafka import KafkaBroker


def _timed_start(broker: KafkaBroker) -> float:
    start = time.monotonic()
    broker.start(timeout_s=90)
    elapsed = time.monotonic() - start
    broker.stop()
    return elapsed


def _summary(name: str, values: list[float]) -> str:
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{name:<34} median {median:5.2f} s   min {low:5.2f}   max {high:5.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    jar_dir = jars.ensure(jars.KAFKA_POM, PathSettings().jars / "kafka")
    cold, restart, jvm = [], [], []
    for i in range(args.runs):
        home = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
        broker = KafkaBroker(home, jar_dir, port=free_port(), controller_port=free_port())
        cold.append(_timed_start(broker))
        restart.append(_timed_start(broker))
        start = time.monotonic()
        subprocess.run([shutil.which("java") or "java", "-version"], capture_output=True, check=True)  # noqa: S603
        jvm.append(time.monotonic() - start)
        shutil.rmtree(home)
        print(f"run {i + 1}/{args.runs}: cold {cold[-1]:.2f} s, restart {restart[-1]:.2f} s", flush=True)
    print(_summary("cold start (format + start)", cold))
    print(_summary("baseline: restart, storage exists", restart))
    print(_summary("baseline: bare JVM (java -version)", jvm))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
