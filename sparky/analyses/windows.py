"""Windows: the windowed streams (stats, segment, channel) as ONE event-time aggregation.

Each application is exploded into one row per windowed stream, carrying that stream's group value
(`all` for stats, the customer segment, the channel), and one `groupBy(window, stream, group)`
computes every aggregate any of them needs (`aggregates()`): one state store, one shuffle and one
commit per micro-batch for the three streams, instead of three of each. Each stream's module
(`stats`, `segment`, `channel`) says how its group is found and which record it makes of an
aggregated row (a `Dimension`); `records()` gives one stream's records, and the job routes every row
to its stream's topic (`sparky/queries.py`).

Watermark `job.watermark` on `event_time`, windows of `job.window`; in update mode a window's record
is re-emitted as it fills, keyed by window (and group), so the newest record per key is the answer.
Streaming, an application id seen again within the watermark is counted once
(`dropDuplicatesWithinWatermark`; later it is late for its window anyway). The watermark is at least
LOANS_SPARK_DEDUP_HORIZON (the settings refuse less), so every repeat the fraud query sends to the
dead-letter queue as a duplicate is counted in no window either: one rule for repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.settings import SparkJobSettings
from sparky.analyses import risk

APPROVED = ("approved", "funded")
DECLINED = ("declined",)
STARTED = "started"
RATE_DECIMALS = 4
AMOUNT_DECIMALS = 2
PURPOSES = (  # Lending Club's loan purposes; anything else is counted as OTHER
    "car", "credit_card", "debt_consolidation", "educational", "home_improvement", "house", "major_purchase",
    "medical", "moving", "other", "renewable_energy", "small_business", "vacation", "wedding",
)  # fmt: skip
OTHER = "other"


@dataclass(frozen=True)
class Dimension:
    """One windowed stream: the group each application counts in, and its record's columns (over an
    aggregated row: `window_start`, `window_end`, `group` and the `aggregates()`)."""

    stream: str
    group: Callable[[DataFrame], Column]
    record: Callable[[], list[Column]]


def _count_if(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0)).cast("long")


def aggregates() -> list[Column]:
    """Everything the windowed streams read, computed once per (window, stream, group). Funnel:
    `applications`, `started`, `submitted` (past started), `approved`, `declined`; amounts, risk,
    one count per purpose, timings; percentiles as one sketch per column."""
    status = F.col("status")
    purpose = F.when(F.col("purpose").isin(*PURPOSES), F.col("purpose")).otherwise(F.lit(OTHER))
    return [
        F.count(F.lit(1)).alias("applications"),
        _count_if(status == STARTED).alias("started"),
        _count_if(status != STARTED).alias("submitted"),
        _count_if(status.isin(*APPROVED)).alias("approved"),
        _count_if(status.isin(*DECLINED)).alias("declined"),
        F.sum("loan_amnt").alias("amount_total"),
        F.avg("loan_amnt").alias("amount_mean"),
        F.percentile_approx("loan_amnt", [0.5, 0.9]).alias("amount_pct"),
        F.percentile_approx("processing_ms", [0.5, 0.95]).alias("processing_pct"),
        F.avg("risk_score").alias("risk_mean"),
        F.avg("session_seconds").alias("session_mean"),
        F.avg("form_fill_seconds").alias("form_fill_mean"),
        F.avg("attempts").alias("attempts_mean"),
        *(F.count(F.when(purpose == p, F.lit(1))).alias(f"n_{p}") for p in PURPOSES),
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


def build(events: DataFrame, job: SparkJobSettings, dimensions: Sequence[Dimension]) -> DataFrame:
    """Aggregated rows of `dimensions`: window_start, window_end, stream, group and `aggregates()`.

    Reads `event_time`, `status`, `loan_amnt`, `processing_ms`, `purpose`, `channel`,
    `session_seconds`, `form_fill_seconds`, `attempts`, the segment's and the risk score's fields."""
    if events.isStreaming:  # an application id seen again within the watermark is counted once
        events = events.withWatermark("event_time", job.watermark).dropDuplicatesWithinWatermark(
            ["application_id"]
        )
    scored = risk.score(events)
    each = [F.struct(F.lit(d.stream).alias("stream"), d.group(scored).alias("group")) for d in dimensions]
    rows = scored.select("*", F.inline(F.array(*each)))
    counted = rows.groupBy(F.window("event_time", job.window).alias("window"), "stream", "group")
    return (
        counted.agg(*aggregates())
        .select(F.col("window.start").alias("window_start"), F.col("window.end").alias("window_end"), "*")
        .drop("window")
    )


def records(aggregated: DataFrame, dimension: Dimension) -> DataFrame:
    """The records of one windowed stream from the rows of `build`."""
    return aggregated.where(F.col("stream") == dimension.stream).select(*dimension.record())
