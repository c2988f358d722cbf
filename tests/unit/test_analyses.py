"""The four output analyses on small hand-built events with hand-computed expectations."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from core.events import LoanApplication
from core.settings import SparkJobSettings
from core.streams import BY_NAME
from sparky.analyses import channel, risk, segment, stats, windows
from sparky.schema import LOAN_APPLICATION

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
JOB = SparkJobSettings(
    window="1 minute", watermark="2 minutes", dedup_horizon="2 minutes", risk_alert_threshold=0.6
)
_ids = itertools.count()

# A low-risk A1 application: no risk rule fires and its base is 0, so its risk_score is 0.
DEFAULTS: dict[str, Any] = {
    "loan_amnt": 10_000.0,
    "term": 36,
    "int_rate": 0.08,
    "installment": 300.0,
    "grade": "A",
    "sub_grade": "A1",
    "emp_title": "teacher",
    "emp_length": "5 years",
    "home_ownership": "RENT",
    "annual_inc": 100_000.0,
    "verification_status": "Verified",
    "purpose": "debt_consolidation",
    "title": "Debt consolidation",
    "dti": 10.0,
    "earliest_cr_line": date(2010, 1, 1),
    "fico_range_low": 700,
    "fico_range_high": 704,
    "open_acc": 8,
    "pub_rec": 0,
    "revol_bal": 5_000.0,
    "revol_util": 0.3,
    "total_acc": 20,
    "delinq_2yrs": 0,
    "inq_last_6mths": 0,
    "addr_state": "CA",
    "zip_code": "941xx",
    "event_time": T0,
    "customer_id": "cus-1",
    "ssn_hash": "0" * 64,
    "email": "a@example.com",
    "phone": "+1-555-0100",
    "device_id": "dev-1",
    "ip_address": "10.0.0.1",
    "user_agent": "Mozilla/5.0",
    "channel": "web",
    "session_seconds": 600.0,
    "form_fill_seconds": 300.0,
    "attempts": 1,
    "status": "submitted",
    "processing_ms": 1_000,
}
OPTIONAL = [name for name, field in LoanApplication.model_fields.items() if not field.is_required()]


def event(**overrides: Any) -> tuple[Any, ...]:
    """One valid application (validated by the pydantic contract) as a row in LOAN_APPLICATION order."""
    fields = {"application_id": f"app-{next(_ids)}", **DEFAULTS, **overrides}
    dumped = LoanApplication.model_validate(fields).model_dump()
    return tuple(
        str(v) if isinstance(v, StrEnum) else v for v in (dumped[f.name] for f in LOAN_APPLICATION.fields)
    )


def frame(spark: SparkSession, *events: tuple[Any, ...]) -> DataFrame:
    return spark.createDataFrame(list(events), schema=LOAN_APPLICATION)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def local(moment: datetime) -> datetime:
    """How PySpark hands back a timestamp: naive, in the Python process's local time zone."""
    return moment.astimezone().replace(tzinfo=None)


def scored(spark: SparkSession, **overrides: Any) -> Row:
    return risk.score(frame(spark, event(**overrides))).collect()[0]


# --- risk ---------------------------------------------------------------------------------------

RULE_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("DTI_HIGH", {"dti": 30.5}, True),
    ("DTI_HIGH", {"dti": 30.0}, False),
    ("PAYMENT_TO_INCOME_HIGH", {"installment": 1_000.0, "annual_inc": 50_000.0}, True),  # 0.24
    ("PAYMENT_TO_INCOME_HIGH", {"installment": 800.0, "annual_inc": 50_000.0}, False),  # 0.192
    ("PAYMENT_TO_INCOME_HIGH", {"annual_inc": None}, True),
    ("PAYMENT_TO_INCOME_HIGH", {"annual_inc": 0.0}, True),
    ("FICO_LOW", {"fico_range_low": 659, "fico_range_high": 663}, True),
    ("FICO_LOW", {"fico_range_low": 660, "fico_range_high": 664}, False),
    ("REVOL_UTIL_HIGH", {"revol_util": 0.86}, True),
    ("REVOL_UTIL_HIGH", {"revol_util": 0.85}, False),
    ("REVOL_UTIL_HIGH", {"revol_util": None}, False),
    ("DELINQUENCIES", {"delinq_2yrs": 1}, True),
    ("DELINQUENCIES", {"pub_rec": 1}, True),
    ("DELINQUENCIES", {"delinq_2yrs": None, "pub_rec": None}, False),
    ("INQUIRIES_RECENT", {"inq_last_6mths": 3}, True),
    ("INQUIRIES_RECENT", {"inq_last_6mths": 2}, False),
    ("INQUIRIES_RECENT", {"inq_last_6mths": None}, False),
    ("GRADE_LOW", {"grade": "E", "sub_grade": "A1"}, True),
    ("GRADE_LOW", {"grade": "G", "sub_grade": "A1"}, True),
    ("GRADE_LOW", {"grade": "D", "sub_grade": "A1"}, False),
]


