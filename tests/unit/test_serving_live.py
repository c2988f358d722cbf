"""The dashboard's rolling aggregates, fed records shaped like the Spark job's outputs."""

from __future__ import annotations

import pytest

from serving.live import BINS, CHANNEL_WINDOWS, RATE_SPAN_S, LiveState

T0 = 1_800_000_000_000  # epoch ms, on a whole second


def risk(band: str, score: float, alert: bool = False) -> dict:
    return {"application_id": "a", "risk_band": band, "risk_score": score, "alert": alert}


def channel_record(
    start_minute: int, channel: str, apps: int, submitted: int, approved: int, declined: int
) -> dict:
    return {
        "window_start": f"2026-03-01T10:{start_minute:02d}:00.000Z",
        "window_end": f"2026-03-01T10:{start_minute + 1:02d}:00.000Z",
        "channel": channel,
        "applications": apps,
        "submitted": submitted,
        "approved": approved,
        "declined": declined,
    }


def test_applications_per_second_counts_by_record_time_not_arrival() -> None:
    state = LiveState()
    for second in range(20):  # 3 applications a second for 20 s, all arriving "now"
        for _ in range(3):
            state.add("risk", risk("low", 0.1), T0 + second * 1000 + 250)
    throughput = state.snapshot(T0 + 20_000)["throughput"]
    assert throughput["applications_per_second"] == pytest.approx(3.0)
    assert throughput["series"][-20:] == [3] * 20 and throughput["total"] == 60
    later = state.snapshot(T0 + 25_000)["throughput"]  # 5 quiet seconds: half the span is empty
    assert later["applications_per_second"] == pytest.approx(3.0 * (RATE_SPAN_S - 5) / RATE_SPAN_S)


def test_risk_bands_and_histogram_roll_over_the_last_records() -> None:
    state = LiveState(keep=4)
    for band, score in [("high", 0.6), ("low", 0.1), ("low", 0.12), ("medium", 0.3), ("very_high", 0.99)]:
        state.add("risk", risk(band, score, alert=score > 0.9), T0)
    r = state.snapshot(T0)["risk"]
    assert r["count"] == 4
    assert r["bands"] == {"low": 2, "medium": 1, "high": 0, "very_high": 1}  # the first (high) rolled out
    assert sum(r["histogram"]) == 4 and len(r["histogram"]) == BINS
    assert r["histogram"][2] == 2 and r["histogram"][BINS - 1] == 1
    assert r["alerts"] == 1


def test_channel_rates_sum_the_latest_windows_and_update_mode_replaces_a_window() -> None:
    state = LiveState()
    state.add("channel", channel_record(0, "web", 10, 8, 4, 4), T0)  # falls out: older than the latest 5
    for minute in range(1, CHANNEL_WINDOWS + 1):
        state.add("channel", channel_record(minute, "web", 10, 8, 3, 1), T0)
        state.add("channel", channel_record(minute, "branch", 5, 5, 1, 1), T0)
    state.add(
        "channel", channel_record(CHANNEL_WINDOWS, "web", 20, 10, 6, 2), T0
    )  # a newer record of a window
    channels = {c["channel"]: c for c in state.snapshot(T0)["channels"]}
    web = channels["web"]
    assert web["applications"] == 10 * (CHANNEL_WINDOWS - 1) + 20
    assert web["approval_rate"] == pytest.approx(round((3 * 4 + 6) / (4 * 4 + 8), 4))
    assert web["conversion_rate"] == pytest.approx(round((8 * 4 + 10) / 60, 4))
    assert channels["branch"]["approval_rate"] == 0.5 and channels["branch"]["conversion_rate"] == 1.0


def test_stats_show_the_newest_window() -> None:
    state = LiveState()
    for minute, apps in [(2, 30), (1, 10), (2, 35)]:
        state.add("stats", {"window_start": f"2026-03-01T10:0{minute}:00Z", "applications": apps}, T0)
    stats = state.snapshot(T0)["stats"]
    assert stats["latest"]["applications"] == 35
    assert [w["applications"] for w in stats["recent"]] == [10, 35]


