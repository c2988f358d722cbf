"""`loans-consume` formatting: one readable line per stream, "-" for missing fields, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kafka_consumer.cli import main
from kafka_consumer.format import LAYOUTS, format_message, format_record, json_line

APP = "app-1a2b3c4d-0000000042"
WINDOW = {"window_start": "2026-01-05T10:41:00.000Z", "window_end": "2026-01-05T10:42:00.000+00:00"}
RECORDS: dict[str, dict[str, Any]] = {
    "risk": {
        "application_id": APP,
        "event_time": "2026-01-05T10:42:03.123Z",
        "channel": "web",
        "sub_grade": "B3",
        "loan_amnt": 12000.0,
        "risk_score": 0.3123,
        "risk_band": "medium",
        "reason_codes": ["DTI_HIGH", "FICO_LOW"],
        "alert": True,
    },
    "fraud": {
        "application_id": APP,
        "event_time": "2026-01-05T10:42:03.123+00:00",
        "fraud_score": 0.93,
        "reasons": ["DEVICE_MANY_CUSTOMERS_1H", "SSN_SHARED_24H"],
        "device_customers_1h": 7,
    },
    "stats": {
        **WINDOW,
        "applications": 1204,
        "approval_rate": 0.612,
        "conversion_rate": 0.64,
        "amount_mean": 13250.4,
        "amount_p50": 11000,
        "processing_ms_p50": 820,
        "processing_ms_p95": 2400,
    },
    "segment": {
        **WINDOW,
        "segment": "prime/middle",
        "applications": 320,
        "amount_total": 4_100_000.0,
        "avg_risk_score": 0.28,
        "top_purpose": "debt_consolidation",
        "top_purpose_share": 0.47,
    },
    "channel": {
        **WINDOW,
        "channel": "mobile_app",
        "applications": 402,
        "conversion_rate": 0.551,
        "approval_rate": 0.63,
        "session_seconds_mean": 426.0,
        "processing_ms_p95": 1900,
    },
    "scores": {
        "application_id": APP,
        "event_time": "2026-01-05T10:42:03.123Z",
        "default_probability": 0.1432,
        "decision": "review",
        "model_name": "loan-default",
        "model_version": "3",
        "error": None,
    },
    "monitor": {
        "window_start": "2026-01-05T10:41:00Z",
        "window_end": "2026-01-05T10:42:00Z",
        "model_name": "loan-default",
        "model_version": "3",
        "model_alias": "champion",
        "applications": 1204,
        "scored": 1204,
        "mean_score": 0.1832,
        "decline_rate": 0.112,
        "score_psi": 0.031,
        "feature_psi": [{"feature": "fico_range_low", "psi": 2.38}, {"feature": "dti", "psi": 0.02}],
        "drift_alarm": True,
        "alarm_psi": 0.25,
        "estimated_auc": 0.7204,
        "estimate_alarm": True,
        "outcomes": 1100,
        "default_rate": 0.171,
        "auc": 0.7312,
        "calibration_error": 0.018,
    },
    "dlq": {
        "source_topic": "loan.applications",
        "source_partition": 2,
        "source_offset": 1234,
        "reason": "missing required field loan_amnt",
        "payload": '{"application_id": "app-1", "event_time": "2026-01-05T10:42:03Z", "term": 36, "x": 1}',
        "failed_at": "2026-01-05T10:42:03.900Z",
    },
}
EXPECTED = {
    "risk": "10:42:03  app-1a2b…0042  web         B3   $12,000  "
    "score 0.31 medium   DTI_HIGH,FICO_LOW  [ALERT]",
    "fraud": "10:42:03  app-1a2b…0042  score 0.93  DEVICE_MANY_CUSTOMERS_1H,SSN_SHARED_24H  device 7 cust/1h",
    "stats": "10:41:00–10:42:00  apps 1,204  approval 61.2%  conversion 64.0%  amount mean $13,250 "
    "p50 $11,000  proc p50 820 ms p95 2,400 ms",
    "segment": "10:41–10:42  prime/middle         apps 320  "
    "amount $4.1M  risk 0.28  top debt_consolidation 47%",
    "channel": "10:41–10:42  mobile_app  apps 402  conv 55.1%  approval 63.0%  "
    "session 7.1 min  proc p95 1,900 ms",
    "scores": "10:42:03  app-1a2b…0042  p(default) 0.143  review  model loan-default v3",
    "monitor": "10:41–10:42  loan-default v3 apps 1,204  mean p 0.183  decline 11.2%  "
    "psi 0.03 (fico_range_low 2.38 dti 0.02)  [DRIFT]  est auc 0.720 [ESTIMATE]  "
    "outcomes 1,100 auc 0.731 ece 0.018 defaults 17.1%",
    "dlq": '10:42:03  loan.applications[2]@1234  reason: missing required field loan_amnt  payload: {"applic'
    'ation_id": "app-1", "event_time": "2026-01-05T10:42:…(truncated)',
}


@pytest.mark.parametrize("stream", sorted(RECORDS))
def test_each_stream_has_its_readable_line(stream: str) -> None:
    assert format_record(stream, RECORDS[stream]) == EXPECTED[stream]


def test_every_layout_is_tested() -> None:
    assert set(LAYOUTS) == set(RECORDS)


@pytest.mark.parametrize("stream", sorted(RECORDS))
def test_missing_fields_render_as_dash(stream: str) -> None:
    line = format_record(stream, {})
    assert "-" in line and "None" not in line


def test_missing_field_keeps_the_rest() -> None:
    record = {k: v for k, v in RECORDS["stats"].items() if k not in ("approval_rate", "processing_ms_p50")}
    line = format_record("stats", record)
    assert "approval -  conversion 64.0%" in line and "proc p50 - p95 2,400 ms" in line


def test_fields_the_layout_does_not_name_are_left_out() -> None:
    fraud = {**RECORDS["fraud"], "ssn_customers_24h": 3, "customer_id": "cust-1"}
    assert format_record("fraud", fraud) == EXPECTED["fraud"]


def test_scores_error_is_shown_only_when_set() -> None:
    scores = {**RECORDS["scores"], "default_probability": None, "error": "model not loaded"}
    line = format_record("scores", scores)
    assert line.endswith("p(default) -  review  model loan-default v3  error: model not loaded")


def test_scores_show_reason_codes_and_mark_shadow_records() -> None:
    reasons = [{"code": "DTI_HIGH", "text": "dti 38.2 % is high"}, {"code": "FICO_LOW", "text": "x"}]
    line = format_record("scores", {**RECORDS["scores"], "reasons": reasons, "shadow": False})
    assert line == EXPECTED["scores"] + "  DTI_HIGH FICO_LOW"
    shadow = format_record("scores", {**RECORDS["scores"], "shadow": True})
    assert shadow == EXPECTED["scores"] + "  [shadow]"


def test_alert_shows_nothing_when_false_or_missing() -> None:
    no_alert = EXPECTED["risk"].removesuffix("  [ALERT]")
    assert format_record("risk", {**RECORDS["risk"], "alert": False}) == no_alert
    assert format_record("risk", {k: v for k, v in RECORDS["risk"].items() if k != "alert"}) == no_alert


def test_other_streams_are_key_value() -> None:
    line = format_record(
        "applications", {"application_id": "a", "loan_amnt": 1000, "emp_title": None, "x": [1]}
    )
    assert line == "application_id=a loan_amnt=1000 x=[1]"


def test_record_that_fits_no_layout_field_is_key_value() -> None:
    assert format_record("risk", {"id": 7, "kind": {"a": 1}}) == 'id=7 kind={"a":1}'


def test_spark_window_struct_and_timestamp_forms() -> None:
    record = {k: v for k, v in RECORDS["channel"].items() if not k.startswith("window_")}
    record["window"] = {"start": "2026-01-05T11:41:00+01:00", "end": "2026-01-05 10:42:00"}
    assert format_record("channel", record) == EXPECTED["channel"]
    assert format_record("scores", {**RECORDS["scores"], "event_time": 1767609723123}).startswith("10:42:03 ")


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("loan_amnt", "abc", "abc"),
        ("risk_score", [1, 2], "score [1,2]"),
        ("event_time", "yesterday", "yesterday"),
        ("event_time", 10**400, "1000"),
        ("channel", {"a": 1}, '{"a":1}'),
        ("reason_codes", "DTI_HIGH", "DTI_HIGH"),
        ("reason_codes", [], "medium   -"),
        ("loan_amnt", float("nan"), "$nan"),
        ("risk_band", "two\nlines", "two lines"),
    ],
)
def test_bad_field_values_are_shown_as_they_are(field: str, value: object, shown: str) -> None:
    line = format_record("risk", {**RECORDS["risk"], field: value})
    assert shown in line and "\n" not in line


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"not json {", "[not JSON] not json {"),
        (None, "[not JSON] <no value>"),
        (b"\xff\xfe\x00", "[not JSON] "),
        (b"[1, 2]", "[not an object] [1,2]"),
        (b"null", "[not an object] null"),
        (b'"text"', "[not an object] text"),
    ],
)
def test_malformed_messages_get_a_marker(raw: bytes | None, expected: str) -> None:
    assert format_message("risk", raw).startswith(expected)


def test_message_is_decoded_and_formatted() -> None:
    assert format_message("risk", json.dumps(RECORDS["risk"]).encode()) == EXPECTED["risk"]


def test_json_line_is_compact_and_none_when_not_json() -> None:
    assert json_line(b'{"a": 1,\n "b": [1, 2]}') == '{"a":1,"b":[1,2]}'
    assert json_line(b"{broken") is None and json_line(None) is None


def test_unknown_stream_is_one_error_line_listing_choices(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kafka_consumer.cli.configure", lambda level: None)  # keep pytest's stderr
    assert main(["nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown topic 'nope'" in err[0]
    assert all(name in err[0] for name in ("risk", "fraud", "scores", "dlq", "applications", "truth"))


@pytest.mark.parametrize("bad", ["0", "-3", "x"])
def test_max_must_be_positive(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["risk", "--max", bad])
    assert exc.value.code == 2 and "--max" in capsys.readouterr().err


def test_attacker_chosen_strings_reach_the_terminal_without_control_characters() -> None:
    """An application's fields are the sender's: a terminal escape (ESC, the 8-bit CSI, BEL, a
    carriage return that hides what came before) is shown escaped, in every output form."""
    hostile = "\x1b[2J\x1b]0;owned\x07\x9b31m\rok"
    record = {"application_id": hostile, "reason": hostile, "payload": hostile, "source_topic": "t"}
    raw = json.dumps(record).encode()
    for line in (format_message("dlq", raw), json_line(raw) or "", format_message("dlq", hostile.encode())):
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line), repr(line)
        assert "\\x1b" in line or "\\u001b" in line, line
