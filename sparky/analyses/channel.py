"""Channel: the application funnel and its timings per event-time window and channel.

Computed inside the one windowed aggregation (`windows.py`), grouped by `channel`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.settings import SparkJobSettings
from sparky.analyses import windows
from sparky.analyses.windows import Dimension

SECONDS_DECIMALS = 3


def record() -> list[Column]:
    """A ChannelRecord from an aggregated row. `applications` counts every started application,
    `submitted` those past `started`; rates as in `stats` (4 decimals, `approval_rate` null when
    nothing was decided), means of seconds and attempts rounded to 3 decimals, e.g.
    {"window_start": "2026-03-01T10:00:00Z", "window_end": "2026-03-01T10:01:00Z", "channel": "web",
     "applications": 400, "submitted": 300, "conversion_rate": 0.75, "approved": 150, "declined": 100,
     "approval_rate": 0.6, "session_seconds_mean": 612.4, "form_fill_seconds_mean": 305.125,
     "processing_ms_p50": 900, "processing_ms_p95": 4100, "attempts_mean": 1.12}"""
    approval, conversion = windows.funnel_rates()
    return [
        F.col("window_start"),
        F.col("window_end"),
        F.col("group").alias("channel"),
        F.col("applications"),
        F.col("submitted"),
        conversion,
        F.col("approved"),
        F.col("declined"),
        approval,
        F.round("session_mean", SECONDS_DECIMALS).alias("session_seconds_mean"),
        F.round("form_fill_mean", SECONDS_DECIMALS).alias("form_fill_seconds_mean"),
        F.col("processing_pct")[0].alias("processing_ms_p50"),
        F.col("processing_pct")[1].alias("processing_ms_p95"),
        F.round("attempts_mean", SECONDS_DECIMALS).alias("attempts_mean"),
    ]


DIMENSION = Dimension("channel", lambda events: events["channel"], record)


def build(events: DataFrame, job: SparkJobSettings) -> DataFrame:
    """Channel records per `job.window` event-time window, watermark `job.watermark` (see `record`)."""
    return windows.records(windows.build(events, job, [DIMENSION]), DIMENSION)
