"""Dead-letter reasons from the contract: one readable line naming every problem of a message."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import HistoricalLoan, LoanApplication
from generator.applications import ApplicationGenerator
from generator.history import synthetic_history
from kafka_producer.encode import json_lines
from sparky.reasons import dead_letter, explain, key_problem

MAX = 100_000


@pytest.fixture(scope="module")
def good() -> dict:
    line = json_lines(ApplicationGenerator(seed=3).batch(1, datetime(2026, 3, 1, tzinfo=UTC)).applications)[0]
    return json.loads(line)


def why(record: dict | bytes, model: type = LoanApplication) -> str:
    raw = record if isinstance(record, bytes) else json.dumps(record).encode()
    return explain(model, raw, len(raw), MAX)


def test_size_and_json_come_first() -> None:
    assert explain(LoanApplication, b"", 0, MAX) == "empty value"
    assert explain(LoanApplication, b"{}", 200_000, MAX) == (
        "payload of 200000 bytes exceeds LOANS_SPARK_MAX_MESSAGE_BYTES=100000"
    )
    assert why(b"{not json") == "not a JSON object"
    assert why(b"[1, 2]") == "not a JSON object"


def test_each_kind_of_field_problem_is_named(good: dict) -> None:
    assert why({**good, "loan_amnt": "lots"}) == 'field loan_amnt: expected double, got ["lots"]'
    assert why({**good, "term": "36"}) == 'field term: expected bigint, got ["36"]'
    missing = {k: v for k, v in good.items() if k != "fico_range_low"}
    assert why(missing) == "missing required field fico_range_low"
    assert why({**good, "fico_range_low": 200}) == "field fico_range_low=200 is out of range (ge 300)"
    assert why({**good, "grade": "Z"}) == "field grade=Z does not match ^[A-G]$"
    assert why({**good, "channel": "tv"}) == (
        "field channel: tv is not one of web, mobile_app, branch, phone, partner"
    )
    two = why({**good, "dti": -1, "status": None})
    assert two == "field dti=-1 is out of range (ge 0); missing required field status"  # null = missing


def test_a_valid_event_with_unknown_fields_is_not_explained_by_them(good: dict) -> None:
    """Spark ignores fields the contract does not know; so do the reasons."""
    assert why({**good, "extra": 1}).startswith("malformed record")
    history = json.loads(json_lines(synthetic_history(seed=1, n=1))[0])
    assert why({**history, "issue_d": "soon"}, HistoricalLoan) == (
        'field issue_d: expected date, got ["soon"]'
    )


@given(raw=st.binary(max_size=400), key=st.none() | st.binary(max_size=40))
def test_a_dead_letter_keeps_any_bytes_exactly(raw: bytes, key: bytes | None) -> None:
    shown_key, reason, payload, payload_base64 = dead_letter(
        LoanApplication, key, raw, len(raw), 10_000, 20_000
    )
    assert reason
    if payload_base64 is not None:
        assert base64.b64decode(payload_base64) == raw
    else:
        assert payload.encode("utf-8") == raw
    assert shown_key == (None if key is None else key.decode("utf-8", "backslashreplace"))


def test_a_cut_payload_may_end_inside_a_character_and_stays_text() -> None:
    raw = "é".encode() * 10  # 20 bytes, cut at 5: the third character is half there
    _, reason, payload, payload_base64 = dead_letter(LoanApplication, None, raw, 200_000, 100_000, 5)
    assert "exceeds" in reason and payload == "éé" and payload_base64 is None


def test_bytes_that_are_not_utf8_are_named_and_kept() -> None:
    raw = b'{"email": "\xff"}'
    _, reason, payload, payload_base64 = dead_letter(LoanApplication, b"k\xfe", raw, len(raw), 10_000, 20_000)
    assert reason == "not valid UTF-8: byte 0xff at offset 11"
    assert payload == '{"email": "\\xff"}' and base64.b64decode(payload_base64 or "") == raw


def test_a_hostile_key_is_the_reason_and_is_shown_cut_and_escaped() -> None:
    huge = b"k" * 1_200_000
    key, reason, payload, _ = dead_letter(
        LoanApplication, huge[:256], b"x", 1, 100_000, 20_000, key_bytes=len(huge)
    )
    assert reason == "key of 1200000 bytes exceeds 256" and key == "k" * 256 and payload == "x"
    key, reason, *_ = dead_letter(LoanApplication, b"\xff-id", b"{}", 2, 100_000, 20_000, key_bytes=4)
    assert key == "\\xff-id" and reason == "key is not valid UTF-8: byte 0xff at offset 0"
    assert key_problem(b"\x1b[2J", 4) == "key has control characters"
    assert key_problem(b"app-1a2b3c4d-0000000042", 23) is None and key_problem(None, None) is None
