"""Stats: volumes, funnel rates, amounts and processing-time percentiles per event-time window.

One group per window (`all`); computed inside the one windowed aggregation (`windows.py`).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.settings import SparkJobSettings
from sparky.analyses import windows
from sparky.analyses.windows import AMOUNT_DECIMALS, Dimension


def record() -> list[Column]:
    """A StatsRecord from an aggregated row, e.g.
    {"window_start": "2026-03-01T10:00:00Z", "window_end": "2026-03-01T10:01:00Z",
     "applications": 1000, "started": 180, "submitted": 820, "approved": 400, "declined": 300,
     "approval_rate": 0.5714, "conversion_rate": 0.82, "amount_mean": 15234.5,
     "amount_p50": 12000.0, "amount_p90": 30000.0, "processing_ms_p50": 850, "processing_ms_p95": 4200}
    Rates are rounded to 4 decimals (`approval_rate` null when nothing was decided), amount_mean to 2."""
    approval, conversion = windows.funnel_rates()
    return [
        F.col("window_start"),
        F.col("window_end"),
        *(F.col(c) for c in ("applications", "started", "submitted", "approved", "declined")),
        approval,
        conversion,
        F.round("amount_mean", AMOUNT_DECIMALS).alias("amount_mean"),
        F.col("amount_pct")[0].alias("amount_p50"),
        F.col("amount_pct")[1].alias("amount_p90"),
        F.col("processing_pct")[0].alias("processing_ms_p50"),
        F.col("processing_pct")[1].alias("processing_ms_p95"),
    ]


DIMENSION = Dimension("stats", lambda events: F.lit("all"), record)


def build(events: DataFrame, job: SparkJobSettings) -> DataFrame:
    """Stats records per `job.window` event-time window, watermark `job.watermark` (see `record`)."""
    return windows.records(windows.build(events, job, [DIMENSION]), DIMENSION)