@pytest.fixture(scope="module")
def rule_rows(spark: SparkSession) -> dict[str, Row]:
    """Every RULE_CASES event scored in one Spark job, by case index."""
    events = [event(application_id=str(i), **overrides) for i, (_, overrides, _) in enumerate(RULE_CASES)]
    return {r.application_id: r for r in risk.score(frame(spark, *events)).collect()}


@pytest.mark.parametrize(("case", "code", "fires"), [(i, c, f) for i, (c, _, f) in enumerate(RULE_CASES)])
def test_each_reason_code_fires_only_past_its_threshold(
    rule_rows: dict[str, Row], case: int, code: str, fires: bool
) -> None:
    row = rule_rows[str(case)]
    weight = next(r.weight for r in risk.RULES if r.code == code)
    assert row.reason_codes == ([code] if fires else [])
    assert row.risk_score == pytest.approx(weight if fires else 0.0)


def test_score_is_base_plus_weights_in_rule_order(spark: SparkSession) -> None:
    row = scored(spark, grade="C", sub_grade="C3", dti=35.0, fico_range_low=650, fico_range_high=654)
    assert row.reason_codes == ["DTI_HIGH", "FICO_LOW"]
    assert row.risk_score == 0.3912  # 12/34*0.4 = 0.141176 + 0.10 + 0.15
    assert row.risk_band == "medium"


def test_everything_firing_on_g5_scores_one(spark: SparkSession) -> None:
    row = scored(
        spark, grade="G", sub_grade="G5", dti=40.0, annual_inc=None, fico_range_low=600, fico_range_high=604,
        revol_util=0.99, delinq_2yrs=2, inq_last_6mths=5,
    )  # fmt: skip
    assert row.reason_codes == [r.code for r in risk.RULES]
    assert (row.risk_score, row.risk_band) == (1.0, "very_high")


def test_null_optional_fields_keep_the_score_defined(spark: SparkSession) -> None:
    row = scored(spark, **dict.fromkeys(OPTIONAL))
    assert row.reason_codes == ["PAYMENT_TO_INCOME_HIGH"]
    assert row.risk_score == pytest.approx(0.1)


def test_score_rises_with_each_added_risk(spark: SparkSession) -> None:
    steps: list[dict[str, Any]] = [
        {"grade": "B", "sub_grade": "B2"},
        {"grade": "C", "sub_grade": "C4"},
        {"dti": 31.0},
        {"revol_util": 0.9},
        {"inq_last_6mths": 4},
        {"delinq_2yrs": 1},
        {"fico_range_low": 640, "fico_range_high": 644},
        {"installment": 2_000.0, "annual_inc": 60_000.0},
        {"grade": "F", "sub_grade": "F1"},
    ]
    overrides: dict[str, Any] = {}
    rows = [event(application_id="s00")]
    for i, step in enumerate(steps, start=1):
        overrides |= step
        rows.append(event(application_id=f"s{i:02d}", **overrides))
    scores = [r.risk_score for r in risk.score(frame(spark, *rows)).orderBy("application_id").collect()]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)


def test_bands_at_their_bounds(spark: SparkSession) -> None:
    values = [0.0, 0.2499, 0.25, 0.4999, 0.5, 0.7499, 0.75, 1.0]
    df = spark.createDataFrame([(v,) for v in values], "s double").select(risk.band(F.col("s")).alias("b"))
    expected = ["low", "low", "medium", "medium", "high", "high", "very_high", "very_high"]
    assert [r.b for r in df.collect()] == expected


