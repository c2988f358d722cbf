"""Segment: volumes, amounts, risk and purpose mix per event-time window and customer segment.

A segment is a FICO band on `fico_range_low` and an income band on `annual_inc`, e.g. "prime/middle":

| FICO band   | fico_range_low | income band | annual_inc           |
|-------------|----------------|-------------|----------------------|
| subprime    | < 620          | low         | < 40,000             |
| near_prime  | 620 - 659      | middle      | 40,000 to < 100,000  |
| prime       | 660 - 719      | high        | >= 100,000           |
| super_prime | >= 720         | unknown     | null                 |

The purpose statistics come from the window's collected purposes (`collect_list` keeps them in the
streaming state until the window closes), so they work on streaming and batch DataFrames alike.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.settings import SparkJobSettings
from sparky.analyses import risk
from sparky.analyses.stats import AMOUNT_DECIMALS, RATE_DECIMALS, flatten_window, windowed

FICO_BANDS = ((620, "subprime"), (660, "near_prime"), (720, "prime"))  # below the bound -> band
FICO_TOP_BAND = "super_prime"
INCOME_BANDS = ((40_000, "low"), (100_000, "middle"))
INCOME_TOP_BAND = "high"
INCOME_UNKNOWN = "unknown"

OUTPUT_COLUMNS = (
    "window_start",
    "window_end",
    "segment",
    "applications",
    "amount_total",
    "amount_mean",
    "avg_risk_score",
    "top_purpose",
    "top_purpose_share",
    "purpose_mix",
)


def _banded(value: Column, bands: tuple[tuple[int, str], ...], top: str) -> Column:
    result = F.when(value < bands[0][0], F.lit(bands[0][1]))
    for bound, name in bands[1:]:
        result = result.when(value < bound, F.lit(name))
    return result.otherwise(F.lit(top))


def segment_of(events: DataFrame) -> Column:
    """The segment of each row of `events`: "<fico band>/<income band>", e.g. "prime/middle"."""
    fico = _banded(events["fico_range_low"], FICO_BANDS, FICO_TOP_BAND)
    income = F.when(events["annual_inc"].isNull(), F.lit(INCOME_UNKNOWN)).otherwise(
        _banded(events["annual_inc"], INCOME_BANDS, INCOME_TOP_BAND)
    )
    return F.concat_ws("/", fico, income)


def _purpose_stats(purposes: Column) -> list[Column]:
    """`top_purpose` (ties: alphabetically first), its share and `purpose_mix` from a purpose list."""
    distinct = F.array_sort(F.array_distinct(purposes))
    counts = F.transform(distinct, lambda p: F.size(F.filter(purposes, lambda x: x == p)).cast("long"))
    top_count = F.array_max(counts)
    top = F.element_at(
        F.filter(distinct, lambda p: F.size(F.filter(purposes, lambda x: x == p)) == top_count), 1
    )
    share = F.when(F.size(purposes) > 0, F.round(top_count / F.size(purposes), RATE_DECIMALS))
    return [
        top.alias("top_purpose"),
        share.alias("top_purpose_share"),
        F.map_from_arrays(distinct, counts).alias("purpose_mix"),
    ]


def build(events: DataFrame, job: SparkJobSettings) -> DataFrame:
    """Per `job.window` event-time window and segment (see the module table), watermark `job.watermark`.

    Reads `event_time`, `fico_range_low`, `annual_inc`, `loan_amnt`, `purpose` and the risk inputs
    (`risk.score`). Amounts are rounded to 2 decimals, `avg_risk_score` and `top_purpose_share` to 4;
    `purpose_mix` maps each purpose to its count. One output record per window and segment, e.g.
    {"window_start": "2026-03-01T10:00:00Z", "window_end": "2026-03-01T10:01:00Z",
     "segment": "prime/middle", "applications": 120, "amount_total": 1830000.0, "amount_mean": 15250.0,
     "avg_risk_score": 0.2875, "top_purpose": "debt_consolidation", "top_purpose_share": 0.575,
     "purpose_mix": {"credit_card": 30, "debt_consolidation": 69, "other": 21}}
    """
    framed, keys = windowed(risk.score(events), job)
    grouped = framed.groupBy(*keys, segment_of(events).alias("segment")).agg(
        F.count(F.lit(1)).alias("applications"),
        F.round(F.sum("loan_amnt"), AMOUNT_DECIMALS).alias("amount_total"),
        F.round(F.avg("loan_amnt"), AMOUNT_DECIMALS).alias("amount_mean"),
        F.round(F.avg("risk_score"), RATE_DECIMALS).alias("avg_risk_score"),
        F.collect_list("purpose").alias("purposes"),
    )
    result = grouped.select("*", *_purpose_stats(F.col("purposes")))
    return flatten_window(result).select(*OUTPUT_COLUMNS)
