"""Channel: the application funnel and its timings per event-time window and channel."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.settings import SparkJobSettings
from sparky.analyses.stats import flatten_window, funnel_counts, funnel_rates, windowed

SECONDS_DECIMALS = 3

OUTPUT_COLUMNS = (
    "window_start",
    "window_end",
    "channel",
    "applications",
    "submitted",
    "conversion_rate",
    "approved",
    "declined",
    "approval_rate",
    "session_seconds_mean",
    "form_fill_seconds_mean",
    "processing_ms_p50",
    "processing_ms_p95",
    "attempts_mean",
)


def build(events: DataFrame, job: SparkJobSettings) -> DataFrame:
    """Per `job.window` event-time window and `channel`, watermark `job.watermark`.

    Reads `event_time`, `channel`, `status`, `session_seconds`, `form_fill_seconds`, `processing_ms`,
    `attempts`. `applications` counts every started application, `submitted` those past `started`;
    rates as in `stats` (4 decimals, `approval_rate` null when nothing was decided), means of seconds
    and attempts rounded to 3 decimals. One output record per window and channel, e.g.
    {"window_start": "2026-03-01T10:00:00Z", "window_end": "2026-03-01T10:01:00Z", "channel": "web",
     "applications": 400, "submitted": 300, "conversion_rate": 0.75, "approved": 150, "declined": 100,
     "approval_rate": 0.6, "session_seconds_mean": 612.4, "form_fill_seconds_mean": 305.125,
     "processing_ms_p50": 900, "processing_ms_p95": 4100, "attempts_mean": 1.12}
    """
    framed, keys = windowed(events, job, "channel")
    counts = framed.groupBy(*keys).agg(
        *funnel_counts(),
        F.round(F.avg("session_seconds"), SECONDS_DECIMALS).alias("session_seconds_mean"),
        F.round(F.avg("form_fill_seconds"), SECONDS_DECIMALS).alias("form_fill_seconds_mean"),
        F.percentile_approx("processing_ms", 0.5).alias("processing_ms_p50"),
        F.percentile_approx("processing_ms", 0.95).alias("processing_ms_p95"),
        F.round(F.avg("attempts"), SECONDS_DECIMALS).alias("attempts_mean"),
    )
    return flatten_window(counts.select("*", *funnel_rates())).select(*OUTPUT_COLUMNS)