def test_build_alerts_at_the_threshold(spark: SparkSession) -> None:
    job = SparkJobSettings(risk_alert_threshold=0.25)
    at_threshold = event(application_id="a", dti=31.0, fico_range_low=650, fico_range_high=654)  # 0.25
    below = event(application_id="b", fico_range_low=650, fico_range_high=654)  # 0.15
    out = risk.build(frame(spark, at_threshold, below), job)
    assert tuple(out.columns) == BY_NAME["risk"].fields
    rows = {r.application_id: r for r in out.collect()}
    assert (rows["a"].risk_score, rows["a"].alert) == (0.25, True)
    assert (rows["b"].risk_score, rows["b"].alert) == (0.15, False)
    assert rows["a"].event_time == local(T0)


# --- stats --------------------------------------------------------------------------------------


def test_stats_split_windows_at_the_minute(spark: SparkSession) -> None:
    events = [event(event_time=at(59.999)), event(event_time=at(60.0))]
    rows = stats.build(frame(spark, *events), JOB).orderBy("window_start").collect()
    assert [(r.window_start, r.window_end, r.applications) for r in rows] == [
        (local(at(0)), local(at(60)), 1),
        (local(at(60)), local(at(120)), 1),
    ]


def test_stats_counts_rates_and_percentiles(spark: SparkSession) -> None:
    statuses = ["started", "submitted", "approved", "funded", "declined", "declined"]
    first = [
        event(event_time=at(i), status=s, loan_amnt=1_000.0 * (i + 1), processing_ms=100 * (i + 1))
        for i, s in enumerate(statuses)
    ]
    second = [event(event_time=at(70), status="started"), event(event_time=at(80), status="submitted")]
    rows = stats.build(frame(spark, *first, *second), JOB).orderBy("window_start").collect()
    assert rows[0].asDict() == {
        "window_start": local(at(0)), "window_end": local(at(60)),
        "applications": 6, "started": 1, "submitted": 5, "approved": 2, "declined": 2,
        "approval_rate": 0.5, "conversion_rate": 0.8333,
        "amount_mean": 3_500.0, "amount_p50": 3_000.0, "amount_p90": 6_000.0,
        "processing_ms_p50": 300, "processing_ms_p95": 600,
    }  # fmt: skip
    assert (rows[1].approval_rate, rows[1].conversion_rate) == (None, 0.5)


def _write(spark: SparkSession, folder: Path, *events: tuple[Any, ...]) -> None:
    frame(spark, *events).coalesce(1).write.mode("append").json(str(folder))


def _stream(
    spark: SparkSession,
    folder: Path,
    build: Callable[[DataFrame, SparkJobSettings], DataFrame],
    name: str,
    job: SparkJobSettings = JOB,
) -> Any:
    source = spark.readStream.schema(LOAN_APPLICATION).json(str(folder))
    return build(source, job).writeStream.format("memory").queryName(name).outputMode("append").start()


def test_stats_stream_drops_events_behind_the_watermark(spark: SparkSession, tmp_path: Path) -> None:
    _write(spark, tmp_path, event(event_time=at(10)), event(event_time=at(20)))
    query = _stream(spark, tmp_path, stats.build, "stats_watermark")
    try:
        query.processAllAvailable()
        assert spark.table("stats_watermark").count() == 0  # window 10:00 is still open
        _write(spark, tmp_path, event(event_time=at(600)))  # watermark -> 10:08, closes 10:00
        query.processAllAvailable()
        _write(spark, tmp_path, event(event_time=at(30)), event(event_time=at(210)))  # late: 10:00, 10:03
        query.processAllAvailable()
        _write(spark, tmp_path, event(event_time=at(1_200)))  # watermark -> 10:18, closes 10:10
        query.processAllAvailable()
        rows = spark.table("stats_watermark").orderBy("window_start").collect()
    finally:
        query.stop()
    assert [(r.window_start, r.applications) for r in rows] == [(local(at(0)), 2), (local(at(600)), 1)]


