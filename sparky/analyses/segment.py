"""Segment: volumes, amounts, risk and purpose mix per event-time window and customer segment.

A segment is a FICO band on `fico_range_low` and an income band on `annual_inc`, e.g. "prime/middle":

| FICO band   | fico_range_low | income band | annual_inc           |
|-------------|----------------|-------------|----------------------|
| subprime    | < 620          | low         | < 40,000             |
| near_prime  | 620 - 659      | middle      | 40,000 to < 100,000  |
| prime       | 660 - 719      | high        | >= 100,000           |
| super_prime | >= 720         | unknown     | null                 |

The purpose statistics come from one count per Lending Club purpose (`windows.PURPOSES`; any other
value counts as "other"), so the streaming state holds 14 numbers per window and segment, however
many applications arrive. Computed inside the one windowed aggregation (`windows.py`).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.settings import SparkJobSettings
from sparky.analyses import windows
from sparky.analyses.windows import AMOUNT_DECIMALS, PURPOSES, RATE_DECIMALS, Dimension

FICO_BANDS = ((620, "subprime"), (660, "near_prime"), (720, "prime"))  # below the bound -> band
FICO_TOP_BAND = "super_prime"
INCOME_BANDS = ((40_000, "low"), (100_000, "middle"))
INCOME_TOP_BAND = "high"
INCOME_UNKNOWN = "unknown"


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


def _purpose_stats() -> list[Column]:
    """`top_purpose` (ties: alphabetically first), its share and `purpose_mix` (purpose -> count, the
    purposes seen) from the `n_<purpose>` counts."""
    counted = F.array(*(F.struct(F.lit(p).alias("purpose"), F.col(f"n_{p}").alias("n")) for p in PURPOSES))
    seen = F.filter(counted, lambda e: e["n"] > 0)
    top_count = F.array_max(F.transform(seen, lambda e: e["n"]))
    top = F.array_min(F.transform(F.filter(seen, lambda e: e["n"] == top_count), lambda e: e["purpose"]))
    total = F.col("applications")
    return [
        top.alias("top_purpose"),
        F.when(total > 0, F.round(top_count / total, RATE_DECIMALS)).alias("top_purpose_share"),
        F.map_from_entries(seen).alias("purpose_mix"),
    ]


def record() -> list[Column]:
    """A SegmentRecord from an aggregated row. Amounts are rounded to 2 decimals, `avg_risk_score` and
    `top_purpose_share` to 4; `purpose_mix` maps each purpose to its count, e.g.
    {"window_start": "2026-03-01T10:00:00Z", "window_end": "2026-03-01T10:01:00Z",
     "segment": "prime/middle", "applications": 120, "amount_total": 1830000.0, "amount_mean": 15250.0,
     "avg_risk_score": 0.2875, "top_purpose": "debt_consolidation", "top_purpose_share": 0.575,
     "purpose_mix": {"credit_card": 30, "debt_consolidation": 69, "other": 21}}"""
    return [
        F.col("window_start"),
        F.col("window_end"),
        F.col("group").alias("segment"),
        F.col("applications"),
        F.round("amount_total", AMOUNT_DECIMALS).alias("amount_total"),
        F.round("amount_mean", AMOUNT_DECIMALS).alias("amount_mean"),
        F.round("risk_mean", RATE_DECIMALS).alias("avg_risk_score"),
        *_purpose_stats(),
    ]


DIMENSION = Dimension("segment", segment_of, record)


def build(events: DataFrame, job: SparkJobSettings) -> DataFrame:
    """Segment records per `job.window` event-time window, watermark `job.watermark` (see `record`).
    Reads `fico_range_low`, `annual_inc`, `loan_amnt`, `purpose` and the risk score's fields."""
    return windows.records(windows.build(events, job, [DIMENSION]), DIMENSION)
