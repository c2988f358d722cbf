"""Fraud analysis: window counts, each rule, assisted terminals, and state across micro-batches (the
JVM state processor itself: sparky/jvm/test/FraudStateTest.java)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import DataFrame, Row, SparkSession

from core.settings import SparkJobSettings
from core.streams import BY_NAME
from sparky.analyses import fraud
from sparky.metrics import read_through
from sparky.schema import LOAN_APPLICATION

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EVENT = (
    "application_id string, event_time timestamp, customer_id string, channel string, device_id string, "
    "ip_address string, ssn_hash string, phone string, form_fill_seconds double, attempts long"
)
JOB = SparkJobSettings()
ALL = SparkJobSettings(fraud_score_threshold=0.0)


def app(app_id: str, minutes: float, customer: str, **fields: Any) -> dict[str, Any]:
    """One application; by default the customer's own device, IP, SSN and phone, on the web."""
    return {
        "application_id": app_id,
        "event_time": T0 + timedelta(minutes=minutes),
        "customer_id": customer,
        "channel": "web",
        "device_id": f"dev-{customer}",
        "ip_address": f"ip-{customer}",
        "ssn_hash": f"ssn-{customer}",
        "phone": f"phone-{customer}",
        "form_fill_seconds": 300.0,
        "attempts": 1,
    } | fields


def frame(spark: SparkSession, apps: list[dict[str, Any]]) -> DataFrame:
    return spark.createDataFrame([tuple(a.values()) for a in apps], EVENT)


