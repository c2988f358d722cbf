"""`make kafka-list`, `make kafka-recreate`, `make kafka-delete-all` and `make clean` as a user runs
them (`loans-topics`, `loans-stack`), against the real broker of the fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer

from core.settings import KafkaSettings, TopicSettings
from kafka_producer import topics as topics_cli
from kafka_producer.topics import admin_client, ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def as_user(
    kafka: KafkaSettings, topics: TopicSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> TopicSettings:
    """The CLI's environment: the fixture broker and this test's own topic names, 2 partitions, the
    job's checkpoints in this test's folder."""
    monkeypatch.setenv("LOANS_KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("LOANS_SPARK_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    for field in ("applications", "history", "truth", "dlq", "output_prefix"):
        monkeypatch.setenv(f"LOANS_TOPICS_{field.upper()}", getattr(topics, field))
    monkeypatch.setenv("LOANS_TOPICS_PARTITIONS", "2")
    return topics.model_copy(update={"partitions": 2})


def _rows(out: str, topics: TopicSettings) -> dict[str, list[str]]:
    """`make kafka-list`'s table: topic -> its columns."""
    rows = [line.split() for line in out.splitlines()]
    return {row[0]: row for row in rows if row and row[0] in topics.all()}


def test_list_recreate_and_delete_all_against_the_broker(
    kafka: KafkaSettings, as_user: TopicSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = as_user
    ensure_topics(kafka, topics)
    producer = Producer(kafka.producer_config("topics-cli"))
    for i in range(7):
        producer.produce(topics.applications, f"{i}".encode(), partition=i % 2)
    assert producer.flush(30) == 0

    assert topics_cli.main(["describe"]) == 0
    rows = _rows(capsys.readouterr().out, topics)
    assert set(rows) == set(topics.all())  # every project topic, as the broker has it
    assert rows[topics.applications][1:3] == ["2", "1"]  # partitions, replicas
    assert rows[topics.applications][-1] == "7"  # end offsets
    assert rows[topics.output("stats")][3:6] == ["168", "h", "compact,delete"]  # retention, cleanup

    assert topics_cli.main(["delete-all"]) == 1  # no terminal to ask, no FORCE: nothing deleted
    assert "FORCE=1" in capsys.readouterr().out
    assert set(topics.all()) <= set(admin_client(kafka).list_topics(timeout=10).topics)

    checkpoints = Path(os.environ["LOANS_SPARK_CHECKPOINT_DIR"])
    (checkpoints / "windows" / "offsets").mkdir(parents=True)
    (checkpoints / "windows" / "offsets" / "0").write_text("v1\n{}\n{}\n")
    assert topics_cli.main(["recreate", "--yes"]) == 0
    assert not checkpoints.exists(), "the job's checkpoints name offsets of the deleted topics"
    assert f"checkpoints {checkpoints}" in capsys.readouterr().out
    assert topics_cli.main(["describe"]) == 0
    rows = _rows(capsys.readouterr().out, topics)
    assert set(rows) == set(topics.all())
    assert all(r[1] == "2" and r[-1] == "0" for r in rows.values())  # empty, configured partitions

    assert topics_cli.main(["delete-all", "--yes"]) == 0
    assert not set(topics.all()) & set(admin_client(kafka).list_topics(timeout=10).topics)
    assert topics_cli.main(["describe"]) == 0
    assert capsys.readouterr().out.count("missing (make up creates it)") == len(topics.all())


def test_clean_removes_state_and_nothing_else(tmp_path: Path, repo_root: Path) -> None:
    home = tmp_path / "home"
    state = [home / "kafka" / "data" / "x", home / "mlflow" / "mlflow.db", home / "secrets.env",
             tmp_path / "chk" / "risk" / "0", tmp_path / "lake" / "history" / "p.parquet"]  # fmt: skip
    kept = [home / "jars" / "kafka" / "kafka-clients.jar", tmp_path / "src" / "module.py"]
    for path in state + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    env = os.environ | {
        "LOANS_PATHS_HOME": str(home),
        "LOANS_SPARK_CHECKPOINT_DIR": str(tmp_path / "chk"),
        "LOANS_SPARK_LAKE_DIR": f"file://{tmp_path / 'lake'}",
    }

    def clean(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "stack", "clean", *args]
        return subprocess.run(command, env=env, cwd=repo_root, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip

    asked = clean()
    assert asked.returncode == 1 and "FORCE=1" in asked.stdout  # no terminal: asks, does nothing
    assert all(p.exists() for p in state)
    done = clean("--yes")
    assert done.returncode == 0, done.stderr
    assert not any(p.exists() for p in state)
    assert all(p.exists() for p in kept)  # the jar cache and anything not the project's state
    assert clean("--yes").stdout.strip() == "nothing to clean"
