"""`Supervisor.watch`: a failed query is restarted from its checkpoint after a backoff (doubling,
capped at LOANS_SPARK_RESTART_BACKOFF_MAX_S) for as long as it fails, with a log line saying why
each time, while the supervisor goes on (the wait blocks nothing); a restart that itself fails is
tried again the same way. Only lost offsets stop the job, with what to do. Pure logic: the queries
are stand-ins, nothing is started, time is given."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

import sparky.supervisor
from core.errors import DataError
from core.settings import KafkaSettings, SparkJobSettings, TopicSettings
from sparky.context import Context
from sparky.supervisor import Supervisor


@dataclass
class Stand:
    name: str
    error: str | None = None  # failed with this

    @property
    def isActive(self) -> bool:  # noqa: N802 (Spark's name)
        return self.error is None

    def exception(self) -> str | None:
        return self.error


@dataclass
class Query:
    """What `BY_QUERY` holds: `start` gives a running stand-in, or one that fails at once while
    `failing`, or raises while `unstartable`."""

    name: str
    starts: list[str] = field(default_factory=list)
    failing: str | None = None
    unstartable: str | None = None

    def start(self, ctx: Context) -> Any:
        if self.unstartable:
            raise RuntimeError(self.unstartable)
        self.starts.append(self.name)
        return Stand(self.name, self.failing)


@pytest.fixture
def fraud(monkeypatch: pytest.MonkeyPatch) -> Query:
    query = Query("fraud")
    monkeypatch.setattr(sparky.supervisor, "BY_QUERY", {"fraud": query})
    return query


@pytest.fixture
def job(fraud: Query) -> Supervisor:
    settings = SparkJobSettings(queries="fraud", restart_backoff_s=2, restart_backoff_max_s=300)
    supervisor = Supervisor(Context(None, KafkaSettings(), TopicSettings(), settings))  # type: ignore[arg-type]
    supervisor.queries["fraud"] = Stand("fraud", "MLflow not reachable\nat ...")  # type: ignore[assignment]
    return supervisor


def test_a_failed_query_is_restarted_after_a_backoff_and_the_log_says_why(
    job: Supervisor, fraud: Query, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "sparky.supervisor"):
        job.watch(now=100.0)
    assert (
        "query fraud failed (MLflow not reachable); restarting it from its checkpoint in 2 s" in caplog.text
    )
    assert fraud.starts == [] and job.restarting() == {"fraud": 1}
    job.watch(now=101.0)
    assert fraud.starts == []  # not yet due; nothing waited
    job.watch(now=102.5)
    assert fraud.starts == ["fraud"] and job.queries["fraud"].isActive
    assert job.restarting() == {}


def test_a_query_that_keeps_failing_is_restarted_for_as_long_as_it_fails(
    job: Supervisor, fraud: Query, caplog: pytest.LogCaptureFixture
) -> None:
    fraud.failing = "champion alias gone"
    now, waits = 0.0, []
    for _ in range(12):
        job.watch(now)
        waits.append(job.due["fraud"] - now)
        now = job.due["fraud"]
        job.watch(now)  # restarted; fails again at once
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]
    job.watch(now)  # the twelfth restart failed too
    assert len(fraud.starts) == 12 and job.restarting() == {"fraud": 13}
    assert "(failure 12)" in caplog.text


def test_a_restart_that_itself_fails_is_tried_again(
    job: Supervisor, fraud: Query, caplog: pytest.LogCaptureFixture
) -> None:
    fraud.unstartable = "MLflow is down"
    job.watch(0.0)
    with caplog.at_level(logging.WARNING, "sparky.supervisor"):
        job.watch(2.0)  # does not raise
    assert "could not restart query fraud (MLflow is down); trying again in 4 s" in caplog.text
    fraud.unstartable = None
    job.watch(6.0)
    assert fraud.starts == ["fraud"] and job.restarting() == {}


def test_failures_are_counted_again_after_quiet_minutes(job: Supervisor, fraud: Query) -> None:
    job.watch(0.0)
    job.watch(2.0)
    job.queries["fraud"] = Stand("fraud", "again")  # type: ignore[assignment]
    job.watch(1000.0)  # quiet for more than 10 minutes: a first failure again
    assert job.due["fraud"] == 1002.0


def test_lost_offsets_stop_the_job_with_what_to_do(job: Supervisor, fraud: Query) -> None:
    job.queries["fraud"] = Stand(
        "fraud", "Partition loan.applications-0's offset was changed ... failOnDataLoss"
    )  # type: ignore[assignment]
    with pytest.raises(
        DataError, match="remove them ..rm -r .*make kafka-recreate.*LOANS_SPARK_FAIL_ON_DATA_LOSS=false"
    ):
        job.watch(0.0)
    assert fraud.starts == []