def by_kind(spark: SparkSession, apps: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(application_id, kind) -> that kind's METRICS (and event_time) from the one row per application."""
    rows = fraud.wide(fraud.signals(frame(spark, apps), JOB)).collect()
    return {
        (r["application_id"], kind): {m: r[f"{kind}_{m}"] for m in fraud.METRICS}
        | {"event_time": r["event_time"]}
        for r in rows
        for kind in fraud.ENTITIES
    }


def test_device_counts_over_the_three_windows(spark: SparkSession) -> None:
    apps = [app(f"a{i}", 3 * i, f"c{i}", device_id="dev-x") for i in range(4)]
    apps.append(app("late", 2 * 60 + 9, "c4", device_id="dev-x"))
    rows = by_kind(spark, apps)
    last = rows[("a3", "device")]
    assert last["customers_1h"] == 4
    assert (last["apps_5m"], last["customers_5m"], last["apps_24h"]) == (2, 2, 4)  # (t-5m, t]: a2, a3
    later = rows[("late", "device")]
    assert (later["customers_1h"], later["customers_24h"], later["apps_24h"]) == (1, 5, 5)
    assert rows[("a3", "ssn")]["customers_24h"] == 1
    assert later["event_time"] == (T0 + timedelta(minutes=129)).replace(tzinfo=None)


def test_repeat_customer_counts_applications_not_customers(spark: SparkSession) -> None:
    rows = by_kind(spark, [app(f"a{i}", i, "c0") for i in range(3)])
    assert (rows[("a2", "phone")]["apps_5m"], rows[("a2", "phone")]["customers_5m"]) == (3, 1)


def test_window_excludes_its_lower_bound_and_the_future(spark: SparkSession) -> None:
    apps = [
        app("a0", 0, "c0", ssn_hash="s"),
        app("a1", 5, "c1", ssn_hash="s"),
        app("a2", 6, "c2", ssn_hash="s"),
    ]
    rows = by_kind(spark, apps)
    assert rows[("a1", "ssn")]["customers_5m"] == 1  # a0 is exactly 5 minutes older
    assert rows[("a1", "ssn")]["customers_1h"] == 2  # a2 is later: not counted
    assert rows[("a0", "ssn")]["customers_24h"] == 1


def signal_frame(spark: SparkSession, **values: Any) -> DataFrame:
    """The signal row of one application, every count 1 unless given as `<kind>_<metric>`."""
    context = {
        "form_fill_seconds": values.pop("form_fill_seconds", 300.0),
        "attempts": values.pop("attempts", 1),
    }
    row = {"application_id": "a", "customer_id": "c", "channel": "web", **context, "event_time": T0} | {
        f"{kind}_{m}": values.get(f"{kind}_{m}", 1) for kind in fraud.ENTITIES for m in fraud.METRICS
    }
    return spark.createDataFrame(pd.DataFrame([row]))


CASES = [
    ("SSN_MANY_CUSTOMERS_24H", {"ssn_customers_24h": 2}, {"ssn_apps_24h": 5}),
    ("PHONE_MANY_CUSTOMERS_24H", {"phone_customers_24h": 2}, {"phone_apps_24h": 5}),
    ("DEVICE_MANY_CUSTOMERS_1H", {"device_customers_1h": 3}, {"device_customers_1h": 2}),
    ("IP_MANY_CUSTOMERS_1H", {"ip_customers_1h": 3}, {"ip_customers_1h": 2}),
    ("DEVICE_VELOCITY_5M", {"device_apps_5m": 5}, {"device_apps_5m": 4}),
    ("DEVICE_SHARED_24H", {"device_customers_24h": 2}, {"device_apps_24h": 9}),
    ("IP_SHARED_24H", {"ip_customers_24h": 2}, {"ip_apps_24h": 9}),
    (
        "FAST_FORM_SHARED_IDENTITY",
        {"form_fill_seconds": 50.0, "phone_customers_24h": 2},
        {"form_fill_seconds": 50.0},
    ),
    ("MANY_ATTEMPTS", {"attempts": 3}, {"attempts": 2}),
]


@pytest.mark.parametrize(("code", "fires", "quiet"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_fires_and_stays_quiet(
    spark: SparkSession, code: str, fires: dict[str, Any], quiet: dict[str, Any]
) -> None:
    (hit,) = fraud.flag(signal_frame(spark, **fires), ALL).collect()
    (miss,) = fraud.flag(signal_frame(spark, **quiet), ALL).collect()
    assert code in hit["reasons"]
    assert code not in miss["reasons"]


def test_every_rule_has_a_case_and_a_weight() -> None:
    assert {rule.code for rule in fraud.FRAUD_RULES} == {c[0] for c in CASES}
    assert all(0 < rule.weight < 1 for rule in fraud.FRAUD_RULES)


def test_score_combines_weights_and_threshold_filters(spark: SparkSession) -> None:
    (row,) = fraud.flag(signal_frame(spark, ssn_customers_24h=2, phone_customers_24h=3), JOB).collect()
    assert row["reasons"] == ["SSN_MANY_CUSTOMERS_24H", "PHONE_MANY_CUSTOMERS_24H"]
    assert row["fraud_score"] == pytest.approx(1 - 0.30 * 0.45)
    assert fraud.flag(signal_frame(spark, attempts=5), JOB).count() == 0  # 0.15 < 0.5
    assert fraud.flag(signal_frame(spark), ALL).first()["fraud_score"] == 0.0  # type: ignore[index]


def test_output_columns(spark: SparkSession) -> None:
    columns = fraud.flag(signal_frame(spark), ALL).columns
    signal_columns = [
        f"{k}_{m}_{w}"
        for k in ("device", "ip", "ssn", "phone")
        for m in ("apps", "customers")
        for w in ("5m", "1h", "24h")
    ]
    assert columns == [
        "application_id", "event_time", "customer_id", "channel", "fraud_score", "reasons",
        *signal_columns, "form_fill_seconds", "attempts",
    ]  # fmt: skip
    assert tuple(columns) == BY_NAME["fraud"].fields


def test_assisted_terminal_shared_by_50_customers_is_not_flagged(spark: SparkSession) -> None:
    apps = [
        app(f"b{i}", i * 0.5, f"c{i}", channel="branch", device_id="term-000001", ip_address="10.9.9.9")
        for i in range(50)
    ]
    (last,) = [r for r in fraud.build(frame(spark, apps), ALL).collect() if r["application_id"] == "b49"]
    assert last["device_customers_1h"] is None and last["ip_customers_1h"] is None
    assert last["ssn_customers_24h"] == 1
    assert fraud.build(frame(spark, apps), JOB).count() == 0


def test_ring_sharing_an_ssn_and_device_is_flagged(spark: SparkSession) -> None:
    apps = [app(f"r{i}", i, f"f{i}", ssn_hash="ssn-ring", device_id="dev-ring", attempts=3) for i in range(4)]
    flagged = {r["application_id"]: r for r in fraud.build(frame(spark, apps), JOB).collect()}
    assert sorted(flagged) == ["r1", "r2", "r3"]  # r0 is the first sighting: nothing to see yet
    assert {"SSN_MANY_CUSTOMERS_24H", "DEVICE_MANY_CUSTOMERS_1H"} <= set(flagged["r3"]["reasons"])
    assert flagged["r3"]["fraud_score"] > 0.9


def run_to_end(
    rows: DataFrame, each: Callable[[DataFrame, int], None], checkpoint: Path, inputs: int
) -> None:
    """Run until the query has read `inputs` more rows (the state lives for a processing time, so
    Spark runs a batch every trigger and processAllAvailable never returns), then stop."""
    query = (
        rows.writeStream.foreachBatch(each).option("checkpointLocation", str(checkpoint))
        .trigger(processingTime="0.5 seconds").start()
    )  # fmt: skip
    try:
        read_through(query, inputs, timeout_s=120)
    finally:
        query.stop()


def write_json(folder: Path, name: str, apps: list[dict[str, Any]]) -> None:
    """Write a file of JSON lines atomically, so the stream never sees half of it."""
    text = "\n".join(json.dumps(a | {"event_time": a["event_time"].isoformat()}) for a in apps)
    (folder / f".{name}").write_text(text + "\n")
    (folder / f".{name}").rename(folder / name)


def test_streaming_state_carries_across_micro_batches(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    write_json(source, "1.json", [app("s0", 0, "c0", ssn_hash="ssn-x"), app("s1", 1, "c1", ssn_hash="ssn-x")])
    collected: list[Row] = []
    events = spark.readStream.schema(LOAN_APPLICATION).json(str(source))
    with pytest.raises(ValueError, match="batch DataFrame"):
        fraud.build(events, JOB)
    signals = fraud.signals(events, JOB)

    def each(rows: DataFrame, _: int) -> None:
        collected.extend(fraud.flag(fraud.wide(rows), JOB).collect())

    run_to_end(signals, each, tmp_path / "checkpoint", 2)
    assert [r["application_id"] for r in collected] == ["s1"]
    write_json(source, "2.json", [app("s2", 30, "c2", ssn_hash="ssn-x"), app("s3", 31, "c3")])
    run_to_end(signals, each, tmp_path / "checkpoint", 2)  # the same checkpoint: the state carries on
    flagged = {r["application_id"]: r for r in collected}
    assert sorted(flagged) == ["s1", "s2"]
    assert (flagged["s2"]["ssn_customers_24h"], flagged["s2"]["ssn_apps_1h"]) == (3, 3)
    assert flagged["s2"]["reasons"] == ["SSN_MANY_CUSTOMERS_24H"]


def test_streaming_signals_send_a_duplicate_out_once_and_do_not_count_it(
    spark: SparkSession, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    write_json(source, "1.json", [app("d0", 0, "c0", ssn_hash="ssn-x"), app("d0", 1, "c1", ssn_hash="ssn-x")])
    collected: list[Row] = []
    events = spark.readStream.schema(LOAN_APPLICATION).json(str(source))
    signals = fraud.signals(events, JOB)

    def each(rows: DataFrame, _: int) -> None:
        collected.extend(fraud.wide(rows).collect())

    run_to_end(signals, each, tmp_path / "checkpoint", 2)
    write_json(source, "2.json", [app("d0", 2, "c2", ssn_hash="ssn-x"), app("d1", 3, "c3", ssn_hash="ssn-x")])
    run_to_end(signals, each, tmp_path / "checkpoint", 2)
    dups = [r for r in collected if r["duplicate_of_us"] is not None]
    counted = {r["application_id"]: r for r in collected if r["duplicate_of_us"] is None}
    assert sorted(r["customer_id"] for r in dups) == ["c1", "c2"]
    assert sorted(counted) == ["d0", "d1"]
    assert counted["d1"]["ssn_customers_24h"] == 2  # c0 and c3: the duplicates' customers not counted
