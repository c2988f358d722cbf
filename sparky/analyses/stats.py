"""Stats: volumes, funnel rates, amounts and processing-time percentiles per event-time window.

The funnel helpers here (`funnel_counts`, `funnel_rates`) are shared with `channel`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.settings import SparkJobSettings

APPROVED = ("approved", "funded")
DECLINED = ("declined",)
STARTED = "started"
RATE_DECIMALS = 4
AMOUNT_DECIMALS = 2


def _count_if(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0)).cast("long")


def funnel_counts() -> list[Column]:
    """Aggregates `applications`, `started`, `submitted`, `approved`, `declined` (reads `status`)."""
    status = F.col("status")
    return [
        F.count(F.lit(1)).alias("applications"),
        _count_if(status == STARTED).alias("started"),
        _count_if(status != STARTED).alias("submitted"),
        _count_if(status.isin(*APPROVED)).alias("approved"),
        _count_if(status.isin(*DECLINED)).alias("declined"),
    ]


def ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator rounded to RATE_DECIMALS; null when the denominator is 0."""
    return F.when(denominator > 0, F.round(numerator / denominator, RATE_DECIMALS))


def funnel_rates() -> list[Column]:
    """`approval_rate` = approved / (approved + declined), `conversion_rate` = submitted / applications."""
    approved, declined = F.col("approved"), F.col("declined")
    return [
        ratio(approved, approved + declined).alias("approval_rate"),
        ratio(F.col("submitted"), F.col("applications")).alias("conversion_rate"),
    ]


def windowed(events: DataFrame, job: SparkJobSettings, *keys: str) -> tuple[DataFrame, list[Column]]:
    """`events` with the `job.watermark` on `event_time`, and the group keys: `window` plus `keys`."""
    group = [F.window("event_time", job.window).alias("window"), *(F.col(k) for k in keys)]
    return events.withWatermark("event_time", job.watermark), group


def flatten_window(frame: DataFrame) -> DataFrame:
    """Replace the `window` struct by `window_start` and `window_end` (first columns)."""
    rest = [c for c in frame.columns if c != "window"]
    return frame.select(
        F.col("window.start").alias("window_start"), F.col("window.end").alias("window_end"), *rest
    )


def build(events: DataFrame, job: SparkJobSettings) -> DataFrame:
    """Per `job.window` event-time window, watermark `job.watermark`; append mode emits each once.

    Reads `event_time`, `status`, `loan_amnt`, `processing_ms`. One output record per window, e.g.
    {"window_start": "2026-03-01T10:00:00Z", "window_end": "2026-03-01T10:01:00Z",
     "applications": 1000, "started": 180, "submitted": 820, "approved": 400, "declined": 300,
     "approval_rate": 0.5714, "conversion_rate": 0.82, "amount_mean": 15234.5,
     "amount_p50": 12000.0, "amount_p90": 30000.0, "processing_ms_p50": 850, "processing_ms_p95": 4200}
    Rates are rounded to 4 decimals (`approval_rate` null when nothing was decided), amount_mean to 2.
    """
    framed, keys = windowed(events, job)
    counts = framed.groupBy(*keys).agg(
        *funnel_counts(),
        F.round(F.avg("loan_amnt"), AMOUNT_DECIMALS).alias("amount_mean"),
        F.percentile_approx("loan_amnt", 0.5).alias("amount_p50"),
        F.percentile_approx("loan_amnt", 0.9).alias("amount_p90"),
        F.percentile_approx("processing_ms", 0.5).alias("processing_ms_p50"),
        F.percentile_approx("processing_ms", 0.95).alias("processing_ms_p95"),
    )
    result = counts.select("*", *funnel_rates())
    return flatten_window(result).select(
        "window_start",
        "window_end",
        "applications",
        "started",
        "submitted",
        "approved",
        "declined",
        "approval_rate",
        "conversion_rate",
        "amount_mean",
        "amount_p50",
        "amount_p90",
        "processing_ms_p50",
        "processing_ms_p95",
    )
