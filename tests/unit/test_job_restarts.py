"""`Supervisor.restart`: a failed query is restarted from its checkpoint after a backoff, a bounded number
of times in a row, with a log line saying why; lost offsets stop the job with the switch to skip
them. Pure logic: the queries are stand-ins, nothing is started."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import pytest

import sparky.supervisor
from core.settings import KafkaSettings, SparkJobSettings, TopicSettings
from sparky.context import Context
from sparky.supervisor import Supervisor


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

    def start(self, ctx: Context) -> Any:
        self.starts.append(self.name)
        return f"{self.name} #{len(self.starts)}"


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch) -> tuple[Supervisor, list[str]]:
    starts: list[str] = []
    monkeypatch.setattr(sparky.supervisor, "BY_QUERY", {"fraud": Query("fraud", starts)})
    settings = SparkJobSettings(queries="fraud", query_restarts=2, restart_backoff_s=0.01)
    ctx = Context(None, KafkaSettings(), TopicSettings(), settings)  # type: ignore[arg-type]
    return Supervisor(ctx), starts


def test_a_failed_query_is_restarted_and_the_log_says_why(
    job: tuple[Supervisor, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    jb, starts = job
    with caplog.at_level(logging.WARNING, "sparky.supervisor"):
        jb.restart(FailedQuery("fraud", "MLflow not reachable\nat ..."), threading.Event())  # type: ignore[arg-type]
    assert starts == ["fraud"] and jb.queries["fraud"] == "fraud #1"
    assert "query fraud failed (MLflow not reachable); restarting it from its checkpoint" in caplog.text
    assert "(1 of 2)" in caplog.text


def test_restarts_are_bounded(job: tuple[Supervisor, list[str]]) -> None:
    jb, starts = job
    failed = FailedQuery("fraud", "boom")
    jb.restart(failed, threading.Event())  # type: ignore[arg-type]
    jb.restart(failed, threading.Event())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="query fraud failed 3 times in a row; last: boom"):
        jb.restart(failed, threading.Event())  # type: ignore[arg-type]
    assert len(starts) == 2


def test_lost_offsets_stop_the_job_with_the_switch_to_skip_them(job: tuple[Supervisor, list[str]]) -> None:
    jb, starts = job
    lost = FailedQuery("realtime", "Partition loan.applications-0's offset was changed ... failOnDataLoss")
    with pytest.raises(RuntimeError, match="LOANS_SPARK_FAIL_ON_DATA_LOSS=false"):
        jb.restart(lost, threading.Event())  # type: ignore[arg-type]
    assert starts == []