def test_a_repeat_within_the_dedup_horizon_is_counted_in_no_window(
    spark: SparkSession, tmp_path: Path
) -> None:
    """One rule for repeats with the default settings: fraud makes an application id seen again within
    LOANS_SPARK_DEDUP_HORIZON (10 minutes) a dead letter, so the windows must not count it either,
    even when the watermark has moved past the first one (a resubmission 5 minutes later)."""
    job = SparkJobSettings(window="1 minute")
    first = event(event_time=at(10))
    _write(spark, tmp_path, first)
    query = _stream(spark, tmp_path, stats.build, "stats_repeats", job)
    try:
        query.processAllAvailable()
        _write(spark, tmp_path, event(event_time=at(270)))  # 10:04:30, moves the watermark past it
        query.processAllAvailable()
        _write(
            spark,
            tmp_path,
            event(**{**dict(zip(LOAN_APPLICATION.names, first, strict=True)), "event_time": at(300)}),
        )
        query.processAllAvailable()
        _write(spark, tmp_path, event(event_time=at(3_600)))  # closes every window above
        query.processAllAvailable()
        rows = spark.table("stats_repeats").orderBy("window_start").collect()
    finally:
        query.stop()
    assert [(r.window_start, r.applications) for r in rows] == [(local(at(0)), 1), (local(at(240)), 1)]


def test_the_watermark_cannot_be_shorter_than_the_dedup_horizon() -> None:
    with pytest.raises(ValueError, match="LOANS_SPARK_WATERMARK .* at least LOANS_SPARK_DEDUP_HORIZON"):
        SparkJobSettings(watermark="2 minutes", dedup_horizon="10 minutes")


@pytest.mark.parametrize("module", [risk, stats, segment, channel], ids=lambda m: m.__name__.split(".")[-1])
def test_build_runs_on_a_stream(spark: SparkSession, tmp_path: Path, module: Any) -> None:
    _write(spark, tmp_path, event(event_time=at(5), purpose="car"), event(event_time=at(6)))
    name = f"stream_{module.__name__.split('.')[-1]}"
    query = _stream(spark, tmp_path, module.build, name)
    try:
        query.processAllAvailable()
        _write(spark, tmp_path, event(event_time=at(600)))
        query.processAllAvailable()
        out = spark.table(name)
        rows = out.collect()
    finally:
        query.stop()
    assert out.columns == module.build(frame(spark, event()), JOB).columns
    assert len(rows) == (3 if module is risk else 1)


# --- segment ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fico", "income", "expected"),
    [
        (619, 50_000.0, "subprime/middle"),
        (620, 50_000.0, "near_prime/middle"),
        (659, 50_000.0, "near_prime/middle"),
        (660, 50_000.0, "prime/middle"),
        (719, 50_000.0, "prime/middle"),
        (720, 50_000.0, "super_prime/middle"),
        (700, 39_999.99, "prime/low"),
        (700, 40_000.0, "prime/middle"),
        (700, 99_999.99, "prime/middle"),
        (700, 100_000.0, "prime/high"),
        (700, None, "prime/unknown"),
    ],
)
def test_segment_bounds(spark: SparkSession, fico: int, income: float | None, expected: str) -> None:
    df = frame(spark, event(fico_range_low=fico, fico_range_high=fico + 4, annual_inc=income))
    assert df.select(segment.segment_of(df).alias("s")).collect()[0].s == expected


def test_segment_amounts_risk_and_top_purpose(spark: SparkSession) -> None:
    purposes = ["car", "debt_consolidation", "car", "credit_card"]
    events = [
        event(event_time=at(i), purpose=p, loan_amnt=1_000.0 * (i + 1)) for i, p in enumerate(purposes)
    ] + [
        event(event_time=at(10), dti=35.0),  # also prime/high, risk 0.1
        event(event_time=at(11), fico_range_low=600, fico_range_high=604),  # subprime/high
    ]
    out = segment.build(frame(spark, *events), JOB)
    assert tuple(out.columns) == BY_NAME["segment"].fields
    rows = {r.segment: r for r in out.collect()}
    assert set(rows) == {"prime/high", "subprime/high"}
    prime = rows["prime/high"]
    assert (prime.applications, prime.amount_total, prime.amount_mean) == (5, 20_000.0, 4_000.0)
    assert prime.avg_risk_score == 0.02
    assert (prime.top_purpose, prime.top_purpose_share) == ("car", 0.4)
    assert prime.purpose_mix == {"car": 2, "credit_card": 1, "debt_consolidation": 2}
    sub = rows["subprime/high"]
    assert (sub.top_purpose, sub.top_purpose_share, sub.avg_risk_score) == ("debt_consolidation", 1.0, 0.15)


