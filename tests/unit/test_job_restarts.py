"""`Job.restart`: a failed query is restarted from its checkpoint after a backoff, a bounded number
of times in a row, with a log line saying why; lost offsets stop the job with the switch to skip
them. Pure logic: the queries are stand-ins, nothing is started."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import pytest

import sparky.job
from core.settings import KafkaSettings, SparkJobSettings, TopicSettings
from sparky.job import Job


@dataclass
class FailedQuery:
    name: str
    error: str

    def exception(self) -> str:
        return self.error


@dataclass
class Query:
    name: str
    starts: list[str]

    def start(self, job: Job) -> Any:
        self.starts.append(self.name)
        return f"{self.name} #{len(self.starts)}"


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch) -> tuple[Job, list[str]]:
    starts: list[str] = []
    monkeypatch.setattr(sparky.job, "QUERIES", (Query("scores", starts),))
    settings = SparkJobSettings(query_restarts=2, restart_backoff_s=0.01)
    return Job(None, KafkaSettings(), TopicSettings(), settings), starts  # type: ignore[arg-type]


def test_a_failed_query_is_restarted_and_the_log_says_why(
    job: tuple[Job, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    jb, starts = job
    with caplog.at_level(logging.WARNING, "sparky.job"):
        jb.restart(FailedQuery("scores", "MLflow not reachable\nat ..."), threading.Event())  # type: ignore[arg-type]
    assert starts == ["scores"] and jb.queries["scores"] == "scores #1"
    assert "query scores failed (MLflow not reachable); restarting it from its checkpoint" in caplog.text
    assert "(1 of 2)" in caplog.text


def test_restarts_are_bounded(job: tuple[Job, list[str]]) -> None:
    jb, starts = job
    failed = FailedQuery("scores", "boom")
    jb.restart(failed, threading.Event())  # type: ignore[arg-type]
    jb.restart(failed, threading.Event())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="query scores failed 3 times in a row; last: boom"):
        jb.restart(failed, threading.Event())  # type: ignore[arg-type]
    assert len(starts) == 2


def test_lost_offsets_stop_the_job_with_the_switch_to_skip_them(job: tuple[Job, list[str]]) -> None:
    jb, starts = job
    lost = FailedQuery("risk", "Partition loan.applications-0's offset was changed ... failOnDataLoss")
    with pytest.raises(RuntimeError, match="LOANS_SPARK_FAIL_ON_DATA_LOSS=false"):
        jb.restart(lost, threading.Event())  # type: ignore[arg-type]
    assert starts == []
