"""Risk: a transparent, points-based risk score per application (no window, no watermark).

score = min(1, base + sum of the weights of the rules that fire), rounded to 4 decimals, where
base = (grade index * 5 + sub-grade index) / 34 * BASE_WEIGHT, i.e. 0 for A1 and BASE_WEIGHT for G5.
Every rule, its threshold and its weight is one row of `RULES`; the weights add up to
1 - BASE_WEIGHT, so a G5 application on which every rule fires scores exactly 1.

| code                   | fires when                                                  | weight |
|------------------------|-------------------------------------------------------------|--------|
| DTI_HIGH               | dti > 30                                                    | 0.10   |
| PAYMENT_TO_INCOME_HIGH | installment * 12 / annual_inc > 0.20, or annual_inc null/0  | 0.10   |
| FICO_LOW               | fico_range_low < 660                                        | 0.15   |
| REVOL_UTIL_HIGH        | revol_util > 0.85                                           | 0.05   |
| DELINQUENCIES          | delinq_2yrs > 0 or pub_rec > 0                              | 0.10   |
| INQUIRIES_RECENT       | inq_last_6mths >= 3                                         | 0.05   |
| GRADE_LOW              | grade in E, F, G                                            | 0.05   |

A null optional field never makes the score null: a rule on a null field does not fire, except
PAYMENT_TO_INCOME_HIGH, which fires when the income is unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.records import RiskRecord
from core.settings import SparkJobSettings

DTI_MAX = 30.0
PAYMENT_TO_INCOME_MAX = 0.20
FICO_MIN = 660
REVOL_UTIL_MAX = 0.85
INQUIRIES_MAX = 3
LOW_GRADES = ("E", "F", "G")
BASE_WEIGHT = 0.4
SUB_GRADES = 7 * 5 - 1  # A1 = 0 ... G5 = 34

BANDS = ((0.25, "low"), (0.5, "medium"), (0.75, "high"))  # score below the bound -> band
TOP_BAND = "very_high"


@dataclass(frozen=True)
class Rule:
    code: str
    weight: float
    fires: Callable[[], Column]


def _ptir() -> Column:
    # installment*12/annual_inc > max, without dividing: a null or 0 income fires.
    return F.col("installment") * 12 > F.col("annual_inc") * PAYMENT_TO_INCOME_MAX


RULES: tuple[Rule, ...] = (
    Rule("DTI_HIGH", 0.10, lambda: F.col("dti") > DTI_MAX),
    Rule("PAYMENT_TO_INCOME_HIGH", 0.10, lambda: F.coalesce(_ptir(), F.lit(True))),
    Rule("FICO_LOW", 0.15, lambda: F.col("fico_range_low") < FICO_MIN),
    Rule("REVOL_UTIL_HIGH", 0.05, lambda: F.col("revol_util") > REVOL_UTIL_MAX),
    Rule(
        "DELINQUENCIES",
        0.10,
        lambda: (
            (F.coalesce(F.col("delinq_2yrs"), F.lit(0)) > 0) | (F.coalesce(F.col("pub_rec"), F.lit(0)) > 0)
        ),
    ),
    Rule("INQUIRIES_RECENT", 0.05, lambda: F.col("inq_last_6mths") >= INQUIRIES_MAX),
    Rule("GRADE_LOW", 0.05, lambda: F.col("grade").isin(*LOW_GRADES)),
)

OUTPUT_COLUMNS = tuple(RiskRecord.model_fields)  # the contract: core/records.py


def _fires(rule: Rule) -> Column:
    return F.coalesce(rule.fires(), F.lit(False))


def _base() -> Column:
    """(grade index * 5 + sub-grade index) / 34 * BASE_WEIGHT from `sub_grade`, e.g. 'C3' -> 12/34*0.4."""
    grade_index = F.ascii(F.col("sub_grade")) - F.ascii(F.lit("A"))
    sub_index = F.substring("sub_grade", 2, 1).try_cast("int") - 1
    return F.coalesce((grade_index * 5 + sub_index) / SUB_GRADES * BASE_WEIGHT, F.lit(0.0))


def band(risk_score: Column) -> Column:
    """The band of a score: low < 0.25 <= medium < 0.5 <= high < 0.75 <= very_high."""
    result = F.when(risk_score < BANDS[0][0], F.lit(BANDS[0][1]))
    for bound, name in BANDS[1:]:
        result = result.when(risk_score < bound, F.lit(name))
    return result.otherwise(F.lit(TOP_BAND))


def score_columns() -> dict[str, Column]:
    """`risk_score` (double in [0, 1]), `risk_band` and `reason_codes` (RULES order), as expressions."""
    points = sum((F.when(_fires(r), F.lit(r.weight)).otherwise(F.lit(0.0)) for r in RULES), _base())
    risk_score = F.round(F.least(points, F.lit(1.0)), 4).cast("double")
    return {
        "risk_score": risk_score,
        "risk_band": band(risk_score),
        "reason_codes": F.array_compact(F.array(*(F.when(_fires(r), F.lit(r.code)) for r in RULES))),
    }


def score(events: DataFrame) -> DataFrame:
    """`events` plus `risk_score`, `risk_band` and `reason_codes` (one projection)."""
    return events.select("*", *(c.alias(name) for name, c in score_columns().items()))


def columns(job: SparkJobSettings) -> list[Column]:
    """The output record's columns (OUTPUT_COLUMNS) as expressions over an application's fields, in
    one projection; built once, they can be applied to every micro-batch."""
    scored = score_columns()
    alert = scored["risk_score"] >= F.lit(job.risk_alert_threshold)
    return [
        *(F.col(name) for name in OUTPUT_COLUMNS[:-4]),
        *(column.alias(name) for name, column in scored.items()),
        alert.alias("alert"),
    ]


def build(events: DataFrame, job: SparkJobSettings) -> DataFrame:
    """Risk per application; reads the credit fields in RULES plus ids, channel and status.

    No window and no watermark: one output record per input application, e.g.
    {"application_id": "app-1", "event_time": "2026-03-01T10:00:00Z", "customer_id": "cus-7",
     "channel": "web", "status": "submitted", "loan_amnt": 12000.0, "grade": "C", "sub_grade": "C3",
     "risk_score": 0.3912, "risk_band": "medium", "reason_codes": ["DTI_HIGH", "FICO_LOW"],
     "alert": false}
    `alert` is `risk_score >= job.risk_alert_threshold`.
    """
    return events.select(*columns(job))