def test_fraud_alerts_newest_first_with_their_nonzero_signals() -> None:
    state = LiveState()
    for i in range(25):
        state.add(
            "fraud",
            {
                "application_id": f"app-{i}",
                "fraud_score": 0.7,
                "reasons": ["SSN_MANY_CUSTOMERS_24H"],
                "ssn_customers_24h": 2 + i,
                "device_apps_5m": 0,
                "ip_customers_1h": None,
                "form_fill_seconds": 40.0,
            },
            T0 + i,
        )
    fraud = state.snapshot(T0)["fraud"]
    assert fraud["count"] == 25 and len(fraud["alerts"]) == 20
    newest = fraud["alerts"][0]
    assert newest["application_id"] == "app-24" and newest["signals"] == {"ssn_customers_24h": 26}
    assert newest["reasons"] == ["SSN_MANY_CUSTOMERS_24H"]


def test_scores_histogram_decisions_and_model_version() -> None:
    state = LiveState()
    for i, p in enumerate([0.05, 0.07, 0.5, 0.97]):
        version = 1 if i < 2 else 2
        decision = "approve" if p < 0.1 else "decline"
        record = {"default_probability": p, "decision": decision, "model_name": "m", "model_version": version}
        state.add("scores", record, T0 + i)
    state.add(
        "scores",
        {"default_probability": None, "error": "bad row", "model_name": "m", "model_version": 2},
        T0 + 9,
    )
    shadow = {"default_probability": 0.9, "decision": "decline", "model_name": "m", "model_version": 3}
    state.add("scores", shadow | {"shadow": True}, T0 + 10)  # a challenger's: not a decision, not shown
    scores = state.snapshot(T0)["scores"]
    assert scores["histogram"][1] == 2 and scores["histogram"][10] == 1 and scores["histogram"][19] == 1
    assert scores["decisions"] == {"approve": 2, "decline": 2} and scores["errors"] == 1
    assert scores["model"]["version"] == "2" and scores["models"] == {"m v1": 2, "m v2": 3}


def test_records_that_are_not_objects_are_skipped_and_counted() -> None:
    state = LiveState()
    state.add("risk", ["not", "an", "object"], T0)
    state.add("risk", None, T0)
    state.add("risk", {"risk_band": 3, "risk_score": "high"}, T0)  # wrong types: counted, not binned
    snapshot = state.snapshot(T0)
    assert snapshot["skipped"] == 2 and snapshot["messages"] == {"risk": 1}
    assert sum(snapshot["risk"]["histogram"]) == 0 and sum(snapshot["risk"]["bands"].values()) == 0


def monitor_record(minute: int, version: str, alias: str, alarm: bool, auc: float | None = None) -> dict:
    return {
        "window_start": f"2026-03-01T10:{minute:02d}:00Z",
        "window_end": f"2026-03-01T10:{minute + 1:02d}:00Z",
        "model_name": "loan-default",
        "model_version": version,
        "model_alias": alias,
        "applications": 100,
        "drift_alarm": alarm,
        "auc": auc,
    }


def test_monitoring_shows_the_newest_window_of_each_version_champion_first() -> None:
    state = LiveState()
    state.add("monitor", monitor_record(0, "2", "champion", False), T0)
    state.add("monitor", monitor_record(1, "2", "champion", False, 0.70), T0)
    state.add("monitor", monitor_record(1, "2", "champion", True, 0.71), T0)  # an update of the window
    state.add("monitor", monitor_record(1, "3", "challenger", True), T0)
    state.add("monitor", {"window_start": 5}, T0)  # not a record the job writes: ignored
    shown = state.snapshot(T0)["monitor"]
    assert [(r["model_version"], r["window_start"][11:16], r["auc"]) for r in shown["latest"]] == [
        ("2", "10:01", 0.71),
        ("3", "10:01", None),
    ]
    assert (shown["alarms"], shown["windows"]) == (2, 2)
