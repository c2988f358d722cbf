"""The job's metrics from Spark's progress reports (pure: stand-in queries with the progress dicts
Spark gives), served over real HTTP and read back the way `make status` reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from core.metrics import serve
from core.ports import free_port
from sparky.metrics import QueryCollector, lag
from stack import status


@dataclass
class Stand:
    lastProgress: dict[str, Any] = field(default_factory=dict)  # noqa: N815 (Spark's name)
    isActive: bool = True  # noqa: N815


def progress(batch: int, end: int, latest: int, rate: float = 100.0) -> dict[str, Any]:
    return {
        "batchId": batch,
        "timestamp": "2026-12-03T10:00:00.000Z",
        "inputRowsPerSecond": rate,
        "processedRowsPerSecond": rate * 2,
        "durationMs": {"triggerExecution": 1500},
        "stateOperators": [{"numRowsDroppedByWatermark": 4}],
        "sources": [
            {
                "endOffset": json.dumps({"loan.applications": {"0": end, "1": end}}),
                "latestOffset": json.dumps({"loan.applications": {"0": latest, "1": latest}}),
            }
        ],
    }


def test_lag_is_the_distance_to_the_newest_offsets_over_partitions() -> None:
    assert lag(progress(3, end=90, latest=100)) == {"loan.applications": 20}
    assert lag({}) == {}


def test_status_reads_the_job_and_flags_a_growing_lag_or_a_stopped_query() -> None:
    risk, windows = Stand(progress(1, 100, 100)), Stand(progress(1, 100, 100))
    registry = CollectorRegistry()
    registry.register(QueryCollector(lambda: {"risk": risk, "windows": windows}))  # type: ignore[dict-item]
    port = free_port()
    stop = serve(registry, "127.0.0.1", port, "-")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        fine = status.job("spark job", url)
        assert fine.state == "running" and not fine.problem
        assert "queries risk, windows" in fine.detail and "in 200/s" in fine.detail
        assert "lag loan.applications 0" in fine.detail
        for batch, behind in enumerate((10, 20, 40, 80), start=2):  # behind further each batch
            risk.lastProgress = progress(batch, 100, 100 + behind)
            growing = status.job("spark job", url)
        assert growing.problem and growing.state == "problem: lag keeps growing: risk"
        assert "lag loan.applications 160" in growing.detail
        windows.isActive = False
        assert status.job("spark job", url).state == "problem: stopped: windows"
    finally:
        stop()
    assert status.job("spark job", url).state == "not running"


def test_status_shows_a_query_that_keeps_failing_as_restarting() -> None:
    risk, fraud = Stand(progress(1, 100, 100)), Stand(progress(1, 100, 100), isActive=False)
    registry = CollectorRegistry()
    queries = {"risk": risk, "fraud": fraud}
    registry.register(QueryCollector(lambda: queries, lambda: {"fraud": 3}))  # type: ignore[arg-type,return-value]
    port = free_port()
    stop = serve(registry, "127.0.0.1", port, "-")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert status.job("spark job", url).state == "problem: restarting: fraud (3 failures in a row)"
        samples = status.scrape(url) or {}
        assert samples[("loans_job_query_restarting", (("query", "fraud"),))] == 1
        assert samples[("loans_job_query_failures", (("query", "fraud"),))] == 3
        assert samples[("loans_job_query_restarting", (("query", "risk"),))] == 0
    finally:
        stop()