def test_segment_top_purpose_tie_is_alphabetical(spark: SparkSession) -> None:
    events = [event(purpose="wedding"), event(purpose="car"), event(purpose="wedding"), event(purpose="car")]
    row = segment.build(frame(spark, *events), JOB).collect()[0]
    assert (row.top_purpose, row.top_purpose_share) == ("car", 0.5)


def test_segment_counts_a_purpose_lending_club_does_not_have_as_other(spark: SparkSession) -> None:
    events = [event(purpose="spaceship"), event(purpose="other"), event(purpose="car")]
    row = segment.build(frame(spark, *events), JOB).collect()[0]
    assert row.purpose_mix == {"car": 1, "other": 2}
    assert (row.top_purpose, row.top_purpose_share) == ("other", round(2 / 3, 4))


# --- channel ------------------------------------------------------------------------------------


def test_channel_funnel_per_channel(spark: SparkSession) -> None:
    web = [
        event(channel="web", status=s, session_seconds=100.0 * (i + 1), attempts=i + 1, processing_ms=10 * i)
        for i, s in enumerate(["started", "submitted", "approved", "declined"])
    ]
    mobile = [event(channel="mobile_app", status="started", form_fill_seconds=f) for f in (10.0, 20.0)]
    out = channel.build(frame(spark, *web, *mobile), JOB)
    assert tuple(out.columns) == BY_NAME["channel"].fields
    rows = {r.channel: r.asDict() for r in out.collect()}
    assert rows["web"] == {
        "window_start": local(at(0)), "window_end": local(at(60)), "channel": "web",
        "applications": 4, "submitted": 3, "conversion_rate": 0.75, "approved": 1, "declined": 1,
        "approval_rate": 0.5, "session_seconds_mean": 250.0, "form_fill_seconds_mean": 300.0,
        "processing_ms_p50": 10, "processing_ms_p95": 30, "attempts_mean": 2.5,
    }  # fmt: skip
    mobile_row = rows["mobile_app"]
    assert (mobile_row["applications"], mobile_row["submitted"], mobile_row["conversion_rate"]) == (2, 0, 0.0)
    assert (mobile_row["approval_rate"], mobile_row["form_fill_seconds_mean"]) == (None, 15.0)


# --- the one windowed query ---------------------------------------------------------------------


def test_one_aggregation_gives_each_windowed_stream_its_own_records(spark: SparkSession) -> None:
    events = [
        event(event_time=at(5), channel="web", status="approved", fico_range_low=700),
        event(event_time=at(20), channel="mobile_app", status="declined", fico_range_low=600),
        event(event_time=at(50), channel="web", status="started", annual_inc=None),
        event(event_time=at(70), channel="phone", status="funded"),
    ]
    df = frame(spark, *events)
    dims = [stats.DIMENSION, segment.DIMENSION, channel.DIMENSION]
    together = windows.build(df, JOB, dims)
    assert together.select("stream").distinct().count() == 3
    for module in (stats, segment, channel):
        combined = windows.records(together, module.DIMENSION)
        alone = module.build(df, JOB)
        assert tuple(combined.columns) == BY_NAME[module.DIMENSION.stream].fields
        assert sorted(map(str, combined.collect())) == sorted(map(str, alone.collect()))
    rows = windows.records(together, channel.DIMENSION).collect()
    assert {(r.window_start, r.channel): r.applications for r in rows} == {
        (local(at(0)), "web"): 2,
        (local(at(0)), "mobile_app"): 1,
        (local(at(60)), "phone"): 1,
    }
