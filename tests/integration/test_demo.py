"""`make demo` end to end (`loans-demo`, its own process): every stream gets records, the counts it
prints are the committed records on each topic, a normal stop logs no ERROR and no stack trace, and
the terminal shows the project's lines only (not Spark's shell announcement or MLflow's progress bars)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import KafkaSettings, PathSettings, TopicSettings
from core.streams import STREAMS
from kafka_consumer.read import read_topic
from kafka_producer.topics import admin_client

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow


def test_demo_counts_are_the_offsets_written_and_it_stops_cleanly(
    kafka: KafkaSettings, mlflow_uri: str, tmp_path: Path, repo_root: Path,
    fresh_topics: Callable[..., TopicSettings],
) -> None:  # fmt: skip
    topics = fresh_topics("d", TopicSettings().partitions)
    tag = topics.output_prefix
    home = tmp_path / "home"
    home.mkdir()
    (home / "jars").symlink_to(PathSettings().jars.resolve())  # resolved once, as `make up` does
    env = os.environ | {
        "LOANS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LOANS_MLFLOW_TRACKING_URI": mlflow_uri,
        "LOANS_MLFLOW_MODEL_NAME": f"demo-{tag}",
        "LOANS_PATHS_HOME": str(home),
        "LOANS_TOPICS_APPLICATIONS": topics.applications,
        "LOANS_TOPICS_HISTORY": topics.history,
        "LOANS_TOPICS_TRUTH": topics.truth,
        "LOANS_TOPICS_DLQ": topics.dlq,
        "LOANS_TOPICS_OUTPUT_PREFIX": topics.output_prefix,
    }
    run = subprocess.run(
        [sys.executable, "-m", "demo", "--rate", "200", "--seconds", "12", "--drain", "240"],
        env=env, cwd=repo_root, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = run.stdout + run.stderr
    try:
        assert run.returncode == 0, output[-3000:]
        printed = {
            topic: int(n.replace(",", ""))
            for topic, n in re.findall(r"^(\S+): ([\d,]+) records during the demo$", output, re.M)
        }
        assert set(printed) == {s.topic(topics) for s in STREAMS}
        for topic, count in printed.items():
            assert count > 0, f"{topic}: no records"
            assert count == len(read_topic(kafka, topic, count, 30, 1)), topic  # what the topic holds
        assert printed[topics.dlq] == 3  # the demo's three malformed messages
        assert " ERROR " not in output and "Traceback" not in output, output[-3000:]
        assert not re.search(r"^\s+at [\w.$]+\(", output, re.M), "a Java stack trace was printed"
        warned = re.findall(r"^\S+ WARN .*$", output, re.M)  # Spark's (log4j); the project says WARNING
        assert not warned, "\n".join(warned[:20])
        for noise in ("Setting default log level", "sc.setLogLevel", "Downloading artifacts"):
            assert noise not in output, f"not a line of the project's: {noise!r}"  # Spark's shell, MLflow
    finally:
        admin_client(kafka).delete_topics(topics.all())
